"""``ASRConfig``: what selects and tunes an engine, validated at the edge.

The same object comes from Python, from a JSON body (the seed's ``/load_model``), from a
CLI ``--config`` file or from a notebook form. Backends that need more fields subclass it
(the seed's ``ExtendedASRConfig`` pattern) and name the subclass in their loader's
``config_class``. Unknown or misspelled fields are rejected, with the nearest known name
suggested, because a silently ignored setting mislabels every result measured with it.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

__all__ = ["ASRConfig", "ConfigError", "config_from_json", "parse_config"]

_LANGUAGE_HELP = "a language code such as 'en', 'de', 'cs' (ISO 639-1/-3), or 'auto' to detect it"


class ConfigError(ValueError):
    """A configuration could not be understood; the message says which value and why."""


class ASRConfig(BaseModel):
    """Engine configuration shared by every backend.

    Times are seconds. ``min_chunk_size`` is how much new audio a driver waits for before
    each ``process_iter()``; ``buffer_trimming``/``buffer_trimming_sec`` steer how the
    LocalAgreement policy shortens its audio buffer (see ``asr_lab.OnlineASRProcessor``).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    backend: str = Field(
        default="pocketsphinx",
        description="Registered backend name; see asr_lab.available_backends().",
    )
    model: Optional[str] = Field(
        default=None,
        description="Model name, hub id or local folder; None = the backend's default model.",
    )
    lan: str = Field(default="en", description=f"Source language: {_LANGUAGE_HELP}.")
    task: Literal["transcribe", "translate"] = Field(
        default="transcribe", description="'translate' asks Whisper-family engines for English output."
    )
    min_chunk_size: float = Field(
        default=1.0, gt=0, le=30, description="Seconds of new audio to wait for between process_iter() calls."
    )
    buffer_trimming: Literal["segment", "sentence"] = Field(
        default="segment", description="Where LocalAgreement cuts its audio buffer: at segment or sentence ends."
    )
    buffer_trimming_sec: float = Field(
        default=15.0, gt=0, le=300, description="Buffer length (s) above which trimming is attempted."
    )
    model_cache_dir: Optional[str] = Field(
        default=None, description="Where downloaded models are cached (backend default if None)."
    )
    model_dir: Optional[str] = Field(
        default=None, description="A local model folder; overrides `model` and never touches a hub."
    )
    vac: bool = Field(
        default=False,
        description="Voice-activity-controlled streaming (Silero VAD) around LocalAgreement backends.",
    )
    vac_chunk_size: float = Field(
        default=0.04, gt=0, le=1.0, description="Seconds of audio per VAD step when vac=True."
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields)
            unknown = [k for k in data if k not in known]
            if unknown:
                hints = []
                for key in unknown:
                    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                    hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
                raise ValueError(
                    f"unknown field(s) for {cls.__name__}: {', '.join(hints)}. "
                    f"Allowed fields: {', '.join(sorted(known))}. Fix the name, or use the "
                    f"backend's own config class if the field belongs to a specific engine."
                )
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads true/false as 1/0 for int and float fields, so
        # {"min_chunk_size": true} became a 1.0 s chunk; a boolean is only a boolean
        # (in this class and in every subclass, whose fields this validator covers too)
        if isinstance(value, bool) and info.field_name in cls.model_fields:
            kinds = _number_kinds(cls.model_fields[info.field_name].annotation)
            if kinds and bool not in kinds:
                default = cls.model_fields[info.field_name].default
                example = default if isinstance(default, (int, float)) and not isinstance(default, bool) else (
                    1.0 if float in kinds else 1)
                raise ValueError(f"{info.field_name}={value!r} is a boolean, not a number; give a number, "
                                 f"e.g. {info.field_name}={example!r}")
        return value

    @field_validator("backend")
    @classmethod
    def _backend_name(cls, value: str) -> str:
        name = value.strip()
        if not name:
            raise ValueError("backend is empty: give a registered name such as 'pocketsphinx' "
                             "(asr_lab.available_backends() lists them)")
        return name

    @field_validator("lan")
    @classmethod
    def _language(cls, value: str) -> str:
        code = value.strip()
        base = code.split("-")[0].split("_")[0]
        if code != "auto" and not (base.isascii() and base.isalpha() and 2 <= len(base) <= 3):
            raise ValueError(f"lan={value!r} is not {_LANGUAGE_HELP}")
        return code if code == "auto" else code.lower()

    @field_validator("model", "model_cache_dir", "model_dir", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Field name -> description, for forms and ``--help`` texts."""
        return {name: (f.description or "") for name, f in cls.model_fields.items()}


def _number_kinds(annotation: Any) -> set:
    """The number types (int, float, bool) an annotation admits, through Optional/Union/Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _number_kinds(typing.get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return set().union(*(_number_kinds(a) for a in typing.get_args(annotation)))
    return {annotation} & {int, float, bool}


def config_from_json(text: Union[str, bytes]) -> dict:
    """A JSON object text (the seed's ``/load_model`` body) as a dict, or a :class:`ConfigError`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"config is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            f'give a JSON object such as {{"backend": "pocketsphinx", "lan": "en"}}'
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f'config must be a JSON object such as {{"backend": "pocketsphinx", "lan": "en"}}, '
            f"not {type(data).__name__} ({data!r:.80})"
        )
    return data


def parse_config(config: Union[ASRConfig, dict, str, bytes], config_class: type[ASRConfig] = ASRConfig) -> ASRConfig:
    """Turn an ``ASRConfig``, a dict or a JSON text into an instance of ``config_class``.

    An instance of another ASRConfig class is re-validated as ``config_class`` (so a plain
    ``ASRConfig`` given to a backend with extra fields gets that backend's defaults).
    Raises :class:`ConfigError` naming every bad field, its value and what is allowed.
    """
    if isinstance(config, (str, bytes)):
        data = config_from_json(config)
    elif isinstance(config, ASRConfig):
        if type(config) is config_class:
            return config
        data = config.model_dump(exclude_unset=True)
    else:
        data = config
    if not isinstance(data, dict):
        raise ConfigError(
            f"config must be an ASRConfig, a dict or a JSON object, not {type(data).__name__} ({data!r:.80}); "
            f'for example {{"backend": "pocketsphinx", "lan": "en"}}'
        )
    try:
        return config_class.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, config_class)) from None


def _explain(exc: ValidationError, config_class: type[ASRConfig]) -> str:
    lines = [f"invalid {config_class.__name__}:"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(config)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "value_error" or not err["loc"]:
            lines.append(f"  {field}: {msg}")
        else:
            lines.append(f"  {field}={err.get('input')!r}: {msg}")
    return "\n".join(lines)
