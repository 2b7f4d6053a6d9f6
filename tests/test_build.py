"""The dataset builder (flite + pocketsphinx forced alignment), long-form joining, and the bundled mini set.

Building needs Debian's flite and pocketsphinx; those tests are skipped (with the reason)
where either is missing. The checks of ``datasets/mini`` only read files.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_lab.data import synth
from asr_lab.cli import main as cli_main
from asr_lab.data.build import align_dataset, build_long_form, build_utterances
from asr_lab.data.recipes.mini import build_mini


def dataset_cli(argv):
    return cli_main(["dataset", *argv])
from asr_lab.data.dataset import Dataset, DatasetError, Utterance
from asr_lab.data.recipes import load_dataset
from asr_lab.metrics.wer import ENGLISH_NORMALIZER

SR = 16000
MINI = Path(__file__).resolve().parents[1] / "datasets" / "mini"
SENTENCES = ["Please close the door.", "The dog runs home."]

needs_tts = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (apt-get install flite)")


def _has_pocketsphinx() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


needs_aligner = pytest.mark.skipif(not _has_pocketsphinx(), reason="pocketsphinx is not installed")


def check_words(utt: Utterance, audio_sec: float) -> None:
    """Word timings present, each start <= end, in order, non-overlapping, inside the audio."""
    assert utt.words, f"{utt.id} has no word timings"
    previous_end = 0.0
    for start, end, word in utt.words:
        assert word and 0.0 <= start <= end <= audio_sec + 1e-3, (utt.id, start, end, word, audio_sec)
        assert start >= previous_end - 0.011, f"{utt.id}: {word!r} starts before the previous word ends"
        previous_end = end


def same_words(got, expected, tol: float = 1e-6) -> bool:
    """Same words with times equal within ``tol`` seconds."""
    return len(got) == len(expected) and all(
        gw == ew and abs(gs - es) <= tol and abs(ge - ee) <= tol for (gs, ge, gw), (es, ee, ew) in zip(got, expected)
    )


def spoken(text: str) -> list[str]:
    return ENGLISH_NORMALIZER(text).split()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("flite") is None or not _has_pocketsphinx():
        pytest.skip("needs flite and pocketsphinx")
    out = tmp_path_factory.mktemp("built")
    return out, build_utterances(SENTENCES, out, voices=("slt", "rms"))


# ----------------------------------------------------------------------------- build_utterances


@needs_tts
@needs_aligner
def test_builder_writes_flac_manifest_and_word_timings(built):
    out, ds = built
    assert ds.ids == ["slt-000", "rms-001"] and ds.root == out
    assert [u.meta["voice"] for u in ds] == ["slt", "rms"]
    for utt, sentence in zip(ds, SENTENCES):
        info = sf.info(utt.audio)
        assert (info.samplerate, info.channels, info.format, info.subtype) == (SR, 1, "FLAC", "PCM_16")
        assert utt.duration == pytest.approx(info.frames / SR)
        check_words(utt, utt.duration)
        assert [ENGLISH_NORMALIZER(w) for _, _, w in utt.words] == spoken(sentence)
        assert utt.meta["audio_sha256"] and utt.meta["build_key"] and utt.meta["kind"] == "utterance"
    record = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert record["audio"] == "slt-000.flac" and record["text"] == SENTENCES[0]
    assert load_dataset(out).ids == ds.ids


@needs_tts
@needs_aligner
def test_second_build_reuses_everything(built, monkeypatch):
    out, ds = built
    files = [Path(u.audio) for u in ds] + [out / "manifest.jsonl"]
    mtimes = [f.stat().st_mtime_ns for f in files]

    def no_synthesis(*args, **kwargs):
        raise AssertionError("an up-to-date build must not synthesise again")

    monkeypatch.setattr(synth, "synthesize", no_synthesis)
    again = build_utterances(SENTENCES, out, voices=("slt", "rms"))
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert [u.words for u in again] == [u.words for u in ds]


@needs_tts
@needs_aligner
def test_changed_sentence_rebuilds_only_it_and_removes_stale_files(tmp_path, monkeypatch):
    first = build_utterances([("a", SENTENCES[0]), ("b", SENTENCES[1])], tmp_path, voices=("kal16",))
    mtime_a = Path(first["a"].audio).stat().st_mtime_ns
    calls = []
    real = synth.synthesize
    monkeypatch.setattr(synth, "synthesize", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    second = build_utterances({"a": SENTENCES[0], "c": "Good night."}, tmp_path, voices=("kal16",))
    assert calls == ["Good night."]
    assert Path(second["a"].audio).stat().st_mtime_ns == mtime_a
    assert not (tmp_path / "b.flac").exists() and (tmp_path / "c.flac").exists()
    # a file edited by hand no longer matches its recorded hash: it is rebuilt
    data, _ = sf.read(second["c"].audio)
    sf.write(second["c"].audio, data * 0.5, SR)
    build_utterances({"a": SENTENCES[0], "c": "Good night."}, tmp_path, voices=("kal16",))
    assert calls == ["Good night.", "Good night."]


def test_builder_rejects_bad_input(tmp_path):
    with pytest.raises(DatasetError, match="not one string"):
        build_utterances("Hello there.", tmp_path)
    with pytest.raises(DatasetError, match="sentence 1 .* is empty"):
        build_utterances(["Hello.", "  "], tmp_path)
    with pytest.raises(DatasetError, match="engine='festival' is not a synthesiser"):
        build_utterances(["Hello."], tmp_path, engine="festival")
    with pytest.raises(DatasetError, match="'x' is used twice"):
        build_utterances([("x", "Hello."), ("x", "Bye.")], tmp_path)
    with pytest.raises(DatasetError, match="voices must be a non-empty list"):
        build_utterances(["Hello."], tmp_path, voices=())


@needs_tts
def test_unknown_voice_names_the_voices(tmp_path):
    with pytest.raises(synth.SynthesisError, match="no voice 'nobody'.*slt"):
        build_utterances(["Hello."], tmp_path, voices=("nobody",), align=False)


# ----------------------------------------------------------------------------- long form


def _fake(uid: str, seconds: float, words, freq: float) -> Utterance:
    t = np.arange(int(seconds * SR)) / SR
    return Utterance.from_array(
        uid,
        (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32),
        " ".join(w for _, _, w in words),
        words=words,
        meta={"voice": uid[0]},
    )


def test_long_form_shifts_every_word_and_records_sources(tmp_path):
    a = _fake("a1", 1.0, [(0.1, 0.4, "one"), (0.5, 0.9, "two")], 300)
    b = _fake("b2", 0.5, [(0.05, 0.45, "three")], 500)
    stream = build_long_form([a, b, a], tmp_path / "s.flac", pause_sec=0.25, seed=1)
    assert stream.id == "s" and stream.duration == pytest.approx(1.0 + 0.25 + 0.5 + 0.25 + 1.0)
    assert stream.text == "one two three one two"
    assert same_words(
        stream.words, [(0.1, 0.4, "one"), (0.5, 0.9, "two"), (1.3, 1.7, "three"), (2.1, 2.4, "one"), (2.5, 2.9, "two")]
    )
    assert [(s["id"], s["start"], s["end"]) for s in stream.meta["sources"]] == [
        ("a1", 0.0, 1.0),
        ("b2", 1.25, 1.75),
        ("a1", 2.0, 3.0),
    ]
    audio = stream.load_audio()
    assert len(audio) == int(3.0 * SR)
    assert np.abs(audio[int(1.0 * SR) + 10 : int(1.25 * SR) - 10]).max() < 1e-3  # the pause is silent
    assert np.allclose(audio[int(1.25 * SR) : int(1.75 * SR)], b.load_audio(), atol=1e-4)  # b lands at its offset
    assert stream.meta["kind"] == "long_form" and stream.meta["voices"] == ["a", "b"]


def test_long_form_random_pauses_are_reproducible_and_bounded(tmp_path):
    parts = [_fake(f"u{k}", 0.3, [(0.0, 0.3, f"w{k}")], 200 + 40 * k) for k in range(6)]
    one = build_long_form(parts, tmp_path / "one.flac", pause_sec=(0.6, 1.5), seed=7)
    two = build_long_form(parts, tmp_path / "two.flac", pause_sec=(0.6, 1.5), seed=7)
    other = build_long_form(parts, tmp_path / "other.flac", pause_sec=(0.6, 1.5), seed=8)
    starts = [s["start"] for s in one.meta["sources"]]
    assert starts == [s["start"] for s in two.meta["sources"]] != [s["start"] for s in other.meta["sources"]]
    gaps = np.diff(starts) - 0.3
    assert ((gaps >= 0.6 - 1e-4) & (gaps <= 1.5 + 1e-4)).all()
    assert [w[0] for w in one.words] == pytest.approx(starts, abs=1e-4)


def test_long_form_without_timings_and_errors(tmp_path):
    plain = Utterance.from_array("p", np.zeros(SR // 2, np.float32), "hush")
    assert build_long_form([plain, plain], tmp_path / "p.flac").words is None
    with pytest.raises(DatasetError, match="at least one utterance"):
        build_long_form([], tmp_path / "x.flac")
    with pytest.raises(DatasetError, match=r"needs 0 <= low <= high"):
        build_long_form([plain], tmp_path / "x.flac", pause_sec=(2.0, 1.0))
    with pytest.raises(DatasetError, match="must end in .flac or .wav"):
        build_long_form([plain], tmp_path / "x.mp3")


@needs_tts
@needs_aligner
def test_long_form_from_built_utterances_keeps_alignment(built, tmp_path):
    _, ds = built
    stream = build_long_form(ds, tmp_path / "long.flac", pause_sec=(0.6, 1.5), seed=3)
    offset = stream.meta["sources"][1]["start"]
    n0 = len(ds[0].words)
    assert stream.words[:n0] == ds[0].words
    assert same_words(stream.words[n0:], [(s + offset, e + offset, w) for s, e, w in ds[1].words])
    check_words(stream, stream.duration)


# ----------------------------------------------------------------------------- align_dataset and the CLI helpers


@needs_tts
@needs_aligner
def test_align_dataset_adds_missing_word_timings(built, tmp_path):
    _, ds = built
    bare = Dataset([Utterance(id=u.id, audio=u.audio, text=u.text) for u in ds], name="bare")
    aligned = align_dataset(bare, tmp_path / "aligned")
    # pocketsphinx's alignment against flite's own timings of the build (measured on datasets/mini:
    # median 0.011 s, p90 0.032 s apart)
    assert all([w[2] for w in a.words] == [w[2] for w in b.words] for a, b in zip(aligned, ds))
    gaps = [abs(x[i] - y[i]) for a, b in zip(aligned, ds) for x, y in zip(a.words, b.words) for i in (0, 1)]
    assert sorted(gaps)[len(gaps) // 2] < 0.03 and sorted(gaps)[int(0.9 * len(gaps))] < 0.1
    assert load_dataset(tmp_path / "aligned")[0].duration == pytest.approx(ds[0].duration)


def test_dataset_cli_info_and_errors(capsys, tmp_path):
    if not (MINI / "manifest.jsonl").is_file():
        pytest.skip("datasets/mini is not built")
    assert dataset_cli(["info", str(MINI)]) == 0
    assert "word timings:" in capsys.readouterr().out
    assert dataset_cli(["info", str(MINI), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["utterances"] >= 22
    assert dataset_cli(["info", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the bundled mini set


@pytest.fixture(scope="module")
def mini():
    if not (MINI / "manifest.jsonl").is_file():
        pytest.fail(
            "datasets/mini/manifest.jsonl is missing; rebuild with `python -m asr_lab.data.build datasets/mini`"
        )
    return load_dataset(MINI)


def test_mini_manifest_is_consistent(mini):
    short = mini.filter(kind="utterance")
    long = mini.filter(kind="long_form")
    assert len(short) >= 20 and len({u.meta["voice"] for u in short}) >= 3
    assert len(long) >= 2 and all(u.duration >= 60.0 for u in long)
    for utt in mini:
        info = sf.info(utt.audio)
        assert Path(utt.audio).is_relative_to(MINI) and info.samplerate == SR and info.channels == 1
        assert utt.duration == pytest.approx(info.frames / SR, abs=1e-3)
        check_words(utt, info.frames / SR)
        assert len(utt.words) == len(spoken(utt.text)), utt.id
    for stream in long:
        sources = stream.meta["sources"]
        assert len({s["voice"] for s in sources}) >= 3
        assert all(0 <= a["end"] < b["start"] for a, b in itertools.pairwise(sources))
        assert not {s["text"] for s in sources} & {u.text for u in short}  # built from other sentences
    size = sum(f.stat().st_size for f in MINI.rglob("*") if f.is_file())
    assert size < 6e6
    assert (MINI / "audio" / "manifest.jsonl").is_file() and (MINI / "long" / "manifest.jsonl").is_file()
    assert "python -m asr_lab.data.build datasets/mini" in (MINI / "README.md").read_text()


def test_mini_is_up_to_date_with_its_recipe(tmp_path, monkeypatch):
    """Rebuilding a copy of the bundle changes nothing: the sentences and recipe match what is shipped."""
    if not (MINI / "manifest.jsonl").is_file():
        pytest.skip("datasets/mini is not built")
    copy = tmp_path / "mini"
    shutil.copytree(MINI, copy)

    def no_synthesis(*args, **kwargs):
        raise AssertionError("datasets/mini is out of date: rebuild with `python -m asr_lab.data.build datasets/mini`")

    monkeypatch.setattr(synth, "synthesize", no_synthesis)
    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    ds = build_mini(copy)
    after = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert after == before and len(ds) == len(load_dataset(MINI))


@needs_tts
@needs_aligner
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_out_of_vocabulary_word_is_named(tmp_path):
    """espeak-ng speech is timed by pocketsphinx's forced alignment, which needs every word in its dictionary."""
    with pytest.raises(DatasetError, match=r"forced alignment failed for utterance 'en-us-000'.*'florbix'"):
        build_utterances(["The florbix runs."], tmp_path, engine="espeak-ng")


