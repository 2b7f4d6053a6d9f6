"""The Asterisk recipe (real prompts from Debian's packages), the aligner on multi-sentence text, the word-time check.

The recipe tests run on the installed package's real recordings with a shortened copy of
its transcript (three clips), so a build takes seconds; the whole set is built by the
slow test.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import asr_lab
from asr_lab.data.dataset import Dataset, DatasetError, Utterance, WordTimeError
from asr_lab.data.recipes import asterisk

ROOT = Path(__file__).resolve().parent.parent
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="apt-get install flite")
needs_asterisk = pytest.mark.skipif(
    not (asterisk.TRANSCRIPT.is_file() and asterisk.SOUNDS.is_dir()) or shutil.which("ffmpeg") is None,
    reason=f"{asterisk.APT_COMMAND} ffmpeg",
)
SHORT = ("activated", "added", "auth-thankyou")


def _monotonic_inside(words, duration):
    return all(s <= e for s, e, _ in words) and all(a[1] <= b[0] + 1e-3 for a, b in zip(words, words[1:])) and (
        words[-1][1] <= duration + 1e-3
    )


# ---------------------------------------------------------------------------- the aligner, multi-sentence


@needs_flite
@pytest.mark.parametrize("voice", ["slt", "kal16"])
def test_flite_words_keep_counting_across_sentences(voice):
    """Each sentence flite splits off is placed where its audio lies: the reference is that sentence spoken alone."""
    from asr_lab.data.synth import synthesize
    from asr_lab.data.synthesis_alignment import flite_words

    first, second = "It was the best of times.", "It was the worst of times."
    audio, words = flite_words(f"{first} {second}", voice)
    assert np.array_equal(audio, synthesize(f"{first} {second}", voice))
    assert _monotonic_inside(words, len(audio) / 16000)
    offset = len(synthesize(first, voice)) / 16000
    _, alone = flite_words(second, voice)
    assert len(words) == 12 and words[6][2] == "it" and words[6][0] > words[5][1]
    np.testing.assert_allclose([w[:2] for w in words[6:]], [(s + offset, e + offset) for s, e, _ in alone], atol=1e-3)


@needs_flite
def test_flite_words_share_a_token_spoken_as_a_unit():
    from asr_lab.data.synthesis_alignment import flite_words

    audio, words = flite_words("a 28.8 kilobit modem", "slt")
    assert [w[2] for w in words] == ["a", "28", "8", "kilobit", "modem"]
    assert _monotonic_inside(words, len(audio) / 16000)


@needs_asterisk
@needs_flite
@pytest.mark.slow
def test_aligner_on_a_73_second_multi_sentence_recording():
    """demo-instruct: 73 s, 10 sentences, real voice. Monotonic, inside the audio, and equal to the shipped timings."""
    from asr_lab.data.synthesis_alignment import align_by_synthesis

    prompt = next(p for p in asterisk.asterisk_prompts() if p.name == "demo-instruct")
    audio = asterisk.decode_g722(prompt.path)
    assert len(audio) / 16000 > 60 and prompt.text.count(". ") >= 8
    words = align_by_synthesis(audio, prompt.text).words
    assert _monotonic_inside(words, len(audio) / 16000)
    starts = np.array([w[0] for w in words])
    assert starts[-1] > 60 and np.all(np.diff(starts) >= 0)  # no restart at any sentence
    shipped = json.loads((asterisk.SHIPPED / "alignments.json").read_text())["clips"]["demo-instruct"]["words"]
    assert np.abs(np.array([w[:2] for w in words]) - np.array([w[:2] for w in shipped])).max() <= 0.002


# ---------------------------------------------------------------------------- the word-time check


def test_word_time_check_names_the_utterance_word_and_times(tmp_path):
    bad = Utterance(id="u1", audio=None, text="a b c", duration=2.0, words=[(0.1, 0.5, "a"), (0.2, 0.6, "b"), (0.7, 2.5, "c")])
    with pytest.raises(WordTimeError) as err:
        Dataset([bad], name="bad").check()
    message = str(err.value)
    assert message.startswith("dataset 'bad': 2 word time problem(s)")
    assert "'u1'" in message and "'b'" in message and "0.200-0.600" in message and "not monotonic" in message
    assert "'c'" in message and "ends after the audio (2.000 s)" in message
    Dataset([bad], name="bad").to_manifest(tmp_path / "manifest.jsonl")
    with pytest.raises(DatasetError, match="u1"):
        asr_lab.load_dataset(tmp_path)
    good = Utterance(id="u2", audio=None, text="a b", duration=1.0, words=[(0.1, 0.5, "a"), (0.5, 0.9, "b")])
    assert Dataset([good]).check().ids == ["u2"]


@pytest.mark.parametrize("folder", ["datasets/librivox", "datasets/mini"])
def test_shipped_manifests_pass_the_word_time_check(folder):
    ds = asr_lab.load_dataset(ROOT / folder)  # loading checks; checked again explicitly
    assert ds.check() is ds and any(u.words for u in ds)


# ---------------------------------------------------------------------------- the recipe


@needs_asterisk
def test_prompts_of_the_installed_package():
    prompts = asterisk.asterisk_prompts()
    by_name = {p.name: p for p in prompts}
    assert len(prompts) == 553 and "beep" not in by_name and "silence/1" not in by_name
    assert by_name["letters/at"].text == "at" and by_name["digits/13"].text == "thirteen"
    assert "(" not in by_name["vm-intro"].text and by_name["vm-intro"].text.endswith("pound key.")
    assert 3000 < sum(len(p.text.split()) for p in prompts) < 3500
    assert len({p.id for p in prompts}) == len(prompts)


def test_missing_package_names_the_apt_command(tmp_path):
    with pytest.raises(asterisk.AsteriskNotInstalledError, match="apt-get install -y asterisk-core-sounds-en asterisk-core-sounds-en-g722"):
        asterisk.prepare_asterisk(tmp_path / "out", transcript=tmp_path / "none.txt.gz", sounds=tmp_path, log=None)


def _small_package(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of three real prompts and their transcript lines (plus a tone line the recipe must skip)."""
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    lines = ["; Core Asterisk Sounds in English", "", "beep: [this is a simple beep tone]"]
    with gzip.open(asterisk.TRANSCRIPT, "rt") as f:
        wanted = {line.split(":", 1)[0]: line.strip() for line in f if line.split(":", 1)[0] in SHORT}
    for name in SHORT:
        shutil.copy(asterisk.SOUNDS / f"{name}.g722", sounds / f"{name}.g722")
        lines.append(wanted[name])
    transcript = tmp_path / "core-sounds-en.txt.gz"
    with gzip.open(transcript, "wt") as f:
        f.write("\n".join(lines) + "\n")
    return transcript, sounds


