"""Speech from text with the system's offline synthesisers (flite, espeak-ng).

Synthetic speech is the one kind of test audio that can be made anywhere, offline, with a
known transcript: the dataset builder, the bundled conformance sample and the tests all
come from here. Each call runs the synthesiser as a subprocess writing a temporary WAV,
then converts it once to the project's format (float32, 16 kHz, mono).

How good each voice is for ASR tests (word error rate of pocketsphinx's en-us model, see
``FACTS.md``): flite ``slt`` ~0.10–0.14, ``rms`` ~0.06, ``awb`` ~0.1–0.2, ``kal16`` ~0.08;
``kal`` is an 8 kHz voice and worse; espeak-ng sounds robotic (WER 0.5–0.8) and is only
useful as a hard case.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from typing import Optional

import numpy as np

__all__ = [
    "CLEAR_FLITE_VOICES",
    "ENGINES",
    "SynthesisError",
    "available_voices",
    "espeak_voices",
    "flite_voices",
    "synthesize",
]

ENGINES = ("flite", "espeak-ng")
"""Synthesisers :func:`synthesize` can drive."""

CLEAR_FLITE_VOICES = ("slt", "rms", "awb", "kal16")
"""flite voices at 16 kHz that an ASR engine recognises well: the default test voices."""

_DEFAULT_VOICE = {"flite": "slt", "espeak-ng": "en-us"}
_APT_PACKAGE = {"flite": "flite", "espeak-ng": "espeak-ng"}
_NOT_FOR_SENTENCES = {"awb_time"}  # flite's limited-domain voice: it can only say clock times
_TIMEOUT_SEC = 120


class SynthesisError(RuntimeError):
    """The synthesiser is missing, rejected the voice, or produced no audio."""


def synthesize(text: str, voice: Optional[str] = None, *, engine: str = "flite") -> np.ndarray:
    """Speak ``text`` with ``engine`` and return float32 mono audio at 16 kHz.

    ``voice`` is a flite voice name (default ``"slt"``; see :func:`flite_voices`) or a
    path to a ``.flitevox`` file, or an espeak-ng voice (default ``"en-us"``; see
    :func:`espeak_voices`). The audio is exactly what the synthesiser wrote, resampled to
    16 kHz: flite starts and ends with a few tens of milliseconds of near-silence.

    Raises :class:`SynthesisError` naming the apt package when the program is missing, and
    listing the voices when ``voice`` is unknown; ``ValueError`` for an empty text or an
    unknown engine.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not a known synthesiser; use one of {', '.join(ENGINES)}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text to synthesize must be a non-empty string, got {text!r}")
    voice = _DEFAULT_VOICE[engine] if voice is None else voice
    _check_voice(engine, voice)
    with tempfile.TemporaryDirectory(prefix="asr_lab_synth_") as tmp:
        text_file = os.path.join(tmp, "text.txt")
        wav_file = os.path.join(tmp, "speech.wav")
        with open(text_file, "w", encoding="utf-8") as f:
            f.write(text)
        if engine == "flite":
            command = [_program("flite"), "-voice", voice, "-f", text_file, "-o", wav_file]
        else:
            command = [_program("espeak-ng"), "-v", voice, "-f", text_file, "-w", wav_file]
        done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_SEC, check=False)
        if done.returncode != 0 or not os.path.exists(wav_file) or os.path.getsize(wav_file) <= 44:
            raise SynthesisError(
                f"{engine} failed for voice {voice!r} (exit code {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[:300] or 'no output file'}. "
                f"Command: {' '.join(command)}"
            )
        audio = _read_16k(wav_file)
    if audio.size == 0:
        raise SynthesisError(f"{engine} produced no audio for voice {voice!r} and text {text!r:.80}")
    return audio


def flite_voices() -> list[str]:
    """Voices the installed flite can speak sentences with (``flite -lv``), e.g. slt, rms, awb, kal16, kal."""
    out = subprocess.run([_program("flite"), "-lv"], capture_output=True, text=True, timeout=30, check=True).stdout
    names = out.split(":", 1)[1].split() if ":" in out else out.split()
    return [n for n in names if n not in _NOT_FOR_SENTENCES]


def espeak_voices(language: str = "en") -> list[str]:
    """espeak-ng voice names for ``language`` (``espeak-ng --voices=<language>``), e.g. en-us, en-gb."""
    out = subprocess.run(
        [_program("espeak-ng"), f"--voices={language}"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    names = []
    for line in out.splitlines()[1:]:
        fields = line.split()
        # columns: Pty Language Age/Gender VoiceName File [Other languages]; mbrola voices
        # ("mb/...") need the separate mbrola program and voice data, and "variant" rows are
        # modifiers ("en-us+Storm"), not voices, so both are left out
        if len(fields) >= 5 and not fields[4].startswith("mb/") and fields[1] not in (*names, "variant"):
            names.append(fields[1])
    return names


def available_voices(engine: str = "flite") -> list[str]:
    """The voices :func:`synthesize` accepts for ``engine`` on this machine."""
    if engine == "flite":
        return flite_voices()
    if engine == "espeak-ng":
        return espeak_voices()
    raise ValueError(f"engine={engine!r} is not a known synthesiser; use one of {', '.join(ENGINES)}")


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SynthesisError(
            f"the speech synthesiser {name!r} is not installed (not found on PATH). "
            f"Install it with: sudo apt-get install {_APT_PACKAGE[name]}"
        )
    return path


@functools.lru_cache(maxsize=None)
def _known_voices(engine: str) -> tuple[str, ...]:
    return tuple(available_voices(engine))


def _check_voice(engine: str, voice: str) -> None:
    if not isinstance(voice, str) or not voice:
        raise ValueError(f"voice must be a non-empty string, got {voice!r}")
    if engine == "flite" and (os.sep in voice or voice.endswith(".flitevox")):
        if not os.path.exists(voice):
            raise SynthesisError(f"flite voice file {voice!r} does not exist; give a path to a .flitevox file")
        return
    known = _known_voices(engine)
    if voice not in known:
        raise SynthesisError(
            f"{engine} has no voice {voice!r}; available here: {', '.join(known) or 'none'}"
            + (f". Clear voices for ASR tests: {', '.join(CLEAR_FLITE_VOICES)}" if engine == "flite" else "")
        )


def _read_16k(path: str) -> np.ndarray:
    from asr_lab.core.audio import load_audio

    return load_audio(path)
