"""Speech synthesis (flite, espeak-ng) and forced alignment, on the real programs and model.

Alignment is checked against an independent clock: flite's own phone timings (``-psdur``),
which say when the synthesiser started and stopped speaking.
"""

import importlib.util
import json
import shutil
import subprocess

import numpy as np
import pytest

from asr_lab.data import synth
from asr_lab.data.forced_alignment import Aligner, AlignmentError, OutOfVocabularyError, align_words, alignment_tokens
from asr_lab.data.synth import CLEAR_FLITE_VOICES, SynthesisError, espeak_voices, flite_voices, synthesize

needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (apt-get install flite)")
needs_pocketsphinx = pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None, reason="pocketsphinx missing")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

SR = 16000
TEXT = "Please call Stella and ask her to bring these things."


def flite_speech_span(text, voice):
    """(first phone start, last phone end) in seconds from flite's phone list, pauses excluded."""
    out = subprocess.run(
        ["flite", "-voice", voice, "-t", text, "-psdur", "-o", "none"], capture_output=True, text=True, check=True
    ).stdout
    phones = [(p.rsplit(":", 1)[0], float(p.rsplit(":", 1)[1])) for p in out.split()]
    ends = [end for _, end in phones]
    starts = [0.0] + ends[:-1]
    spoken = [(s, e) for (name, _), s, e in zip(phones, starts, ends) if name != "pau"]
    return spoken[0][0], spoken[-1][1], ends


# ----------------------------------------------------------------------------- synthesis


@needs_flite
@pytest.mark.parametrize("voice", [*CLEAR_FLITE_VOICES, "kal"])
def test_flite_voices_give_16k_float_speech(voice):
    audio = synthesize(TEXT, voice)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 2.0 < len(audio) / SR < 5.0  # kal speaks at 8 kHz: resampled, not played at double speed
    assert 0.05 < np.abs(audio).max() <= 1.0
    _, last_end, _ = flite_speech_span(TEXT, voice)
    assert len(audio) / SR == pytest.approx(last_end, abs=0.3)


@needs_espeak
def test_espeak_ng_speaks_too():
    audio = synthesize("Hello there.", engine="espeak-ng")
    assert audio.dtype == np.float32 and 0.3 < len(audio) / SR < 3.0 and np.abs(audio).max() > 0.05
    assert "en-us" in espeak_voices() and not any(v.startswith("mb-") or v == "variant" for v in espeak_voices())


@needs_flite
def test_voice_lists():
    voices = flite_voices()
    assert set(CLEAR_FLITE_VOICES) <= set(voices) and "awb_time" not in voices
    assert synth.available_voices("flite") == voices


@needs_flite
def test_bad_requests_name_the_value():
    with pytest.raises(SynthesisError, match=r"no voice 'bob'.*slt"):
        synthesize("Hello.", "bob")
    with pytest.raises(ValueError, match="engine='festival'"):
        synthesize("Hello.", engine="festival")
    with pytest.raises(ValueError, match="non-empty"):
        synthesize("   ")


def test_missing_program_names_the_apt_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    synth._known_voices.cache_clear()
    try:
        with pytest.raises(SynthesisError, match="apt-get install espeak-ng"):
            synthesize("Hello.", engine="espeak-ng")
        with pytest.raises(SynthesisError, match="apt-get install flite"):
            synthesize("Hello.", "slt")
    finally:
        synth._known_voices.cache_clear()


# ----------------------------------------------------------------------------- alignment


@pytest.fixture(scope="module")
def aligner():
    return Aligner()


def test_tokens():
    assert alignment_tokens("Hello, World! Don’t stop -- it's well-known.") == [
        "hello", "world", "don't", "stop", "it's", "well-known"
    ]


@needs_pocketsphinx
@needs_flite
@pytest.mark.parametrize("voice", ["slt", "awb"])
def test_alignment_agrees_with_flites_own_timing(aligner, voice):
    audio = synthesize(TEXT, voice)
    words = align_words(audio, TEXT, aligner=aligner)
    assert [w[2] for w in words] == alignment_tokens(TEXT)
    assert all(0 <= a < b <= len(audio) / SR for a, b, _ in words)
    assert all(a[1] <= b[0] + 1e-9 for a, b in zip(words, words[1:]))
    first_start, last_end, phone_ends = flite_speech_span(TEXT, voice)
    assert words[0][0] == pytest.approx(first_start, abs=0.08)
    assert words[-1][1] == pytest.approx(last_end, abs=0.08)
    # every word boundary the aligner found lies near a phone boundary of the synthesiser
    boundaries = np.array([0.0, *phone_ends])
    for start, end, _ in words:
        assert np.abs(boundaries - start).min() < 0.06 and np.abs(boundaries - end).min() < 0.06


@needs_pocketsphinx
@needs_flite
def test_alignment_is_repeatable_and_takes_files(aligner, tmp_path):
    from asr_lab.core.audio import save_audio

    audio = synthesize("The river flows past the town.", "rms")
    path = save_audio(tmp_path / "river.flac", audio)
    first = align_words(audio, "The river flows past the town.", aligner=aligner)
    assert align_words(str(path), "the river flows past the town", aligner=aligner) == first
    assert align_words(audio, "The river flows past the town.") == first  # the shared default aligner


@needs_pocketsphinx
@needs_flite
def test_alignment_errors(aligner):
    audio = synthesize("The river flows past the town.", "rms")
    with pytest.raises(OutOfVocabularyError, match="'7', 'zzyzx'") as err:
        align_words(audio, "The river flows 7 times past zzyzx.", aligner=aligner)
    assert err.value.words == ["7", "zzyzx"] and "spoken words" in str(err.value)
    with pytest.raises(AlignmentError, match="could not align"):
        align_words(audio[: SR // 2], "The river flows past the town and over the hills far away.", aligner=aligner)
    with pytest.raises(AlignmentError, match="no words"):
        align_words(audio, "...", aligner=aligner)


@needs_pocketsphinx
@needs_flite
def test_extra_words_make_unknown_words_alignable():
    aligner = Aligner(extra_words={"zorblat": "Z AO R B L AE T"})
    audio = synthesize("The zorblat flows past the town.", "rms")
    assert [w[2] for w in aligner.align(audio, "The zorblat flows past the town.")][1] == "zorblat"
    with pytest.raises(ValueError, match="phones"):
        aligner.add_word("bad", "QQ XX")


def test_bundled_sample_is_small_and_consistent():
    from asr_lab.testing import sample_speech
    from asr_lab.testing.data import build_sample

    sample = sample_speech()
    assert sample.path.stat().st_size < 100_000
    assert 3.0 <= len(sample.audio) / SR <= 4.0
    assert sample.text == build_sample.TEXT
    assert [w[2] for w in sample.words] == alignment_tokens(sample.text)
    assert json.loads(sample.path.with_suffix(".json").read_text())[0] == list(sample.words[0])


@needs_pocketsphinx
@needs_flite
def test_sample_builder_reproduces_the_bundled_timings(tmp_path):
    from asr_lab.testing import sample_speech
    from asr_lab.testing.data.build_sample import build

    flac = build(tmp_path)
    rebuilt = json.loads(flac.with_suffix(".json").read_text())
    assert [tuple(w) for w in rebuilt] == sample_speech().words
