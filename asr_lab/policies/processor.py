"""From a backend's config to the processor of the policy it names.

Loaders call :func:`policy_processor` with their engine; the engine never learns which
policy drives it. ``local-agreement`` with ``agreement_n=2`` is the reference
:class:`~asr_lab.OnlineASRProcessor` itself (through
:func:`asr_lab.policies.vac.streaming_processor`, so VAC works as before); the other
re-decoding policies run on :class:`~asr_lab.policies.redecoding.RedecodingProcessor`;
``alignatt`` needs an engine with a steppable decoder. Inside a
:func:`asr_lab.policies.record_replay` block (``compare()`` opens one) the engine is wrapped
in a :class:`~asr_lab.policies.record_replay.RecordingASR`, so policies share its answers.
"""

from __future__ import annotations

import json
from typing import Any

from asr_lab.core.config import ConfigError
from asr_lab.policies.config import DRIVER_FIELDS, POLICY_FIELDS, policy_label

__all__ = ["ALIGNATT_BACKENDS", "check_policy", "engine_identity", "engine_key", "policy_processor"]

ALIGNATT_BACKENDS = ("openai-whisper", "mlx-whisper")
"""Backends whose engine can run AlignAtt (a decoder stepped token by token, with cross-attention)."""

_DRIVER_FIELDS = DRIVER_FIELDS  # the name other modules used before it moved to policies.config


def engine_identity(config: Any) -> str:
    """The config without its policy and driver fields: what determines the engine's answers."""
    data = config.model_dump(exclude=set(POLICY_FIELDS) | _DRIVER_FIELDS)
    return json.dumps(data, sort_keys=True, default=str)


def engine_key(config: Any) -> str:
    """:func:`engine_identity` plus the engine's provenance (:func:`asr_lab.provenance.run_provenance`:
    its loader's code, asr_lab's run machinery, engine package versions, model files' names,
    sizes and times): recorded answers are shared only by the same engine on the same weights."""
    import hashlib

    from asr_lab.provenance import run_provenance

    provenance = run_provenance(config.model_dump(exclude=set(POLICY_FIELDS) | _DRIVER_FIELDS))
    digest = hashlib.sha256(json.dumps(provenance, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f"{engine_identity(config)}|provenance:{digest}"


def check_policy(config: Any, *, can_step: bool) -> None:
    """Raise :class:`~asr_lab.ConfigError` when ``config.policy`` cannot run on an engine that
    can (``can_step``) or cannot give a decoder stepped token by token — before any model loads."""
    if getattr(config, "policy", "local-agreement") != "alignatt":
        return
    if not can_step:
        raise ConfigError(
            f"policy='alignatt' needs a decoder the lab steps token by token with cross-attention; backend "
            f"{config.backend!r} cannot give it (CTranslate2 and pocketsphinx do not expose it). Backends that run "
            f"AlignAtt: {', '.join(ALIGNATT_BACKENDS)}. Or choose policy 'local-agreement', 'hold-n' or 'stable-prefix'"
        )


def policy_processor(asr: Any, config: Any, *, decoder: Any = None) -> Any:
    """The :class:`~asr_lab.ASRProcessor` for ``config.policy`` over ``asr`` (an ASRBase).

    ``decoder``: the engine's :class:`~asr_lab.policies.alignatt.TokenDecoder`, for engines
    that can run AlignAtt. Raises :class:`~asr_lab.ConfigError` when the engine cannot run
    the policy, naming the backends that can.
    """
    from asr_lab.policies.record_replay import RecordingASR, active_store

    policy = getattr(config, "policy", "local-agreement")
    if policy == "alignatt":
        check_policy(config, can_step=decoder is not None)
        from asr_lab.policies.alignatt import AlignAttProcessor
        from asr_lab.policies.config import alignatt_settings

        settings = alignatt_settings(config)
        configure = getattr(decoder, "configure", None)
        if callable(configure):
            configure(**settings["decoder"])
        processor = AlignAttProcessor(decoder, **settings["processor"])
        processor.settings = settings["fields"]
        if config.vac:  # each utterance the VAD finds is decoded on its own, from a fresh init()
            from asr_lab.policies.vac import vac_processor

            wrapped = vac_processor(processor, config)
            wrapped.settings = settings["fields"]
            wrapped.decoder = decoder
            return wrapped
        return processor

    store = active_store()
    recorder = RecordingASR(asr, store, engine_key(config)) if store is not None else None
    engine = recorder or asr
    if policy == "local-agreement" and getattr(config, "agreement_n", 2) == 2:
        from asr_lab.policies.vac import streaming_processor

        processor = streaming_processor(engine, config)
    else:
        from asr_lab.policies.redecoding import RedecodingProcessor
        from asr_lab.policies.registry import get_rule_factory

        rule = get_rule_factory(policy)(config)
        processor = RedecodingProcessor(engine, rule, trim_sec=config.buffer_trimming_sec, min_chunk_sec=config.min_chunk_size)
        if config.vac:
            from asr_lab.policies.vac import vac_processor

            processor = vac_processor(processor, config)
    if recorder is not None:
        processor.replayed_compute = recorder.replayed_compute
    processor.policy = policy_label(config)
    return processor