@needs_tts
def test_flite_times_any_word_itself(tmp_path):
    """flite speech is timed by flite's own phone durations: no dictionary limit, no recogniser."""
    ds = build_utterances(["The florbix runs."], tmp_path, voices=("slt",))
    assert [w[2] for w in ds[0].words] == ["the", "florbix", "runs"]
    assert all(0 <= s < e <= ds[0].duration for s, e, _ in ds[0].words)


@needs_tts
@needs_aligner
def test_dataset_cli_build_from_a_sentence_file(tmp_path, capsys):
    text = tmp_path / "sentences.txt"
    text.write_text("# a comment\nGood night.\n\nSee you soon.\n")
    assert dataset_cli(["build", str(tmp_path / "out"), "--sentences", str(text), "--voices", "awb"]) == 0
    assert "utterances:   2" in capsys.readouterr().out
    ds = load_dataset(tmp_path / "out")
    assert [u.text for u in ds] == ["Good night.", "See you soon."] and all(u.words for u in ds)
    assert dataset_cli(["build", str(tmp_path / "bad"), "--sentences", str(text), "--voices", "nobody"]) == 2
    assert "no voice 'nobody'" in capsys.readouterr().err


@needs_aligner
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_espeak_ng_engine_gets_its_own_default_voice(tmp_path):
    ds = build_utterances(["Please close the door."], tmp_path, engine="espeak-ng")
    assert ds.ids == ["en-us-000"] and ds[0].meta["engine"] == "espeak-ng"
    check_words(ds[0], ds[0].duration)
