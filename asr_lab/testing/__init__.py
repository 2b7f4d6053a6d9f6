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

from asr_lab.testing.conformance import Check, ConformanceError, ConformanceReport, check_processor
from asr_lab.testing.samples import DATA_DIR, SpeechSample, sample_speech
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
    "DATA_DIR",
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

