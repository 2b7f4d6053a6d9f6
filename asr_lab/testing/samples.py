"""The speech samples bundled with the conformance kit (``asr_lab/testing/data``): audio, text, word times."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["DATA_DIR", "SpeechSample", "sample_speech"]

DATA_DIR = Path(__file__).parent / "data"
"""The folder of the bundled samples."""


@dataclass(frozen=True)
class SpeechSample:
    """A bundled utterance: float32 16 kHz audio, its text and reference word timings."""

    audio: np.ndarray
    text: str
    words: list[tuple[float, float, str]]
    path: Path


@lru_cache(maxsize=None)
def sample_speech(name: str = "sample") -> SpeechSample:
    """A bundled utterance of ``asr_lab/testing/data`` (rebuilt by its ``build_sample.py``).

    ``"sample"``: one sentence, 3.3 s. ``"pauses"``: three sentences in two voices with
    ~1.1 s pauses (11.4 s), the conformance kit's default.
    """
    from asr_lab.core.audio import load_audio

    path = DATA_DIR / f"{name}.flac"
    if not path.exists():
        known = sorted(p.stem for p in DATA_DIR.glob("*.flac"))
        raise FileNotFoundError(
            f"no bundled speech sample {name!r} in {DATA_DIR} (known: {known}); "
            f"rebuild it with `python -m asr_lab.testing.data.build_sample`"
        )
    text = path.with_suffix(".txt").read_text().strip()
    words_file = path.with_suffix(".json")
    words = [tuple(w) for w in json.loads(words_file.read_text())] if words_file.exists() else []
    return SpeechSample(load_audio(path), text, words, path)
