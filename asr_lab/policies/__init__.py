"""Streaming policies: what to commit from what an engine produced, apart from the engines.

A policy is chosen by name in any policy-aware backend config (``policy`` and its fields,
:class:`PolicyConfig`): ``local-agreement`` (n = 2 is the reference
:class:`~asr_lab.OnlineASRProcessor`), ``hold-n``, ``stable-prefix`` and ``alignatt``.

* :mod:`~asr_lab.policies.redecoding` — :class:`RedecodingProcessor`, the fixed
  re-decoding schedule the black-box rules run on: :class:`HoldN`,
  :class:`StablePrefix`, :class:`LocalAgreementN`.
* :mod:`~asr_lab.policies.alignatt` — :class:`AlignAttProcessor` over a
  :class:`TokenDecoder` (SimulStreaming's policy).
* :mod:`~asr_lab.policies.record_replay` — record once, replay many: :func:`recording`,
  :class:`HypothesisStore`, :class:`RecordingASR`.
* :func:`policy_processor` — what loaders call; :func:`policy_grid` — configs for a sweep.
"""

from __future__ import annotations

from asr_lab.core.lazy import lazy_exports

_EXPORTS = {
    "POLICIES": "asr_lab.policies.config",
    "POLICY_FIELDS": "asr_lab.policies.config",
    "PolicyConfig": "asr_lab.policies.config",
    "policy_label": "asr_lab.policies.config",
    "RedecodingProcessor": "asr_lab.policies.redecoding",
    "CommitRule": "asr_lab.policies.redecoding",
    "HoldN": "asr_lab.policies.hold_n",
    "StablePrefix": "asr_lab.policies.stable_prefix",
    "LocalAgreementN": "asr_lab.policies.local_agreement",
    "AlignAttProcessor": "asr_lab.policies.alignatt",
    "TokenDecoder": "asr_lab.policies.alignatt",
    "TokenStep": "asr_lab.policies.alignatt",
    "HypothesisStore": "asr_lab.policies.record_replay",
    "RecordingASR": "asr_lab.policies.record_replay",
    "recording": "asr_lab.policies.record_replay",
    "ALIGNATT_BACKENDS": "asr_lab.policies.processor",
    "policy_processor": "asr_lab.policies.processor",
    "policy_grid": "asr_lab.policies.grid",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
