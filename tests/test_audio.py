"""The audio edge: files and arrays of any common kind become float32 16 kHz mono, or a clear error."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from asr_lab import AudioError, load_audio
from asr_lab.core.audio import save_audio, to_int16

SR = 16000


def tone(sr, sec=0.5, freq=440.0):
    t = np.arange(int(sr * sec)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float64)


@pytest.mark.parametrize("fmt, subtype", [("wav", "PCM_16"), ("flac", "PCM_24"), ("ogg", "VORBIS")])
def test_files_at_other_rates_and_stereo_become_16k_mono(tmp_path, fmt, subtype):
    x = tone(44100)
    stereo = np.stack([x, x], axis=1)
    path = tmp_path / f"a.{fmt}"
    sf.write(path, stereo, 44100, subtype=subtype)
    a = load_audio(path)
    assert a.dtype == np.float32 and a.ndim == 1
    assert len(a) == pytest.approx(0.5 * SR, abs=2)
    assert np.abs(a).max() == pytest.approx(0.5, abs=0.05)
    assert load_audio(str(path)).shape == a.shape


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg (Debian package) not installed")
def test_mp3_is_read(tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(22050, 1.0), 22050)
    mp3 = tmp_path / "a.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(wav), str(mp3)], check=True)
    a = load_audio(mp3)
    assert a.dtype == np.float32 and len(a) == pytest.approx(SR, abs=0.06 * SR)  # mp3 pads a little


def test_array_dtypes_are_scaled_by_their_range():
    x = tone(SR)
    assert np.allclose(load_audio((x * 32767).astype(np.int16)), x, atol=1e-4)
    assert np.allclose(load_audio((x * 2**31).astype(np.int32)), x, atol=1e-6)
    assert np.allclose(load_audio(x), x.astype(np.float32))
    assert np.allclose(load_audio((x * 127 + 128).astype(np.uint8)), x, atol=2e-2)


def test_arrays_with_a_rate_are_resampled_and_channels_averaged_either_layout():
    x = tone(8000, 1.0)
    assert len(load_audio(x, sr=8000)) == SR
    two = np.stack([x, -x])  # (channels, n): averaging gives silence
    assert np.abs(load_audio(two, sr=8000)).max() < 1e-3
    assert np.abs(load_audio(two.T, sr=8000)).max() < 1e-3


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(0), "empty"),
        (np.array([0.1, np.nan, np.inf]), "2 samples are NaN or infinite"),
        (np.zeros((2, 3, 4)), "3-D"),
        (np.zeros((20, 30)), "cannot tell samples from channels"),
        (np.array(["a", "b"]), "dtype <U1"),
        (np.zeros(10, dtype=complex), "complex"),
    ],
)
def test_bad_arrays_get_clear_errors(bad, match):
    with pytest.raises(AudioError, match=match):
        load_audio(bad)


def test_bad_rates_and_sources():
    with pytest.raises(AudioError, match="sr=0"):
        load_audio(np.zeros(10), sr=0)
    with pytest.raises(AudioError, match="sr=16000 was given with a file"):
        load_audio("x.wav", sr=16000)
    with pytest.raises(AudioError, match="file path or a numpy array"):
        load_audio(12)


def test_missing_unreadable_and_folder_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio" * 10)
    with pytest.raises(AudioError, match="cannot read audio file .*junk.wav.*ffmpeg -i"):
        load_audio(junk)
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path)


def test_int16_scaled_floats_warn():
    with pytest.warns(UserWarning, match="divide by 32768"):
        load_audio(np.array([1000.0, -2000.0]))


def test_save_and_int16_round_trip(tmp_path):
    x = tone(SR).astype(np.float32)
    path = save_audio(tmp_path / "sub" / "x.flac", x)
    assert np.allclose(load_audio(path), x, atol=1e-4)
    assert to_int16(np.array([2.0, -2.0, 0.5], dtype=np.float32)).tolist() == [32767, -32767, 16383]


def test_a_dataset_utterance_is_audio_for_load_audio_and_replay(tmp_path):
    from asr_lab import Utterance, replay
    from asr_lab.testing import sample_speech

    sample = sample_speech()
    on_disk = tmp_path / "u.wav"
    save_audio(on_disk, sample.audio)
    for utt in (Utterance.from_array("u", sample.audio, text=sample.text), Utterance(id="u", audio=str(on_disk), text=sample.text)):
        assert np.array_equal(load_audio(utt), load_audio(sample.audio))

    from test_replay_audit import FinishOnlyProcessor  # says in finish() how much audio it was given

    trace = replay(FinishOnlyProcessor(), Utterance.from_array("u", sample.audio, text=sample.text), clock="unaware")
    assert trace.meta["source"] == "u" and trace.emissions[-1].end == pytest.approx(len(sample.audio) / 16000, abs=1e-3)
