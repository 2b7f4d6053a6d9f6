"""The mlx-whisper backend on a random-weight MLX model built here: real loading and decoding (CPU on Linux).

The model's text is junk, so only structure and timing are asserted. mlx-whisper on CPU
takes seconds per call (and compiles its alignment code on the first one), so calls are
few, short (a handful of tokens) and the longer runs are marked slow.
"""

import importlib.util
import math
import time

import pytest

pytest.importorskip("mlx_whisper")

import asr_lab
from asr_lab.backends import hub
from asr_lab.backends.mlx_whisper import MLXWhisperASR, MLXWhisperConfig, MLXWhisperLoader, weights_dtype
from asr_lab.backends.registry import MissingDependencyError, get_loader
from asr_lab.core.config import ConfigError
from asr_lab.policies.local_agreement import OnlineASRProcessor
from asr_lab.testing import sample_speech
from asr_lab.testing.models import build_tiny_whisper

SR = 16000
TOLERANCE = 0.5  # random weights may place a word a little past the audio


@pytest.fixture(scope="session")
def tiny_mlx(tmp_path_factory):
    return str(build_tiny_whisper(tmp_path_factory.getbasetemp() / "tiny-mlx", "mlx"))


@pytest.fixture(scope="module")
def fast(tiny_mlx):
    """A config that loads the tiny model and keeps every call short (random weights need no timestamp tokens)."""
    return {
        "backend": "mlx-whisper",
        "model_dir": tiny_mlx,
        "temperature": 0,
        "without_timestamps": True,
        "max_new_tokens": 8,
    }


@pytest.fixture(scope="module")
def loaded(fast):
    return asr_lab.load_processor(fast)


@pytest.fixture(scope="module")
def audio():
    return sample_speech().audio[: 2 * SR]


def check_words(words, duration):
    assert words, "the model produced no words at all"
    for start, end, word in words:
        assert isinstance(word, str)
        assert math.isfinite(start) and math.isfinite(end)
        assert 0 <= start <= end <= duration + TOLERANCE
    starts = [w[0] for w in words]
    assert starts == sorted(starts)


def test_load_follows_the_weights_dtype(loaded, tiny_mlx):
    proc, meta = loaded
    assert isinstance(proc, OnlineASRProcessor) and isinstance(proc.asr, MLXWhisperASR)
    assert meta["separator"] == "" == proc.asr.sep
    assert meta["backend"] == "mlx-whisper" and meta["model_path"] == tiny_mlx
    assert weights_dtype(tiny_mlx) == "float32" and meta["fp16"] is False  # float32 weights cannot run in fp16
    assert meta["multilingual"] is True and meta["language"] == "en"


def test_transcribe_gives_timed_words_and_segment_ends(loaded, audio):
    asr = loaded[0].asr
    duration = len(audio) / SR
    result = asr.transcribe(audio, init_prompt=" Hello there.")
    check_words(asr.ts_words(result), duration)
    ends = asr.segments_end_ts(result)
    assert ends and all(math.isfinite(e) and 0 <= e <= duration + TOLERANCE for e in ends)
    words = [w["word"] for s in result for w in s["words"]]
    assert asr.sep.join(words) == "".join(w[2] for w in asr.ts_words(result))
    assert asr.ts_words([{**s, "no_speech_prob": 0.95} for s in result]) == []


@pytest.mark.slow
def test_streaming_over_the_real_model(loaded, audio):
    proc, _ = loaded
    proc.init(offset=5.0)
    outputs = []
    for i in range(0, len(audio), SR):
        proc.insert_audio_chunk(audio[i : i + SR])
        outputs.append(proc.process_iter())
    outputs.append(proc.finish())
    segments = [o for o in outputs if o is not None]
    assert segments, "nothing committed or pending after 2 s"
    previous_end = 5.0
    for start, end, text in segments:
        assert isinstance(text, str)
        assert previous_end - 0.1 <= start <= end <= 5.0 + len(audio) / SR + TOLERANCE
        previous_end = end


