"""Tools for testing processors: the conformance kit, stand-in recognisers, bundled speech.

* :func:`check_processor` — run any ASRProcessor through the contract (``conformance``).
* :class:`ScriptedASR`, :class:`TimelineASR` — model-free ASRBase stand-ins (``scripted``), and
  :class:`GhostWordASR`, :class:`HallucinatingTailASR`, :class:`OneSegmentASR`, :class:`ClippedOnsetASR`,
  :class:`ContextSensitiveASR` that reproduce
  Whisper's measured failures;
  :class:`ScriptedTokenDecoder`, :class:`TimelineTokenDecoder` — the same for AlignAtt.
* :func:`sample_speech` — a short real utterance shipped with the package, with its text
  and word timings, so checks run anywhere without a dataset.
* ``asr_lab.testing.models.build_tiny_whisper`` — random-weight Whisper models built
  locally, for exercising the real Whisper load/transcribe paths offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from asr_lab.testing.conformance import Check, ConformanceError, ConformanceReport, check_processor
from asr_lab.testing.scripted import (
    ClippedOnsetASR,
    ContextSensitiveASR,
    GhostWordASR,
    HallucinatingTailASR,
    OneSegmentASR,
    ScriptedASR,
    ScriptedAnswer,
    ScriptedTokenDecoder,
    TimelineASR,
    TimelineTokenDecoder,
    TimelineUtterance,
    timeline_dataset,
    words_from_text,
)

__all__ = [
    "Check",
    "ConformanceError",
    "ConformanceReport",
    "ClippedOnsetASR",
    "ContextSensitiveASR",
    "GhostWordASR",
    "HallucinatingTailASR",
    "OneSegmentASR",
    "SpeechSample",
    "ScriptedASR",
    "ScriptedAnswer",
    "ScriptedTokenDecoder",
    "TimelineTokenDecoder",
    "TimelineASR",
    "TimelineUtterance",
    "check_processor",
    "sample_speech",
    "timeline_dataset",
    "words_from_text",
]

DATA_DIR = Path(__file__).parent / "data"


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
