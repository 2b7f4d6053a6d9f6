"""The audio edge: everything becomes float32, 16 kHz, mono here, once.

Files are read with soundfile (WAV, FLAC, OGG/Vorbis, MP3 with libsndfile >= 1.1) and,
for anything it cannot open, with librosa's audioread/ffmpeg path; other rates are
resampled with librosa (soxr, high quality). Arrays are converted by dtype: integers are
scaled by their full range, floats are kept as they are. Bad input is rejected with a
message that names the value and the fix, never passed on to an engine:

* 64-bit integer samples (what ``np.array([...ints...])`` gives) are refused: their scale
  is ambiguous, and dividing by 2**63 would turn int16 values into silence;
* sample rates outside :data:`MIN_SAMPLE_RATE` … :data:`MAX_SAMPLE_RATE` are refused
  (``sr=1`` would make 26 minutes of one second of audio);
* a WAV or FLAC file shorter than its header says (a cut download or copy) is refused
  instead of being silently shortened; only regular files are read (``/dev/zero`` is not);
* a file that holds no audio stream is named as such.

:func:`as_chunk` is the same conversion for a streaming chunk (no resampling), used by the
streaming processors' ``insert_audio_chunk``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE

__all__ = ["AudioError", "load_audio", "as_chunk", "save_audio", "to_int16", "duration_sec", "SAMPLE_RATE",
           "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE", "check_sample_rate"]

AudioSource = Union[str, os.PathLike, np.ndarray]
MAX_CHANNELS = 8
MIN_SAMPLE_RATE = 4000
"""Hz; below telephone quality (8 kHz) nothing is speech recognition material."""
MAX_SAMPLE_RATE = 384000
"""Hz; the highest rate audio interfaces offer."""


class AudioError(ValueError):
    """Audio that cannot be used: the message says what is wrong with it and how to fix it."""


def _is_utterance(source: object) -> bool:
    # a dataset Utterance, recognised by its shape: core sits below data and does not import it
    return not isinstance(source, (str, os.PathLike, np.ndarray)) and callable(getattr(source, "load_audio", None)) and hasattr(source, "id")


def load_audio(source: AudioSource, sr: Optional[int] = None) -> np.ndarray:
    """Return ``source`` as a 1-D float32 array at 16 kHz, mono.

    ``source`` is a file path, an array, or a dataset :class:`~asr_lab.Utterance` (its
    samples). For an array, ``sr`` is its sample rate
    (``None`` means it is already 16 kHz); for a file, the rate is read from the file and
    ``sr`` must be ``None``. Multichannel audio is averaged to mono; ``(n, channels)`` and
    ``(channels, n)`` are both accepted when the channel axis has at most 8 entries.

    Raises :class:`FileNotFoundError` for a missing file and :class:`AudioError` for an
    unreadable file, empty audio, NaN/inf samples or an unusable shape or dtype.
    """
    if _is_utterance(source):
        if sr is not None:
            raise AudioError(f"sr={sr!r} was given with utterance {source.id!r}; its audio is already 16 kHz — drop sr")
        return source.load_audio()
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
            f"give a file path or a numpy array of samples (or a dataset Utterance)"
        )
    check_sample_rate(rate, what if isinstance(source, (str, os.PathLike)) else "")
    audio = _to_mono_float(audio, what)
    if rate != SAMPLE_RATE:
        import librosa

        audio = librosa.resample(audio, orig_sr=int(rate), target_sr=SAMPLE_RATE).astype(np.float32, copy=False)
    return np.ascontiguousarray(audio, dtype=np.float32)


def check_sample_rate(rate, what: str = "") -> int:
    """``rate`` as an int, or :class:`AudioError` naming it when it is not a whole number of Hz
    within :data:`MIN_SAMPLE_RATE` … :data:`MAX_SAMPLE_RATE`."""
    where = f"{what}: " if what else ""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise AudioError(f"{where}sample rate sr={rate!r} must be a positive whole number of Hz, e.g. 16000 or 44100")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{where}sample rate sr={rate!r} Hz is outside the plausible range {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz; "
            f"give the rate the audio was recorded at, e.g. 16000, 44100 or 48000"
        )
    return int(rate)


def as_chunk(audio) -> np.ndarray:
    """A streaming chunk as 1-D float32 at 16 kHz: integers scaled by their full range (int16
    by 1/32768), ``(n, channels)`` / ``(channels, n)`` averaged to mono; an empty chunk stays
    empty. Raises :class:`AudioError` for what :func:`load_audio` refuses (no resampling here:
    a chunk is 16 kHz by contract)."""
    a = np.asarray(audio)
    if a.dtype == np.float32 and a.ndim == 1:
        return a  # the common case, untouched: engines get exactly what they were given
    if a.size == 0 and a.ndim >= 1:
        return np.zeros(0, dtype=np.float32)
    return _to_mono_float(a, f"audio chunk of shape {a.shape} and dtype {a.dtype}", check_values=False)


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
    if not path.is_file():
        raise AudioError(f"{os.fspath(path)!r} is not a regular file (a device or pipe); give an audio file such as a .wav or .flac")
    import soundfile as sf

    declared = _declared_frames(path)
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=False)
        _check_complete(path, len(audio), declared, int(rate))
        return audio, int(rate)
    except AudioError:
        raise
    except Exception as first:  # libsndfile cannot read it: try the ffmpeg path
        if declared is not None:  # a WAV/FLAC libsndfile recognises but cannot decode: damaged, not another format
            raise AudioError(
                f"cannot decode audio file {os.fspath(path)!r}: {first}; its header announces {declared[0]} samples "
                f"at {declared[1]} Hz, so the file is damaged or cut short; copy or download it again"
            ) from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # librosa warns that it falls back to audioread
                import librosa

                audio, rate = librosa.load(str(path), sr=None, mono=False)
        except Exception as second:
            raise AudioError(
                f"cannot read audio file {os.fspath(path)!r}: soundfile said {first}; "
                f"librosa/ffmpeg said {type(second).__name__}: {second}. "
                f"Check that it is an audio file (wav, flac, mp3, ogg), or convert it with "
                f"`ffmpeg -i IN -ar 16000 -ac 1 OUT.wav`"
            ) from None
        if not rate or audio.size == 0:
            raise AudioError(
                f"{os.fspath(path)!r} holds no audio: soundfile said {first}, and ffmpeg found no audio stream in it. "
                f"Check that it is an audio file (wav, flac, mp3, ogg) and not text or another format renamed"
            )
        return audio.T if audio.ndim == 2 else audio, int(rate)


def _declared_frames(path: Path) -> Optional[tuple[int, int]]:
    """(samples per channel, rate) that a WAV or FLAC header announces; None when unknown or another format.

    libsndfile shrinks a cut WAV's frame count to what the file holds, so the WAV ``data``
    chunk size is read here directly; a FLAC's STREAMINFO total is what ``sf.info`` reports.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                block, rate = None, None
                while True:
                    chunk = f.read(8)
                    if len(chunk) < 8:
                        return None
                    cid, size = chunk[:4], int.from_bytes(chunk[4:], "little")
                    if cid == b"fmt ":
                        fmt = f.read(size + (size & 1))
                        rate, block = int.from_bytes(fmt[4:8], "little"), int.from_bytes(fmt[12:14], "little")
                    elif cid == b"data":
                        if not block or size in (0, 0xFFFFFFFF):  # streamed WAVs leave the size open
                            return None
                        return size // block, rate
                    else:
                        f.seek(size + (size & 1), os.SEEK_CUR)
            if head[:4] == b"fLaC":
                import soundfile as sf

                info = sf.info(str(path))
                return (int(info.frames), int(info.samplerate)) if info.frames > 0 else None
    except (OSError, ValueError, RuntimeError):
        return None
    return None


def _check_complete(path: Path, got: int, declared: Optional[tuple[int, int]], rate: int) -> None:
    if declared is not None and got < declared[0]:
        raise AudioError(
            f"audio file {os.fspath(path)!r} is cut short: its header announces {declared[0]} samples "
            f"({declared[0] / declared[1]:.2f} s) but only {got} ({got / rate:.2f} s) are there; "
            f"copy or download it again (or re-encode what is left with ffmpeg, knowingly)"
        )


def _to_mono_float(audio: np.ndarray, what: str, check_values: bool = True) -> np.ndarray:
    if audio.dtype.kind in "iu" and audio.dtype.itemsize == 8:
        peak = int(np.abs(audio).max()) if audio.size else 0
        raise AudioError(
            f"{what}: 64-bit integer samples have no standard PCM scale (peak {peak}); "
            f"np.array() of Python ints gives int64. Say what they are: .astype(np.int16) for 16-bit PCM "
            f"(peak up to 32767), .astype(np.int32) for 32-bit, or divide to floats in [-1, 1]"
        )
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
    if not check_values:
        return audio
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