@pytest.mark.slow
def test_conformance_kit_passes(fast):
    from asr_lab.testing.conformance import check_processor

    report = check_processor(fast, sample_speech().audio[:SR], chunk_sizes=(1.0,), expect_text=False, silence_sec=1.0)
    report.assert_ok()


def test_float16_weights_run_in_fp16(tmp_path_factory, fast):
    half = build_tiny_whisper(tmp_path_factory.getbasetemp() / "tiny-mlx-f16", "mlx", dtype="float16")
    assert weights_dtype(str(half)) == "float16"
    asr = MLXWhisperASR(half, language="en")
    assert asr.fp16 is True
    assert MLXWhisperASR(half, fp16=False).fp16 is False


def test_loader_can_be_used_directly_with_a_dict(fast):
    proc, meta = MLXWhisperLoader().load({**fast, "lan": "auto", "vac": True})
    assert meta["language"] == "auto" and meta["vac"] is True and proc.asr.language is None
    assert MLXWhisperLoader.config_class is MLXWhisperConfig
    assert "MLX" in MLXWhisperLoader.description


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "override, message",
    [
        ({"fp16": True}, r"fp16=True needs float16 weights, but .* stores float32; use fp16=False"),
        ({"transcribe_options": {"beam_size": 5}}, r"mlx-whisper has no beam search"),
        ({"transcribe_options": {"best_off": 2}}, r"transcribe_options\['best_off'\] is not an argument.*allowed: .*best_of"),
        ({"transcribe_options": {"fp16": False}}, r"transcribe_options\['fp16'\] cannot be set here: use the config field 'fp16'"),
        ({"model": "huge", "model_dir": None}, r"model='huge' is not an mlx-whisper model name; use one of tiny.en, tiny"),
        ({"model_dir": "/nonexistent/folder"}, r"model_dir='/nonexistent/folder' is not a folder"),
        ({"lan": "xx"}, r"lan='xx' is not a language of this Whisper model; it supports: en, zh, de"),
        ({"temperature": [0, -0.2]}, r"must be a number >= 0"),
    ],
)
def test_bad_config_names_the_value_and_the_fix(fast, override, message):
    with pytest.raises(ConfigError, match=message):
        asr_lab.load_processor({**fast, **override})


def test_folder_without_weights(fast, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"needs config.json and weights.safetensors or weights.npz"):
        asr_lab.load_processor({**fast, "model_dir": str(tmp_path)})


@pytest.mark.parametrize("name", ["tiny", "mlx-community/whisper-large-v3-turbo"])
def test_hub_model_offline_fails_fast_and_says_what_to_do(fast, tmp_path, monkeypatch, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(hub.ModelNotFoundError) as info:
        asr_lab.load_processor({**fast, "model_dir": None, "model": name, "model_cache_dir": str(tmp_path)})
    assert time.perf_counter() - t0 < 5
    message = str(info.value)
    assert f"{name!r}" in message and "HF_HUB_OFFLINE" in message and "model_dir=" in message and "go online" in message


def test_hub_model_found_in_the_cache_loads_offline(fast, tmp_path, tiny_mlx, monkeypatch):
    """A model cached earlier is used offline: lay the tiny model out as the hub cache does."""
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = tmp_path / "models--mlx-community--whisper-tiny-mlx" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "weights.npz"):
        shutil.copy(f"{tiny_mlx}/{name}", snapshot / name)
    (tmp_path / "models--mlx-community--whisper-tiny-mlx" / "refs").mkdir()
    (tmp_path / "models--mlx-community--whisper-tiny-mlx" / "refs" / "main").write_text("0" * 40)
    _, meta = asr_lab.load_processor({**fast, "model_dir": None, "model": "tiny", "model_cache_dir": str(tmp_path)})
    assert meta["model"] == "tiny" and meta["model_path"] == str(snapshot)


def test_missing_engine_names_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlx" else real_find_spec(name, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install 'asr-lab\[mlx\]'"):
        get_loader("mlx-whisper")

