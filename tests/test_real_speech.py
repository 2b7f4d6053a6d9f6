"""Real speech in the lab: the non-contestant aligner, the bundled datasets/librivox, and corpus loaders.

The aligner (flite renderings + DTW) is checked where truth is known (synthetic speech,
flite's own phone timings) and against pocketsphinx's forced alignment on real LibriVox
speech (a second opinion). The LibriSpeech and Common Voice loaders read folders laid out
exactly as the released corpora are, with real audio in them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asr_lab
from asr_lab.data.synthesis_alignment import align_by_synthesis, boundary_differences, flite_words

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "datasets" / "librivox"
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="apt-get install flite")


@needs_flite
def test_flite_words_time_the_audio_synthesize_makes():
    from asr_lab.data.synth import synthesize

    text = "Unless to be rather cold hearted, and rather selfish."
    audio, words = flite_words(text, "rms")
    assert np.array_equal(audio, synthesize(text, "rms"))
    assert [w[2] for w in words] == ["unless", "to", "be", "rather", "cold", "hearted", "and", "rather", "selfish"]
    assert all(s < e for s, e, _ in words) and all(a[1] <= b[0] for a, b in zip(words, words[1:]))
    assert 0 < words[0][0] and words[-1][1] < len(audio) / 16000


@needs_flite
@pytest.mark.slow
def test_dtw_aligner_recovers_known_timings_of_synthetic_speech():
    """Truth known: one flite voice timed through the three others (measured median 0.009 s, p90 0.027 s)."""
    text = "and mister john dashwood had then leisure to consider how much"
    audio, truth = flite_words(text, "awb")
    alignment = align_by_synthesis(audio, text, voices=("slt", "rms", "kal16"))
    errors = boundary_differences(alignment.words, truth)
    assert np.median(errors) < 0.03 and np.percentile(errors, 90) < 0.08


def test_bundled_librivox_set():
    ds = asr_lab.load_dataset(DATASET)
    librivox = ds.filter(source="librivox", kind="utterance")
    assert len(librivox) == 5 and len(ds.filter(kind="utterance")) == 11 and ds["librivox-long"].meta["kind"] == "long_form"
    for u in ds:
        tokens = u.text.lower().split()
        assert [w[2] for w in u.words] == tokens, u.id
        assert all(0 <= s < e <= u.duration + 1e-3 for s, e, _ in u.words), u.id
        assert "pocketsphinx" not in u.meta.get("timings", "") and "whisper" not in u.meta.get("timings", "")
    audio = ds["librivox-0880"].load_audio()
    original, rate = sf.read("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav",
                             dtype="float32") if Path("/usr/share/pocketsphinx/test/data").is_dir() else (audio, 16000)  # fmt: skip
    assert rate == 16000 and np.abs(audio - original).max() < 1e-4  # the recording itself, 16-bit FLAC
    agreement = json.loads((DATASET / "alignment_agreement.json").read_text())
    assert agreement["median_sec"] <= 0.03 and agreement["p90_sec"] <= 0.1 and agreement["boundaries_compared"] >= 150
    assert f"median difference\n  {agreement['median_sec']} s" in (DATASET / "README.md").read_text()


@needs_flite
@pytest.mark.slow
def test_bundled_timings_rebuild_and_agree_with_pocketsphinx():
    """The recipe reproduces the bundled timings; pocketsphinx's forced alignment lies close to them."""
    pytest.importorskip("pocketsphinx")
    from asr_lab.data.forced_alignment import align_words

    utt = asr_lab.load_dataset(DATASET)["librivox-0930"]
    audio = utt.load_audio()
    again = align_by_synthesis(audio, utt.text)
    assert np.abs(np.array([w[:2] for w in again.words]) - np.array([w[:2] for w in utt.words])).max() <= 0.002
    second = boundary_differences(utt.words, align_words(audio, utt.text))
    assert np.median(second) < 0.05


# ---------------------------------------------------------------------------- corpus layouts


