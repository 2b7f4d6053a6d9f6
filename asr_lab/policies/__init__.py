"""Streaming policies: what to commit from what an engine produced, apart from the engines.

A policy is chosen by name in any policy-aware backend config (``policy`` and its fields,
:class:`PolicyConfig`, which also holds LocalAgreement's fixes and the VAC knobs):
``local-agreement`` (n = 2 is the reference :class:`OnlineASRProcessor`), ``hold-n``,
``stable-prefix`` and ``alignatt``. One module per policy:

* :mod:`~asr_lab.policies.local_agreement` — the reference LocalAgreement-2
  (:class:`OnlineASRProcessor`, :class:`HypothesisBuffer`) and :class:`LocalAgreementN`.
* :mod:`~asr_lab.policies.hold_n` — :class:`HoldN`; :mod:`~asr_lab.policies.stable_prefix` —
  :class:`StablePrefix`; both, and LA-n, run on :mod:`~asr_lab.policies.redecoding`'s
  :class:`RedecodingProcessor` (a fixed re-decoding schedule).
* :mod:`~asr_lab.policies.alignatt` — :class:`AlignAttProcessor` over a
  :class:`TokenDecoder` (SimulStreaming's policy).
* :mod:`~asr_lab.policies.vac` — :class:`VACOnlineASRProcessor`: Silero VAD around any policy.
* :mod:`~asr_lab.policies.record_replay` — record once, replay many: :func:`recording`,
  :class:`HypothesisStore`, :class:`RecordingASR`.
* :mod:`~asr_lab.policies.config` — :class:`PolicyConfig`, :func:`policy_settings`.
* :mod:`~asr_lab.policies.registry` — :func:`register_policy`: a new commit rule by name, one line.
* :func:`policy_processor` — what loaders call; :func:`policy_grid` — configs for a sweep.
"""

from __future__ import annotations

from asr_lab.core.lazy import lazy_exports

_EXPORTS = {
    "POLICIES": "asr_lab.policies.config",
    "POLICY_FIELDS": "asr_lab.policies.config",
    "PolicyConfig": "asr_lab.policies.config",
    "StreamingPolicyConfig": "asr_lab.policies.config",
    "policy_label": "asr_lab.policies.config",
    "policy_metadata": "asr_lab.policies.config",
    "policy_settings": "asr_lab.policies.config",
    "RedecodingProcessor": "asr_lab.policies.redecoding",
    "CommitRule": "asr_lab.policies.redecoding",
    "HoldN": "asr_lab.policies.hold_n",
    "StablePrefix": "asr_lab.policies.stable_prefix",
    "HypothesisBuffer": "asr_lab.policies.local_agreement",
    "LocalAgreementN": "asr_lab.policies.local_agreement",
    "OnlineASRProcessor": "asr_lab.policies.local_agreement",
    "AlignAttProcessor": "asr_lab.policies.alignatt",
    "TokenDecoder": "asr_lab.policies.alignatt",
    "TokenStep": "asr_lab.policies.alignatt",
    "VACOnlineASRProcessor": "asr_lab.policies.vac",
    "VoiceActivityDetector": "asr_lab.policies.vac",
    "streaming_processor": "asr_lab.policies.vac",
    "HypothesisStore": "asr_lab.policies.record_replay",
    "RecordingASR": "asr_lab.policies.record_replay",
    "recording": "asr_lab.policies.record_replay",
    "ALIGNATT_BACKENDS": "asr_lab.policies.processor",
    "policy_processor": "asr_lab.policies.processor",
    "policy_grid": "asr_lab.policies.grid",
    "BUILTIN_POLICIES": "asr_lab.policies.registry",
    "policy_names": "asr_lab.policies.registry",
    "register_policy": "asr_lab.policies.registry",
    "unregister_policy": "asr_lab.policies.registry",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
