"""Utterance / Dataset types, the manifest round trip, every loader and their error messages.

Each loader is tested on a small corpus the test writes itself (tones as audio): a
LibriSpeech folder with two speakers, a Common Voice TSV with MP3 clips, and Hugging Face
``datasets.Dataset`` objects built with ``from_dict``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from asr_lab.data.dataset import (
    Dataset,
    DatasetError,
    DatasetFileNotFoundError,
    Utterance,
    read_manifest,
)
from asr_lab.data.recipes import load_dataset

SR = 16000


def tone(seconds: float, freq: float = 220.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def small(tmp_path):
    """A three-utterance dataset with real FLAC files and one with word timings."""
    utts = []
    for k, (text, secs) in enumerate([("hello world", 1.0), ("good morning", 1.5), ("see you", 0.5)]):
        path = tmp_path / "audio" / f"u{k}.flac"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, tone(secs, 200 + 50 * k), SR)
        words = [(0.1, 0.4, text.split()[0]), (0.45, secs, text.split()[1])] if k == 0 else None
        utts.append(
            Utterance(
                id=f"u{k}",
                audio=str(path),
                text=text,
                duration=secs,
                words=words,
                meta={"voice": ["slt", "rms", "slt"][k], "kind": "utterance"},
            )
        )
    return Dataset(utts, name="small", root=tmp_path)


# ----------------------------------------------------------------------------- types


def test_utterance_dict_round_trip_keeps_every_field(tmp_path):
    u = Utterance(
        id="a",
        audio=str(tmp_path / "x" / "a.flac"),
        text="Hi there.",
        duration=1.25,
        words=[(0.1, 0.3, "hi"), (0.35, 0.9, "there")],
        meta={"voice": "slt", "n": np.int64(3)},
    )
    record = u.to_dict(relative_to=tmp_path)
    assert record["audio"] == "x/a.flac"
    assert record["words"] == [[0.1, 0.3, "hi"], [0.35, 0.9, "there"]]
    json.dumps(record)  # numpy scalars in meta became plain numbers
    back = Utterance.from_dict(json.loads(json.dumps(record)), root=tmp_path)
    assert back.audio == str(tmp_path / "x" / "a.flac")
    assert (back.id, back.text, back.duration, back.words) == (u.id, u.text, u.duration, u.words)
    assert back.meta == {"voice": "slt", "n": 3}


def test_utterance_accepts_word_dicts_and_nemo_keys_and_rejects_bad_words(tmp_path):
    u = Utterance.from_dict(
        {
            "audio_filepath": "clip7.wav",
            "text": "yes",
            "duration": 0.5,
            "words": [{"start": 0.0, "end": 0.4, "word": "yes"}],
            "speaker": "s1",
        }
    )
    assert (u.id, u.words, u.meta) == ("clip7", [(0.0, 0.4, "yes")], {"speaker": "s1"})
    with pytest.raises(DatasetError, match=r"words\[0\].*0 <= start <= end"):
        Utterance(id="a", audio=None, text="x", words=[(0.5, 0.2, "x")])
    with pytest.raises(DatasetError, match=r"words\[1\].*not \(start seconds"):
        Utterance(id="a", audio=None, text="x y", words=[(0, 1, "x"), (1, "y")])
    with pytest.raises(DatasetError, match="id must be a non-empty string"):
        Utterance(id="", audio=None, text="x")
    with pytest.raises(DatasetError, match="duration must be >= 0"):
        Utterance(id="a", audio=None, text="x", duration=-1)
    with pytest.raises(DatasetError, match="has no 'text'"):
        Utterance.from_dict({"id": "a", "audio": "a.wav"})


def test_from_array_keeps_audio_in_memory_and_resamples():
    u = Utterance.from_array("m", tone(1.0, sr=8000), "beep", sr=8000)
    assert u.audio is None and u.duration == pytest.approx(1.0)
    samples = u.load_audio()
    assert samples.dtype == np.float32 and len(samples) == SR
    with pytest.raises(DatasetError, match="has no audio"):
        Utterance(id="x", audio=None, text="t").load_audio()


def test_dataset_indexing_filter_subset(small):
    assert len(small) == 3 and small.ids == ["u0", "u1", "u2"]
    assert small[1].id == "u1" and small["u2"].text == "see you"
    assert isinstance(small[:2], Dataset) and small[:2].ids == ["u0", "u1"]
    assert [u.id for u in small] == small.ids and "u1" in small
    with pytest.raises(KeyError, match="did you mean 'u1'"):
        small["u11"]
    assert small.filter(voice="slt").ids == ["u0", "u2"]
    assert small.filter(voice=("rms", "awb")).ids == ["u1"]
    assert small.filter(lambda u: u.duration >= 1.0, kind="utterance").ids == ["u0", "u1"]
    assert small.subset(2).ids == ["u0", "u1"]
    assert small.subset(ids=["u2", "u0"]).ids == ["u2", "u0"]
    picked = small.subset(2, seed=3)
    assert len(picked) == 2 and picked.ids == small.subset(2, seed=3).ids
    with pytest.raises(DatasetError, match="duplicate utterance id 'u0'"):
        Dataset([small[0], small[0]])


def test_summary_info_and_dataframe(small):
    s = small.summary()
    assert s["utterances"] == 3 and s["total_duration_sec"] == pytest.approx(3.0)
    assert s["voices"] == {"rms": 1, "slt": 2} and s["with_word_timings"] == 1
    assert s["min_duration_sec"] == 0.5 and s["max_duration_sec"] == 1.5
    text = small.info()
    assert "3 (6 words)" in text and "word timings: 1 of 3" in text and "slt (2)" in text
    df = small.to_dataframe()
    assert list(df["id"]) == ["u0", "u1", "u2"] and list(df["has_words"]) == [True, False, False]
    assert list(df["voice"]) == ["slt", "rms", "slt"]
    assert "3 utterances" in repr(small)


# ----------------------------------------------------------------------------- manifest


def test_manifest_round_trip_relative_paths_and_no_rewrite(small, tmp_path):
    path = small.to_manifest()
    assert path == tmp_path / "manifest.jsonl"
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["audio"] == "audio/u0.flac"  # relative to the manifest's folder
    back = load_dataset(tmp_path)
    assert back.name == tmp_path.name and back.ids == small.ids
    for a, b in zip(small, back):
        assert (a.audio, a.text, a.duration, a.words, a.meta) == (b.audio, b.text, b.duration, b.words, b.meta)
    assert np.allclose(back["u0"].load_audio(), small["u0"].load_audio())
    assert load_dataset(path).ids == small.ids  # the .jsonl path itself works too
    mtime = path.stat().st_mtime_ns
    small.to_manifest()  # same content: not rewritten
    assert path.stat().st_mtime_ns == mtime


def test_manifest_moves_with_its_folder(small, tmp_path):
    small.to_manifest()
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    tmp_path.rename(moved)
    ds = load_dataset(moved)
    assert ds["u1"].audio.startswith(str(moved)) and len(ds["u1"].load_audio()) == int(1.5 * SR)


def test_in_memory_audio_is_written_beside_the_manifest(tmp_path):
    ds = Dataset([Utterance.from_array("mem 1", tone(0.5), "beep")], name="m")
    path = ds.to_manifest(tmp_path / "out")
    record = json.loads(path.read_text())
    assert record["audio"] == "audio/mem_1.flac" and (tmp_path / "out" / "audio" / "mem_1.flac").is_file()
    assert len(load_dataset(tmp_path / "out")["mem 1"].load_audio()) == SR // 2


def test_manifest_errors_name_line_and_fix(tmp_path):
    (tmp_path / "a.flac").write_bytes(b"")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "audio": "a.flac", "text": "x"}\n\n{"id": "b", "text": oops}\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl, line 3: not valid JSON .*each line must be one JSON object"):
        load_dataset(bad)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"id": "a", "audio": "nowhere/a.flac", "text": "x"}\n')
    with pytest.raises(DatasetFileNotFoundError, match=r"line 1: audio file of utterance 'a' not found.*nowhere"):
        load_dataset(missing)
    assert len(load_dataset(missing, check_audio=False)) == 1
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    with pytest.raises(DatasetError, match="line 2: id 'a' was already used on line 1"):
        load_dataset(dup)
    notext = tmp_path / "notext.jsonl"
    notext.write_text('{"id": "a"}\n')
    with pytest.raises(DatasetError, match=r"line 1: record 'a' has no 'text'"):
        load_dataset(notext)
    with pytest.raises(FileNotFoundError, match="does not exist.*datasets/mini"):
        load_dataset(tmp_path / "no-such-folder")
    with pytest.raises(DatasetFileNotFoundError, match="manifest .* not found"):
        read_manifest(tmp_path / "none.jsonl")
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    (empty / "train.tsv").write_text("x\n")
    with pytest.raises(DatasetError, match="no manifest.jsonl.*train.tsv.*pass one of them"):
        load_dataset(empty)
    with pytest.raises(DatasetError, match="unknown dataset format"):
        load_dataset(tmp_path / "a.flac")
    with pytest.raises(DatasetError, match="cannot load a dataset from int"):
        load_dataset(42)


# ----------------------------------------------------------------------------- LibriSpeech


def test_librispeech_folder_two_speakers(tmp_path):
    root = tmp_path / "dev-clean"
    texts = {("84", "121123"): ["GO DO YOU HEAR", "BUT IN LESS THAN FIVE MINUTES"], ("174", "50561"): ["FOREVER ALONE"]}
    for (spk, chap), lines in texts.items():
        folder = root / spk / chap
        folder.mkdir(parents=True)
        with open(folder / f"{spk}-{chap}.trans.txt", "w") as f:
            for k, line in enumerate(lines):
                uid = f"{spk}-{chap}-{k:04d}"
                f.write(f"{uid} {line}\n")
                sf.write(folder / f"{uid}.flac", tone(0.5 + k * 0.25), SR)
    ds = load_dataset(root)
    assert ds.name == "dev-clean" and len(ds) == 3
    u = ds["84-121123-0001"]
    assert u.text == "BUT IN LESS THAN FIVE MINUTES" and u.duration == pytest.approx(0.75)
    assert u.meta == {"speaker": "84", "chapter": "121123"} and u.words is None
    assert ds.summary()["voices"] == {"174": 1, "84": 2}
    assert len(u.load_audio()) == int(0.75 * SR)
    # the LibriSpeech/ root with splits below it works too, and records the split
    top = load_dataset(tmp_path)
    assert len(top) == 3 and top["174-50561-0000"].meta["split"] == "dev-clean"
    # a transcript line without its audio file
    (root / "84" / "121123" / "84-121123-0001.flac").unlink()
    with pytest.raises(DatasetFileNotFoundError, match=r"line 2: no audio for utterance '84-121123-0001'"):
        load_dataset(root)


# ----------------------------------------------------------------------------- Common Voice


def _common_voice(tmp_path, header="client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale"):
    (tmp_path / "clips").mkdir()
    rows = [("c1", "common_voice_en_1.mp3", 'He said "yes" to it.'), ("c2", "common_voice_en_2.mp3", "Fine.")]
    with open(tmp_path / "test.tsv", "w") as f:
        f.write(header + "\n")
        f.writelines(f"{client}\t{clip}\t{sentence}\t2\t0\ttwenties\t\t\ten\n" for client, clip, sentence in rows)
    for k, (_, clip, _) in enumerate(rows):
        sf.write(tmp_path / "clips" / clip, tone(1.0 + k, sr=48000), 48000, format="MP3")
    return tmp_path / "test.tsv"


def test_common_voice_tsv(tmp_path):
    tsv = _common_voice(tmp_path)
    ds = load_dataset(tsv)
    assert ds.ids == ["common_voice_en_1", "common_voice_en_2"]
    u = ds[0]
    assert u.text == 'He said "yes" to it.'  # quotes kept: the TSV is not CSV-quoted
    assert u.meta == {"speaker": "c1", "age": "twenties", "locale": "en"}
    assert u.duration == pytest.approx(1.0, abs=0.06)
    audio = u.load_audio()
    assert audio.dtype == np.float32 and abs(len(audio) / SR - 1.0) < 0.06
    # clip_durations.tsv wins over reading headers
    (tmp_path / "clip_durations.tsv").write_text("clip\tduration[ms]\ncommon_voice_en_2.mp3\t2016\n")
    assert load_dataset(tsv)["common_voice_en_2"].duration == pytest.approx(2.016)


def test_common_voice_errors(tmp_path):
    tsv = _common_voice(tmp_path, header="client_id\tfile\ttext\tup_votes\tdown_votes\tage\tgender\taccents\tlocale")
    with pytest.raises(DatasetError, match=r"missing column\(s\) path, sentence; found columns \['client_id', 'file'"):
        load_dataset(tsv)
    other = tmp_path / "other"
    other.mkdir()
    (other / "dev.tsv").write_text("path\tsentence\na.mp3\thi\n")
    with pytest.raises(DatasetFileNotFoundError, match="clips folder .* does not exist"):
        load_dataset(other / "dev.tsv")
    (other / "clips").mkdir()
    with pytest.raises(DatasetFileNotFoundError, match=r"line 2: clip 'a.mp3' not found"):
        load_dataset(other / "dev.tsv")


# ----------------------------------------------------------------------------- Hugging Face


def _hf_datasets():
    """The Hugging Face ``datasets`` package (the dev extra installs it).

    From the repository root the repo's own ``datasets/`` data folder can be imported in its
    place (a namespace package without ``Dataset``): that means the real one is absent.
    """
    datasets = pytest.importorskip("datasets")
    if not hasattr(datasets, "Dataset"):
        pytest.skip(f"Hugging Face datasets is not installed ('datasets' resolved to {list(datasets.__path__)}); pip install -e '.[dev]'")
    return datasets


def test_hf_dataset_with_array_dicts():
    datasets = _hf_datasets()
    hf = datasets.Dataset.from_dict(
        {
            "audio": [{"array": tone(1.0, sr=8000), "sampling_rate": 8000}, {"array": tone(0.5), "sampling_rate": SR}],
            "sentence": ["one two", "three"],
            "speaker_id": [7, 8],
        }
    )
    ds = load_dataset(hf, name="hf-test")
    assert ds.ids == ["hf-test-000000", "hf-test-000001"]
    assert [u.text for u in ds] == ["one two", "three"]  # 'sentence' found without text_column
    assert [u.duration for u in ds] == pytest.approx([1.0, 0.5])
    assert ds[0].meta == {"speaker_id": 7}
    assert len(ds[0].load_audio()) == SR  # resampled from 8 kHz
    assert load_dataset(hf, text_column="sentence", compute_durations=False)[1].duration is None


def test_hf_dataset_with_audio_feature_and_raw_arrays(tmp_path):
    datasets = _hf_datasets()
    paths = []
    for k in range(2):
        paths.append(str(tmp_path / f"f{k}.wav"))
        sf.write(paths[-1], tone(0.25 * (k + 1)), SR)
    # an Audio feature (decoding would need torchcodec: the loader reads the stored file instead)
    hf = datasets.Dataset.from_dict({"audio": paths, "text": ["a", "b"], "id": ["x", "y"]})
    hf = hf.cast_column("audio", datasets.Audio(sampling_rate=SR))
    ds = load_dataset(hf)
    assert ds.ids == ["x", "y"] and [u.duration for u in ds] == pytest.approx([0.25, 0.5])
    # raw samples with the rate given by the caller
    raw = datasets.Dataset.from_dict({"samples": [tone(0.5).tolist()], "transcript": ["hello"], "utt": ["r1"]})
    ds = load_dataset(raw, audio_column="samples", id_column="utt", sampling_rate=SR)
    assert ds["r1"].text == "hello" and len(ds["r1"].load_audio()) == SR // 2
    # a DatasetDict needs split=
    dd = datasets.DatasetDict({"test": raw})
    assert len(load_dataset(dd, split="test", audio_column="samples", sampling_rate=SR)) == 1
    with pytest.raises(DatasetError, match=r"splits \['test'\]; choose one with split="):
        load_dataset(dd)


def test_hf_dataset_errors():
    datasets = _hf_datasets()
    hf = datasets.Dataset.from_dict({"audio": [[0.0, 0.1]], "label": ["x"]})
    with pytest.raises(DatasetError, match=r"which column holds the transcript.*\['audio', 'label'\].*text_column="):
        load_dataset(hf)
    with pytest.raises(DatasetError, match=r"no audio column 'wav'.*audio_column="):
        load_dataset(hf, audio_column="wav", text_column="label")
    with pytest.raises(DatasetError, match="text_column='words' is not a column"):
        load_dataset(hf, text_column="words")
    with pytest.raises(DatasetError, match="raw samples without a rate; pass sampling_rate="):
        load_dataset(hf, text_column="label")


def test_importing_the_data_package_stays_light():
    code = (
        "import sys, asr_lab, asr_lab.data, asr_lab.data.dataset, asr_lab.data.build\n"
        "heavy = [m for m in ('librosa', 'soundfile', 'pandas', 'datasets', 'pocketsphinx') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
