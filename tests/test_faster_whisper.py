"""The faster-whisper backend on a random-weight CTranslate2 model built here: real loading and decoding.

The model's text is junk, so only structure and timing are asserted. Decoding options keep
each call short: greedy, one temperature, no timestamp tokens, a few tokens.
"""

import dataclasses
import importlib.util
import math
import time

import numpy as np
import pytest

pytest.importorskip("faster_whisper")

import asr_lab
from asr_lab.backends import hub
from asr_lab.backends.faster_whisper import FasterWhisperASR, FasterWhisperConfig, FasterWhisperLoader
from asr_lab.backends.registry import MissingDependencyError, get_loader
from asr_lab.core.config import ConfigError
from asr_lab.policies.local_agreement import OnlineASRProcessor
from asr_lab.policies.vac import VACOnlineASRProcessor
from asr_lab.testing import sample_speech
from asr_lab.testing.models import build_tiny_whisper

SR = 16000
TOLERANCE = 0.5  # random weights may place a word a little past the audio


@pytest.fixture(scope="session")
def tiny_ct2(tmp_path_factory):
    return str(build_tiny_whisper(tmp_path_factory.getbasetemp() / "tiny-ct2", "ct2"))


@pytest.fixture(scope="module")
def fast(tiny_ct2):
    """A config that loads the tiny model and keeps every call short."""
    return {
        "backend": "faster-whisper",
        "model_dir": tiny_ct2,
        "device": "cpu",
        "cpu_threads": 1,  # more threads than free cores stalls CTranslate2 badly on a shared machine
        "beam_size": 1,
        "temperature": 0,
        "without_timestamps": True,
        "max_new_tokens": 24,
    }


@pytest.fixture(scope="module")
def loaded(fast):
    return asr_lab.load_processor(fast)


@pytest.fixture(scope="module")
def audio():
    return sample_speech().audio[: 3 * SR]


def check_words(words, duration):
    assert words, "the model produced no words at all"
    for start, end, word in words:
        assert isinstance(word, str)
        assert math.isfinite(start) and math.isfinite(end)
        assert 0 <= start <= end <= duration + TOLERANCE
    starts = [w[0] for w in words]
    assert starts == sorted(starts)


def test_load_gives_local_agreement_with_whisper_separator(loaded):
    proc, meta = loaded
    assert isinstance(proc, OnlineASRProcessor) and isinstance(proc.asr, FasterWhisperASR)
    assert meta["separator"] == "" == proc.asr.sep
    assert meta["backend"] == "faster-whisper" and meta["device"] == "cpu"
    assert meta["compute_type"] == "float32"  # the float16 file, converted for this CPU (and said so)
    assert meta["multilingual"] is True and meta["language"] == "en"
    assert proc.min_chunk_sec == 1.0


def test_transcribe_gives_timed_words_and_segment_ends(loaded, audio):
    asr = loaded[0].asr
    t0 = time.perf_counter()
    result = asr.transcribe(audio, init_prompt="")
    elapsed = time.perf_counter() - t0
    duration = len(audio) / SR
    check_words(asr.ts_words(result), duration)
    ends = asr.segments_end_ts(result)
    assert ends and all(math.isfinite(e) and 0 < e <= duration + TOLERANCE for e in ends) and ends == sorted(ends)
    assert asr.last_info.language == "en" and asr.last_info.duration == pytest.approx(duration)
    assert elapsed < 20
    with_prompt = asr.ts_words(asr.transcribe(audio, init_prompt=" Hello there, how are you?"))
    check_words(with_prompt, duration)


def test_words_join_with_the_separator_as_whisper_writes_them(loaded, audio):
    asr = loaded[0].asr
    result = asr.transcribe(audio)
    words = [w.word for s in result for w in s.words]
    assert asr.sep.join(words) == "".join(w[2] for w in asr.ts_words(result))
    assert "".join(words).strip() == "".join(s.text for s in result).strip()


def test_words_of_non_speech_segments_are_skipped(loaded, audio):
    asr = loaded[0].asr
    result = asr.transcribe(audio)
    assert asr.ts_words([dataclasses.replace(s, no_speech_prob=0.95) for s in result]) == []


def test_streaming_over_the_real_model(loaded, audio):
    proc, _ = loaded
    proc.init(offset=10.0)
    outputs = []
    for i in range(0, len(audio), SR):
        proc.insert_audio_chunk(audio[i : i + SR])
        outputs.append(proc.process_iter())
    outputs.append(proc.finish())
    segments = [o for o in outputs if o is not None]
    assert segments, "nothing committed or pending after 3 s"
    end_of_audio = 10.0 + len(audio) / SR
    previous_end = 10.0 - 0.1
    for start, end, text in segments:
        assert isinstance(text, str)
        assert previous_end - 0.1 <= start <= end <= end_of_audio + TOLERANCE
        previous_end = end


def test_vac_config_wraps_the_same_backend(fast):
    proc, meta = asr_lab.load_processor({**fast, "vac": True, "vac_chunk_size": 0.04})
    assert isinstance(proc, VACOnlineASRProcessor) and isinstance(proc.asr, FasterWhisperASR)
    assert meta["vac"] is True and meta["separator"] == ""
    speech = sample_speech().audio
    silence = np.zeros(SR, dtype=np.float32)
    proc.init()
    out = []
    for piece in (silence, speech, silence):
        proc.insert_audio_chunk(piece)
        out.append(proc.process_iter())
    out.append(proc.finish())
    total = (2 * len(silence) + len(speech)) / SR
    for seg in filter(None, out):
        assert 0.5 <= seg[0] <= seg[1] <= total + TOLERANCE


