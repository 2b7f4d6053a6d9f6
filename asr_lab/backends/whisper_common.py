"""What the Whisper backends (faster-whisper, mlx-whisper) share, without importing either engine.

* :class:`WhisperConfig` — the decoding fields both accept, with the same meaning.
* :func:`whisper_language` — ``lan`` to the code a model knows, or a clear error.
* :func:`looks_like_path` — a model name that is meant as a folder (never sent to the hub).
* :func:`merge_extra_options` — a backend's ``transcribe_options`` checked against the
  engine's signature and against what asr_lab sets itself.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Union

from pydantic import Field, field_validator

from asr_lab.core.config import ConfigError
from asr_lab.policies.config import PolicyConfig

__all__ = ["NO_SPEECH_SKIP", "WhisperConfig", "looks_like_path", "merge_extra_options", "whisper_language"]

NO_SPEECH_SKIP = 0.9
"""Words of a segment whose no-speech probability is above this are dropped (as in the reference)."""

DEFAULT_TEMPERATURES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


class WhisperConfig(PolicyConfig):
    """Decoding fields shared by the Whisper backends (each backend's config adds its own), and the policy fields."""

    model: Optional[str] = Field(
        default="large-v2", description="Whisper size name, hub id or local model folder (the backend says which)."
    )
    temperature: Union[float, list[float]] = Field(
        default=DEFAULT_TEMPERATURES,
        description="Sampling temperature, or the list tried in turn when a decoding fails the quality "
        "thresholds (Whisper's fallback; each retry costs a full decoding). 0 = deterministic.",
    )
    condition_on_previous_text: bool = Field(
        default=True, description="Within one call, condition each 30 s window on the text of the previous one."
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
