"""Random-weight Whisper models built locally, for testing the real Whisper paths offline.

``build_tiny_whisper`` writes a complete model folder in the format an engine loads —
CTranslate2 for faster-whisper (``"ct2"``), MLX for mlx-whisper (``"mlx"``) — with nothing
downloaded. The weights are random, so the text such a model produces is junk and changes
with the seed; what it does exercise for real is everything around the text: loading the
folder, feature extraction, decoding, word timestamps, prompts, the streaming policy on
top. Tests assert structure and timing, never words.

The vocabulary has Whisper's real layout and ids (``<|startoftranscript|>`` = 50258,
``<|en|>`` = 50259, ``<|transcribe|>`` = 50359, ``<|notimestamps|>`` = 50363,
``<|0.00|>`` = 50364 … for the multilingual 51,865-token vocabulary). Its byte-pair
encoding comes from the ``multilingual.tiktoken`` / ``gpt2.tiktoken`` file that the
mlx-whisper and openai-whisper packages ship; without either, the text part is the 256
single bytes (padded with never-produced filler tokens when a multilingual vocabulary is
asked for, so that the special tokens keep their real ids: CTranslate2 and mlx-whisper
only treat a model as multilingual at exactly 51,865 tokens).

A d_model=64, 2-layer model is 5–8 MB and builds in about a second. Building is
idempotent: a complete folder built with the same parameters is reused.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np

__all__ = ["build_tiny_whisper", "whisper_vocabulary"]

FORMATS = ("ct2", "mlx")
MARKER = "asr_lab_tiny_whisper.json"
"""Written last into a built folder: the build parameters, so a complete folder is recognised."""

N_MELS = 80
N_AUDIO_CTX = 1500
N_TEXT_CTX = 448
N_TIMESTAMPS = 1501
INIT_STD = 0.02

LANGUAGES = (
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id", "hi",
    "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg", "lt", "la",
    "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy",
    "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be",
    "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
    "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su"
)
"""Whisper's 99 language tokens, in the order of their ids (OpenAI's order, not alphabetical)."""

MULTILINGUAL_TEXT_TOKENS = 50257
ENGLISH_TEXT_TOKENS = 50256


def build_tiny_whisper(
    path: Union[str, os.PathLike],
    format: Literal["ct2", "mlx"] = "ct2",
    *,
    d_model: int = 64,
    layers: int = 2,
    heads: Optional[int] = None,
    multilingual: bool = True,
    seed: int = 0,
    dtype: Optional[Literal["float32", "float16"]] = None,
) -> Path:
    """Build a random-weight Whisper model folder at ``path`` and return it.

    ``format="ct2"``: a CTranslate2 model (``model.bin``, ``config.json``,
    ``vocabulary.json``) plus ``tokenizer.json`` and ``preprocessor_config.json``, which
    faster-whisper would otherwise fetch from the hub. ``format="mlx"``: ``config.json``
    (``model_type: whisper`` and the model dimensions) and ``weights.npz`` for mlx-whisper.

    ``d_model``/``layers``/``heads`` size both encoder and decoder (``heads`` defaults to
    one per 64 dimensions, as in Whisper); ``multilingual=False`` gives an English-only
    vocabulary (51,864 tokens). ``dtype`` is how the weights are stored: by default
    float16 for ct2 (half the size; CTranslate2 converts to the compute type at load) and
    float32 for mlx (mlx-whisper then needs ``fp16=False``, the case real fp16 models skip).

    Random weights give junk text: use these models to test loading, decoding and timing,
    never recognition. An existing complete folder built with the same parameters is
    returned as is; a folder that holds anything else is refused rather than overwritten.
    """
    if format not in FORMATS:
        raise ValueError(f"format={format!r} is not supported; use one of {', '.join(map(repr, FORMATS))}")
    if heads is None:
        heads = max(1, d_model // 64)
    for name, value in (("d_model", d_model), ("layers", layers), ("heads", heads)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if dtype is None:
        dtype = "float16" if format == "ct2" else "float32"
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype={dtype!r} is not supported; use 'float32', 'float16' or None (the format's default)")
    if d_model % heads or d_model % 2:
        raise ValueError(
            f"d_model={d_model} must be even and divisible by heads={heads}; for example d_model=64 with heads=1, 2 or 4"
        )
    params = {
        "format": format,
        "d_model": d_model,
        "layers": layers,
        "heads": heads,
        "multilingual": bool(multilingual),
        "seed": int(seed),
        "dtype": dtype,
    }
    if format == "ct2":
        params["text_tokens"] = "tiktoken" if _tiktoken_source(multilingual) else "bytes"
    target = Path(path)
    if (target / MARKER).is_file():
        try:
            if json.loads((target / MARKER).read_text()) == params:
                return target
        except (OSError, json.JSONDecodeError):
            pass
    elif target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(
            f"{target} exists and is not a tiny Whisper model folder built by asr_lab; "
            f"give build_tiny_whisper an empty or new folder"
        )

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        rng = np.random.default_rng(seed)
        if format == "ct2":
            _write_ct2(staging, rng, d_model, layers, heads, multilingual, dtype)
        else:
            _write_mlx(staging, rng, d_model, layers, heads, multilingual, dtype)
        staging.chmod(0o755)
        (staging / MARKER).write_text(json.dumps(params, indent=1))
        if target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            if not (target / MARKER).is_file():  # another process did not just build it either
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- vocabulary


def whisper_vocabulary(multilingual: bool = True):
    """A ``tokenizers.Tokenizer`` with Whisper's token layout and ids (see the module docstring)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    byte_chars = _bytes_to_unicode()
    source = _tiktoken_source(multilingual)
    if source:
        ranked = _read_tiktoken(source)
    else:
        ranked = [bytes([b]) for b in range(256)]
    vocab = {"".join(byte_chars[b] for b in token): rank for rank, token in enumerate(ranked)}
    n_text = MULTILINGUAL_TEXT_TOKENS if multilingual else ENGLISH_TEXT_TOKENS
    if not source and multilingual:
        vocab.update({f"<|filler{i}|>": i for i in range(len(vocab), n_text)})
    merges = _merges(ranked, byte_chars) if source else []

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in _special_tokens()])
    return tokenizer