@needs_asterisk
@needs_flite
def test_recipe_is_checksummed_idempotent_and_sees_a_changed_package(tmp_path):
    transcript, sounds = _small_package(tmp_path)
    out = tmp_path / "built"
    said: list[str] = []
    ds = asterisk.prepare_asterisk(out, transcript=transcript, sounds=sounds, log=said.append)
    assert ds.ids == ["activated", "added", "auth-thankyou"] and all(u.words for u in ds)
    assert ds["auth-thankyou"].text == "Thank you." and [w[2] for w in ds["auth-thankyou"].words] == ["thank", "you"]
    audio = ds["added"].load_audio()
    assert np.abs(audio - asterisk.decode_g722(sounds / "added.g722")).max() < 1e-4
    sources = json.loads((out / "sources.json").read_text())
    assert sources["clips"]["added"] == hashlib.sha256((sounds / "added.g722").read_bytes()).hexdigest()
    assert sources["transcript_sha256"] == hashlib.sha256(transcript.read_bytes()).hexdigest()
    shipped = json.loads((asterisk.SHIPPED / "alignments.json").read_text())["clips"]
    if shipped["added"]["g722_sha256"] == sources["clips"]["added"]:  # the installed package is the shipped one
        assert ds["added"].words == [tuple(w) for w in shipped["added"]["words"]]
    assert len(asr_lab.load_dataset(out / "long")) == 1

    manifest_time = (out / "manifest.jsonl").stat().st_mtime_ns
    said.clear()
    again = asterisk.prepare_asterisk(out, transcript=transcript, sounds=sounds, log=said.append)
    assert again.ids == ds.ids and "up to date" in said[0] and len(said) == 1
    assert (out / "manifest.jsonl").stat().st_mtime_ns == manifest_time

    data = bytearray((sounds / "added.g722").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (sounds / "added.g722").write_bytes(bytes(data))
    said.clear()
    changed = asterisk.prepare_asterisk(out, transcript=transcript, sounds=sounds, log=said.append)
    assert "1 clips changed (e.g. added)" in said[0] and "rebuilding" in said[0]
    assert changed["added"].meta["g722_sha256"] == hashlib.sha256(bytes(data)).hexdigest()
    assert any("aligned 1/1 (added)" in s for s in said)  # its shipped timings no longer apply
    assert changed["activated"].words == ds["activated"].words


@needs_asterisk
@pytest.mark.slow
def test_named_sets_build_into_the_cache(tmp_path, monkeypatch):
    """The whole set: 553 clips, ~24 min, timings from the shipped file, long streams of 3–5 minutes."""
    monkeypatch.setenv("ASR_LAB_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    full = asr_lab.load_dataset("asterisk")
    assert full.root == tmp_path / "datasets" / "asterisk" and len(full) == 553
    assert 1350 < full.total_duration < 1550
    timed = [u for u in full if u.words]
    assert len(timed) >= 540
    long = asr_lab.load_dataset("asterisk-long")
    assert all(180 <= u.duration <= 300 for u in long) and sum(len(u.meta["sources"]) for u in long) == len(timed)
    for stream in long:
        assert _monotonic_inside(stream.words, stream.duration)
    short = asr_lab.load_dataset("asterisk-short")
    assert short.ids == full.ids[:: asterisk.SHORT_EVERY] and 150 < short.total_duration < 240