def test_loader_can_be_used_directly_with_a_dict(fast):
    proc, meta = FasterWhisperLoader().load({**fast, "lan": "auto"})
    assert meta["language"] == "auto" and proc.asr.language is None
    assert FasterWhisperLoader.config_class is FasterWhisperConfig
    assert "CTranslate2" in FasterWhisperLoader.description


@pytest.mark.slow
@pytest.mark.parametrize("vac", [False, True])
def test_conformance_kit_passes(fast, vac):
    from asr_lab.testing.conformance import check_processor

    report = check_processor(
        {**fast, "vac": vac}, sample_speech().audio[: 2 * SR], chunk_sizes=(0.25, 1.0), iter_every_sec=1.0, expect_text=False
    )
    report.assert_ok()


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "override, message",
    [
        ({"compute_type": "float8"}, r"compute_type='float8' is not a CTranslate2 compute type; use one of default, auto"),
        ({"device": "tpu"}, r"device='tpu'"),
        ({"temperature": -1}, r"temperature=-1(\.0)? must be a number >= 0"),
        ({"beam_size": 0}, r"beam_size"),
        ({"transcribe_options": {"hotword": "x"}}, r"transcribe_options\['hotword'\] is not an argument.*allowed: .*hotwords"),
        ({"transcribe_options": {"language": "de"}}, r"transcribe_options\['language'\] cannot be set here: use the config field 'lan'"),
        ({"transcribe_options": {"beam_size": 2}}, r"transcribe_options\['beam_size'\] cannot be set here: use the config field 'beam_size'"),
        ({"model": "tinyy", "model_dir": None}, r"model='tinyy' is not a faster-whisper model name; use one of tiny.en, tiny"),
        ({"model_dir": "/nonexistent/folder"}, r"model_dir='/nonexistent/folder' is not a folder"),
        ({"lan": "xx"}, r"lan='xx' is not a language of this Whisper model; it supports: af, am, ar, .*, zh \(or 'auto'"),
        ({"beam_sise": 2}, r"beam_sise.*did you mean 'beam_size'"),
    ],
)
def test_bad_config_names_the_value_and_the_fix(fast, override, message):
    with pytest.raises(ConfigError, match=message):
        asr_lab.load_processor({**fast, **override})


def test_unsupported_compute_type_lists_what_this_machine_supports(fast):
    import ctranslate2

    supported = ctranslate2.get_supported_compute_types("cpu")
    missing = next(t for t in ("float16", "bfloat16", "int8_float16", "int16") if t not in supported)
    with pytest.raises(ConfigError, match=rf"compute_type='{missing}' is not supported on cpu.*supported here: .*float32"):
        asr_lab.load_processor({**fast, "compute_type": missing})


def test_cuda_without_a_gpu_is_an_error_not_a_fallback(fast):
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(ConfigError, match=r"device='cuda' but CTranslate2 sees no usable CUDA GPU.*device='cpu'"):
        asr_lab.load_processor({**fast, "device": "cuda"})


def test_folder_that_is_not_a_ctranslate2_model(fast, tmp_path):
    with pytest.raises(ConfigError, match=r"has no model.bin.*ct2-transformers-converter"):
        asr_lab.load_processor({**fast, "model_dir": str(tmp_path)})


def test_english_only_model_refuses_other_languages(fast, tmp_path_factory):
    english = build_tiny_whisper(tmp_path_factory.getbasetemp() / "tiny-ct2-en", "ct2", multilingual=False)
    _, meta = asr_lab.load_processor({**fast, "model_dir": str(english)})
    assert meta["multilingual"] is False
    with pytest.raises(ConfigError, match=r"lan='de'.*English-only model"):
        asr_lab.load_processor({**fast, "model_dir": str(english), "lan": "de"})


# ----------------------------------------------------------------------------- hub


def test_hub_name_offline_fails_fast_and_says_what_to_do(fast, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(hub.ModelNotFoundError) as info:
        asr_lab.load_processor({**fast, "model_dir": None, "model": "large-v2", "model_cache_dir": str(tmp_path)})
    assert time.perf_counter() - t0 < 5
    message = str(info.value)
    assert "'large-v2'" in message and "HF_HUB_OFFLINE" in message and "model_dir=" in message
    assert "go online" in message


def test_hub_name_without_network_fails_fast(fast, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://127.0.0.1:9")  # nothing listens: like no network
    for variable in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    t0 = time.perf_counter()
    with pytest.raises(hub.ModelNotFoundError, match=r"'Systran/faster-whisper-tiny'.*cannot be reached.*model_dir="):
        asr_lab.load_processor(
            {**fast, "model_dir": None, "model": "Systran/faster-whisper-tiny", "model_cache_dir": str(tmp_path)}
        )
    assert time.perf_counter() - t0 < 5


def test_hub_probe(monkeypatch):
    from huggingface_hub import constants

    for variable in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://127.0.0.1:9")
    t0 = time.perf_counter()
    assert hub.hub_reachable(timeout=2) is False
    assert time.perf_counter() - t0 < 3
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert hub.hub_reachable() is True  # behind a proxy the hub client decides


# ----------------------------------------------------------------------------- missing extra


def test_missing_engine_names_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "faster_whisper" else real_find_spec(name, *a)
    )
    with pytest.raises(MissingDependencyError, match=r"pip install 'asr-lab\[faster-whisper\]'"):
        get_loader("faster-whisper")
    row = next(b for b in asr_lab.available_backends() if b.name == "faster-whisper")
    assert row.installed is False and row.install == "pip install 'asr-lab[faster-whisper]'"


def test_server_streams_share_the_model(loaded):
    proc, _ = loaded
    twin = proc.spawn()
    assert twin is not proc and twin.asr is proc.asr  # CTranslate2 takes concurrent calls: no serialising wrapper