def _special_tokens() -> list[str]:
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *[f"<|{code}|>" for code in LANGUAGES],
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",  # CTranslate2 looks the no-speech token up by this (older) name
        "<|notimestamps|>",
        *[f"<|{i * 0.02:.2f}|>" for i in range(N_TIMESTAMPS)],
    ]


def _tiktoken_source(multilingual: bool) -> Optional[str]:
    """The BPE ranks file shipped with mlx-whisper or openai-whisper, found without importing them."""
    name = "multilingual.tiktoken" if multilingual else "gpt2.tiktoken"
    for package in ("mlx_whisper", "whisper"):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        for folder in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(folder) / "assets" / name
            if candidate.is_file():
                return str(candidate)
    return None


def _read_tiktoken(path: str) -> list[bytes]:
    """Tokens of a ``.tiktoken`` file (base64 token, rank per line), ordered by rank."""
    pairs = []
    with open(path, encoding="ascii") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                pairs.append((int(rank), base64.b64decode(token)))
    pairs.sort()
    if [r for r, _ in pairs] != list(range(len(pairs))):
        raise ValueError(f"{path}: ranks are not 0..{len(pairs) - 1}; not a tiktoken BPE file")
    return [t for _, t in pairs]


def _merges(ranked: list[bytes], byte_chars: list[str]) -> list[tuple[str, str]]:
    """BPE merges recovered from ranks: each multi-byte token is the merge of two lower-ranked ones.

    A tiktoken file stores only ranks; a token of rank r was created by merging two
    tokens that existed before it. Every such split is listed, ordered by r (then by the
    parts' ranks), which reproduces the encoder's merge priority.
    """
    rank = {t: r for r, t in enumerate(ranked)}
    found = []
    for r, token in enumerate(ranked):
        for i in range(1, len(token)):
            left, right = rank.get(token[:i]), rank.get(token[i:])
            if left is not None and right is not None and left < r and right < r:
                found.append((r, left, right, token[:i], token[i:]))
    found.sort()

    def text(token: bytes) -> str:
        return "".join(byte_chars[b] for b in token)

    return [(text(a), text(b)) for _, _, _, a, b in found]