@pytest.fixture(scope="module")
def recordings():
    ds = asr_lab.load_dataset(DATASET).filter(kind="utterance")
    return [(u.text, u.load_audio()) for u in list(ds)[:3]]


def test_librispeech_folder_as_released(tmp_path, recordings):
    """LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac + .trans.txt, upper-case text."""
    root = tmp_path / "LibriSpeech"
    for name in ("BOOKS.TXT", "CHAPTERS.TXT", "LICENSE.TXT", "README.TXT", "SPEAKERS.TXT"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(";; header\n")
    chapters = {("dev-clean", "84", "121123"): recordings[:2], ("test-other", "1688", "142285"): recordings[2:]}
    for (split, speaker, chapter), items in chapters.items():
        folder = root / split / speaker / chapter
        folder.mkdir(parents=True)
        lines = []
        for n, (text, audio) in enumerate(items):
            uid = f"{speaker}-{chapter}-{n:04d}"
            sf.write(folder / f"{uid}.flac", audio, 16000, subtype="PCM_16")
            lines.append(f"{uid} {text.upper()}")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    ds = asr_lab.load_dataset(root)
    assert sorted(ds.ids) == ["1688-142285-0000", "84-121123-0000", "84-121123-0001"]
    u = ds["84-121123-0001"]
    assert u.meta == {"speaker": "84", "chapter": "121123", "split": "dev-clean"}
    assert u.text == recordings[1][0].upper()
    assert u.duration == pytest.approx(len(recordings[1][1]) / 16000, abs=1e-3)
    assert np.abs(u.load_audio() - recordings[1][1]).max() < 1e-4
    assert len(asr_lab.load_dataset(root / "test-other")) == 1


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="apt-get install ffmpeg")
def test_common_voice_release_folder(tmp_path, recordings):
    """cv-corpus-<version>/en/{clips/*.mp3 (48 kHz), test.tsv, clip_durations.tsv, ...} with the real columns."""
    lang = tmp_path / "cv-corpus-17.0-2024-03-15" / "en"
    (lang / "clips").mkdir(parents=True)
    header = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment"
    rows, durations = [], ["clip\tduration[ms]"]
    for n, (text, audio) in enumerate(recordings):
        clip = f"common_voice_en_{39000000 + n}.mp3"
        wav = tmp_path / f"{n}.wav"
        sf.write(wav, audio, 16000)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(wav), "-ar", "48000", "-ac", "1", str(lang / "clips" / clip)],
                       check=True)  # fmt: skip
        sentence = f'"{text.capitalize()}," she said.' if n == 0 else text.capitalize() + "."
        rows.append(f"{'ab' * 32}\t{clip}\t{'c' * 64}\t{sentence}\t\t2\t0\tthirties\tfemale_feminine\tEngland English\t\ten\t")
        durations.append(f"{clip}\t{round(len(audio) / 16)}")
    (lang / "test.tsv").write_text(header + "\n" + "\n".join(rows) + "\n")
    (lang / "clip_durations.tsv").write_text("\n".join(durations) + "\n")
    for other in ("train.tsv", "dev.tsv", "validated.tsv", "invalidated.tsv", "other.tsv"):
        (lang / other).write_text(header + "\n")
    ds = asr_lab.load_dataset(lang / "test.tsv")
    assert len(ds) == 3 and ds.ids[0] == "common_voice_en_39000000"
    first = ds[0]
    assert first.text.startswith('"') and first.text.endswith("she said.")  # quotes kept (QUOTE_NONE)
    assert first.meta["speaker"] == "ab" * 32 and first.meta.get("gender") == "female_feminine"
    assert first.duration == pytest.approx(len(recordings[0][1]) / 16000, abs=2e-3)
    decoded = first.load_audio()  # 48 kHz mp3 -> 16 kHz float32
    assert abs(len(decoded) - len(recordings[0][1])) < 0.06 * 16000
    assert len(asr_lab.load_dataset(lang / "train.tsv")) == 0
