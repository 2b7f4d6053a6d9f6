"""The audio edge: everything becomes float32, 16 kHz, mono here, once.

Files are read with soundfile (WAV, FLAC, OGG/Vorbis, MP3 with libsndfile >= 1.1) and,
for anything it cannot open, with librosa's audioread/ffmpeg path; other rates are
resampled with librosa (soxr, high quality). Arrays are converted by dtype: integers are
scaled by their full range, floats are kept as they are. Bad input is rejected with a
message that names the value and the fix, never passed on to an engine.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE

__all__ = ["AudioError", "load_audio", "save_audio", "to_int16", "duration_sec", "SAMPLE_RATE"]

AudioSource = Union[str, os.PathLike, np.ndarray]
MAX_CHANNELS = 8


class AudioError(ValueError):
    """Audio that cannot be used: the message says what is wrong with it and how to fix it."""


def load_audio(source: AudioSource, sr: Optional[int] = None) -> np.ndarray:
    """Return ``source`` as a 1-D float32 array at 16 kHz, mono.

    ``source`` is a file path or an array. For an array, ``sr`` is its sample rate
    (``None`` means it is already 16 kHz); for a file, the rate is read from the file and
    ``sr`` must be ``None``. Multichannel audio is averaged to mono; ``(n, channels)`` and
    ``(channels, n)`` are both accepted when the channel axis has at most 8 entries.

    Raises :class:`FileNotFoundError` for a missing file and :class:`AudioError` for an
    unreadable file, empty audio, NaN/inf samples or an unusable shape or dtype.
    """
    if isinstance(source, (str, os.PathLike)):
        if sr is not None:
            raise AudioError(f"sr={sr!r} was given with a file; the file's own rate is used — drop sr")
        audio, rate = _read_file(Path(source))
        what = f"file {os.fspath(source)!r}"
    elif isinstance(source, np.ndarray) or hasattr(source, "__array__"):
        audio = np.asarray(source)
        rate = SAMPLE_RATE if sr is None else sr
        what = f"array of shape {audio.shape} and dtype {audio.dtype}"
    else:
        raise AudioError(
            f"cannot load audio from {type(source).__name__} ({source!r:.60}); "
            f"give a file path or a numpy array of samples"
        )
    if not isinstance(rate, (int, np.integer)) or isinstance(rate, bool) or rate <= 0:
        raise AudioError(f"sample rate sr={rate!r} must be a positive whole number of Hz, e.g. 16000 or 44100")
    audio = _to_mono_float(audio, what)
    if rate != SAMPLE_RATE:
        import librosa

        audio = librosa.resample(audio, orig_sr=int(rate), target_sr=SAMPLE_RATE).astype(np.float32, copy=False)
    return np.ascontiguousarray(audio, dtype=np.float32)


def save_audio(path: Union[str, os.PathLike], audio: np.ndarray, sr: int = SAMPLE_RATE) -> Path:
    """Write ``audio`` to ``path`` (format from the extension: .wav, .flac, .ogg); returns the path."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = "PCM_16" if path.suffix.lower() in (".wav", ".flac") else None
    sf.write(str(path), np.asarray(audio, dtype=np.float32), sr, subtype=subtype)
    return path


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] -> int16 PCM (clipped), as engines like pocketsphinx want it."""
    return (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).astype(np.int16)


def duration_sec(audio: np.ndarray) -> float:
    """Length of a 16 kHz array in seconds."""
    return len(audio) / SAMPLE_RATE


def _read_file(path: Path) -> tuple[np.ndarray, int]:
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: {os.fspath(path)!r} (absolute: {path.resolve()})")
    if path.is_dir():
        raise AudioError(f"{os.fspath(path)!r} is a folder, not an audio file; give a file such as a .wav or .flac")
    import soundfile as sf

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=False)
        return audio, int(rate)
    except Exception as first:  # libsndfile cannot read it: try the ffmpeg path
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # librosa warns that it falls back to audioread
                import librosa

                audio, rate = librosa.load(str(path), sr=None, mono=False)
            return audio.T if audio.ndim == 2 else audio, int(rate)
        except Exception as second:
            raise AudioError(
                f"cannot read audio file {os.fspath(path)!r}: soundfile said {first}; "
                f"librosa/ffmpeg said {type(second).__name__}: {second}. "
                f"Check that it is an audio file (wav, flac, mp3, ogg), or convert it with "
                f"`ffmpeg -i IN -ar 16000 -ac 1 OUT.wav`"
            ) from None


def _to_mono_float(audio: np.ndarray, what: str) -> np.ndarray:
    if audio.dtype.kind == "i":
        audio = audio.astype(np.float32) / float(2 ** (8 * audio.dtype.itemsize - 1))
    elif audio.dtype.kind == "u":
        half = float(2 ** (8 * audio.dtype.itemsize - 1))
        audio = (audio.astype(np.float32) - half) / half
    elif audio.dtype.kind == "f":
        audio = audio.astype(np.float32, copy=False)
    else:
        raise AudioError(f"{what}: samples of dtype {audio.dtype} are not audio; use float32/float64 or int16/int32")

    if audio.ndim == 2:
        rows, cols = audio.shape
        if cols <= MAX_CHANNELS and cols <= rows:
            audio = audio.mean(axis=1)
        elif rows <= MAX_CHANNELS and rows < cols:
            audio = audio.mean(axis=0)
        else:
            raise AudioError(
                f"{what}: cannot tell samples from channels; give (n_samples,) for mono, or "
                f"(n_samples, channels) / (channels, n_samples) with at most {MAX_CHANNELS} channels"
            )
    elif audio.ndim != 1:
        raise AudioError(
            f"{what}: audio must be 1-D (mono) or 2-D (multichannel), not {audio.ndim}-D; "
            f"squeeze or select a channel first"
        )
    if audio.size == 0:
        raise AudioError(f"{what}: the audio is empty (0 samples); give at least one sample")
    bad = ~np.isfinite(audio)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise AudioError(
            f"{what}: {int(bad.sum())} samples are NaN or infinite (the first is sample {first}); "
            f"clean the signal, e.g. np.nan_to_num(audio)"
        )
    peak = float(np.abs(audio).max())
    if peak > 1.5:
        warnings.warn(
            f"{what}: float samples reach {peak:.3g}, far outside [-1, 1]; if these are int16 values "
            f"stored as floats, divide by 32768",
            stacklevel=3,
        )
    return audio