def _bytes_to_unicode() -> list[str]:
    """The byte-level BPE alphabet: printable bytes stand for themselves, the rest map above U+0100."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = [""] * 256
    extra = 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


# --------------------------------------------------------------------------- weights


def _normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * INIT_STD).astype(np.float32)


def _sinusoids(length: int, channels: int) -> np.ndarray:
    """Whisper's fixed encoder positions: sin and cos at geometric timescales 1 … 10,000."""
    increment = math.log(10000) / (channels // 2 - 1) if channels > 2 else 1.0
    inv = np.exp(-increment * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def _write_ct2(
    folder: Path, rng: np.random.Generator, d: int, layers: int, heads: int, multilingual: bool, dtype: str
) -> None:
    from ctranslate2.specs import whisper_spec

    tokenizer = whisper_vocabulary(multilingual)
    n_vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    spec = whisper_spec.WhisperSpec(layers, heads, layers, heads)

    def linear(s, n_out, n_in, bias=True):
        s.weight = _normal(rng, n_out, n_in)
        if bias:
            s.bias = np.zeros(n_out, np.float32)

    def norm(s):
        s.gamma = np.ones(d, np.float32)
        s.beta = np.zeros(d, np.float32)

    def ffn(s):
        norm(s.layer_norm)
        linear(s.linear_0, 4 * d, d)
        linear(s.linear_1, d, 4 * d)

    enc = spec.encoder
    enc.conv1.weight, enc.conv1.bias = _normal(rng, d, N_MELS, 3), np.zeros(d, np.float32)
    enc.conv2.weight, enc.conv2.bias = _normal(rng, d, d, 3), np.zeros(d, np.float32)
    enc.position_encodings.encodings = _sinusoids(N_AUDIO_CTX, d)
    norm(enc.layer_norm)
    for layer in enc.layer:
        norm(layer.self_attention.layer_norm)
        linear(layer.self_attention.linear[0], 3 * d, d)  # fused query, key, value
        linear(layer.self_attention.linear[1], d, d)
        ffn(layer.ffn)

    dec = spec.decoder
    dec.embeddings.weight = _normal(rng, n_vocab, d)
    dec.position_encodings.encodings = _normal(rng, N_TEXT_CTX, d)
    norm(dec.layer_norm)
    dec.projection.weight = dec.embeddings.weight  # Whisper ties the output projection to the embeddings
    for layer in dec.layer:
        norm(layer.self_attention.layer_norm)
        linear(layer.self_attention.linear[0], 3 * d, d)
        linear(layer.self_attention.linear[1], d, d)
        norm(layer.attention.layer_norm)
        linear(layer.attention.linear[0], d, d)  # cross-attention query
        linear(layer.attention.linear[1], 2 * d, d)  # fused key, value over the audio
        linear(layer.attention.linear[2], d, d)
        ffn(layer.ffn)

    tokens = [tokenizer.id_to_token(i) for i in range(n_vocab)]
    spec.register_vocabulary(tokens)
    ids = {t: i for i, t in enumerate(tokens)}
    spec.config.suppress_ids = []
    spec.config.suppress_ids_begin = [ids[_bytes_to_unicode()[ord(" ")]], ids["<|endoftext|>"]]
    spec.config.lang_ids = [ids[f"<|{code}|>"] for code in LANGUAGES] if multilingual else []
    spec.config.alignment_heads = [(layer, head) for layer in range(layers // 2, layers) for head in range(heads)]
    spec.validate()
    spec.optimize(quantization=dtype)
    spec.save(str(folder))

    tokenizer.save(str(folder / "tokenizer.json"))
    preprocessor = {
        "feature_size": N_MELS,
        "sampling_rate": 16000,
        "hop_length": 160,
        "chunk_length": 30,
        "n_fft": 400,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=1))


def _write_mlx(
    folder: Path, rng: np.random.Generator, d: int, layers: int, heads: int, multilingual: bool, dtype: str
) -> None:
    n_vocab = (MULTILINGUAL_TEXT_TOKENS if multilingual else ENGLISH_TEXT_TOKENS) + len(_special_tokens())
    weights: dict[str, np.ndarray] = {}

    def linear(name, n_out, n_in, bias=True):
        weights[f"{name}.weight"] = _normal(rng, n_out, n_in)
        if bias:
            weights[f"{name}.bias"] = np.zeros(n_out, np.float32)

    def norm(name):
        weights[f"{name}.weight"] = np.ones(d, np.float32)
        weights[f"{name}.bias"] = np.zeros(d, np.float32)

    def attention(name):
        linear(f"{name}.query", d, d)
        linear(f"{name}.key", d, d, bias=False)
        linear(f"{name}.value", d, d)
        linear(f"{name}.out", d, d)

    def block(name, cross):
        attention(f"{name}.attn")
        norm(f"{name}.attn_ln")
        if cross:
            attention(f"{name}.cross_attn")
            norm(f"{name}.cross_attn_ln")
        linear(f"{name}.mlp1", 4 * d, d)
        linear(f"{name}.mlp2", d, 4 * d)
        norm(f"{name}.mlp_ln")

    # MLX convolution weights are (out, kernel, in)
    weights["encoder.conv1.weight"], weights["encoder.conv1.bias"] = _normal(rng, d, 3, N_MELS), np.zeros(d, np.float32)
    weights["encoder.conv2.weight"], weights["encoder.conv2.bias"] = _normal(rng, d, 3, d), np.zeros(d, np.float32)
    for i in range(layers):
        block(f"encoder.blocks.{i}", cross=False)
    norm("encoder.ln_post")
    weights["decoder.token_embedding.weight"] = _normal(rng, n_vocab, d)
    weights["decoder.positional_embedding"] = _normal(rng, N_TEXT_CTX, d)
    for i in range(layers):
        block(f"decoder.blocks.{i}", cross=True)
    norm("decoder.ln")

    np.savez(folder / "weights.npz", **{name: w.astype(dtype) for name, w in weights.items()})
    config = {
        "model_type": "whisper",
        "n_mels": N_MELS,
        "n_audio_ctx": N_AUDIO_CTX,
        "n_audio_state": d,
        "n_audio_head": heads,
        "n_audio_layer": layers,
        "n_vocab": n_vocab,
        "n_text_ctx": N_TEXT_CTX,
        "n_text_state": d,
        "n_text_head": heads,
        "n_text_layer": layers,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1))
