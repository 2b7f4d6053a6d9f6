"""Stand-in recognisers for testing streaming policies and replay logic without a model.

These are *stand-ins*: they isolate the logic under test from any real engine, and are
named so. Real engines are tested with real models elsewhere.

* :class:`ScriptedASR` answers a fixed list of hypotheses, one per call, and records
  what it was asked (audio window and prompt) — for step-by-step policy checks.
* :class:`TimelineASR` answers from a word timeline, as an ideal recogniser would: it
  returns the words fully contained in the audio it is given. To know *where* in the
  stream that audio lies it reads the sample values of audio made by
  :meth:`TimelineASR.stream_audio`, which encode their own sample index.

Stand-ins that reproduce failures measured with real Whisper weights (issue 16), each on
top of :class:`TimelineASR`:

* :class:`GhostWordASR` adds a word of zero length (or one beyond the audio) at the end of
  every window, as Whisper does at buffer cuts ("day." at 28.32-28.32 s);
* :class:`HallucinatingTailASR` adds a made-up sentence when the window ends in silence
  (by default one repeating words it already heard), as Whisper does on trailing silence;
* :class:`OneSegmentASR` answers with a single segment per call, as tiny.en does, so
  segment trimming never finds a second segment end to cut at.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE

__all__ = [
    "ASRCall",
    "GhostWordASR",
    "HallucinatingTailASR",
    "OneSegmentASR",
    "ScriptedASR",
    "ScriptedAnswer",
    "TimelineASR",
    "words_from_text",
]

Word = tuple[float, float, str]
_POSITION_SCALE = float(2**26)  # sample i has value i / 2**26: exact in float32 up to 17 min, ±4 samples at 1 h


@dataclass
class ScriptedAnswer:
    """One hypothesis: words relative to the buffer start and segment end times."""

    words: list[Word]
    segment_ends: Optional[list[float]] = None

    def ends(self) -> list[float]:
        if self.segment_ends is not None:
            return list(self.segment_ends)
        return [self.words[-1][1]] if self.words else []


@dataclass
class ASRCall:
    """What a stand-in was asked: the audio window (in samples) and the prompt."""

    n_samples: int
    prompt: str
    start_sample: Optional[int] = None

    @property
    def duration(self) -> float:
        return self.n_samples / SAMPLE_RATE


@dataclass
class ScriptedASR:
    """An ASRBase stand-in that answers ``answers[k]`` on its k-th call.

    An answer is a :class:`ScriptedAnswer` or a plain list of words (then the only
    segment ends at the last word). Running out of answers raises, naming the call.
    """

    answers: Sequence[Union[ScriptedAnswer, Sequence[Word]]]
    sep: str = " "
    calls: list[ASRCall] = field(default_factory=list)

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> ScriptedAnswer:
        k = len(self.calls)
        self.calls.append(ASRCall(len(audio), init_prompt))
        if k >= len(self.answers):
            raise IndexError(f"ScriptedASR has {len(self.answers)} answers but was called a {k + 1}th time")
        answer = self.answers[k]
        return answer if isinstance(answer, ScriptedAnswer) else ScriptedAnswer(list(answer))

    def ts_words(self, result: ScriptedAnswer) -> list[Word]:
        return list(result.words)

    def segments_end_ts(self, result: ScriptedAnswer) -> list[float]:
        return result.ends()


@dataclass
class TimelineASR:
    """An ideal recogniser over a known word timeline ``[(start, end, word)]`` in stream seconds.

    For audio from :meth:`stream_audio` it returns every word lying entirely inside the
    window, times relative to the window, and one segment per run of words separated by
    pauses of at least ``pause_sec``. With ``unstable_tail_sec > 0`` the words ending
    within that distance of the window's end are garbled (``word~``), like a real
    recogniser that has not heard enough context yet — they must not be committed.
    """

    words: Sequence[Word]
    pause_sec: float = 0.4
    unstable_tail_sec: float = 0.0
    sep: str = " "
    calls: list[ASRCall] = field(default_factory=list)

    @staticmethod
    def stream_audio(duration_sec: float, start_sec: float = 0.0) -> np.ndarray:
        """Audio whose samples encode their position in the stream (for this stand-in only)."""
        first = int(round(start_sec * SAMPLE_RATE))
        n = int(round(duration_sec * SAMPLE_RATE))
        return (np.arange(first, first + n, dtype=np.float64) / _POSITION_SCALE).astype(np.float32)

    def __post_init__(self) -> None:
        self.words = sorted(self.words)
        self._starts = [w[0] for w in self.words]

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> ScriptedAnswer:
        if len(audio) == 0:
            self.calls.append(ASRCall(0, init_prompt))
            return ScriptedAnswer([], [])
        first = int(round(float(audio[0]) * _POSITION_SCALE))
        self.calls.append(ASRCall(len(audio), init_prompt, first))
        t0 = first / SAMPLE_RATE
        t1 = t0 + len(audio) / SAMPLE_RATE
        lo = bisect.bisect_left(self._starts, t0 - 1e-9)
        hi = bisect.bisect_right(self._starts, t1 + 1e-9)
        inside = [(s - t0, e - t0, w) for s, e, w in self.words[lo:hi] if e <= t1 + 1e-9]
        if self.unstable_tail_sec > 0:
            horizon = t1 - t0 - self.unstable_tail_sec
            inside = [(s, e, w if e <= horizon + 1e-9 else w + "~") for s, e, w in inside]
        ends = [e for (s, e, _), nxt in zip(inside, inside[1:] + [None]) if nxt is None or nxt[0] - e >= self.pause_sec]
        return ScriptedAnswer(inside, ends)

    def ts_words(self, result: ScriptedAnswer) -> list[Word]:
        return list(result.words)

    def segments_end_ts(self, result: ScriptedAnswer) -> list[float]:
        return result.ends()


@dataclass
class GhostWordASR(TimelineASR):
    """A :class:`TimelineASR` that ends every answer with a ghost word ``ghost``.

    ``where="zero"``: a zero-length word at the window's end; ``where="beyond"``: a word
    starting ``0.2`` s after the window's end. When the window ends in a pause, two
    consecutive answers end the same way and LocalAgreement commits the ghost.
    """

    ghost: str = "day."
    where: str = "zero"

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> ScriptedAnswer:
        answer = super().transcribe(audio, init_prompt)
        if len(audio) == 0:
            return answer
        length = len(audio) / SAMPLE_RATE
        ghost = (length, length, self.ghost) if self.where == "zero" else (length + 0.2, length + 0.5, self.ghost)
        return ScriptedAnswer(answer.words + [ghost], answer.ends())


@dataclass
class HallucinatingTailASR(TimelineASR):
    """A :class:`TimelineASR` that makes up a sentence when its window ends in ``silence_sec`` of no speech.

    The made-up words are ``text`` if given, else the first ``repeat_words`` words of the
    timeline (a repeat of what was said, as Whisper's hallucinations often are); they are
    spread evenly over the trailing silence. Fed right before ``finish()``, they are the
    unconfirmed tail that the reference commits.
    """

    silence_sec: float = 1.0
    text: Optional[str] = None
    repeat_words: int = 6

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> ScriptedAnswer:
        answer = super().transcribe(audio, init_prompt)
        if len(audio) == 0:
            return answer
        length = len(audio) / SAMPLE_RATE
        last_end = answer.words[-1][1] if answer.words else 0.0
        if length - last_end < self.silence_sec:
            return answer
        made_up = self.text.split() if self.text else [w[2] for w in self.words[: self.repeat_words]]
        span = (length - last_end) / (len(made_up) + 1)
        extra = [(last_end + (i + 0.5) * span, last_end + (i + 1.4) * span, w) for i, w in enumerate(made_up)]
        return ScriptedAnswer(answer.words + extra, answer.ends())


@dataclass
class OneSegmentASR(TimelineASR):
    """A :class:`TimelineASR` whose answer is always one segment (ending at its last word), whatever the pauses."""

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> ScriptedAnswer:
        answer = super().transcribe(audio, init_prompt)
        return ScriptedAnswer(answer.words, [answer.words[-1][1]] if answer.words else [])


def words_from_text(
    text: str, *, start: float = 0.0, word_sec: float = 0.3, gap_sec: float = 0.1, pause_every: int = 0, pause_sec: float = 0.8
) -> list[Word]:
    """A regular word timeline for ``text``: each word ``word_sec`` long, ``gap_sec`` apart,
    with a ``pause_sec`` pause after every ``pause_every`` words (0 = never)."""
    out: list[Word] = []
    t = start
    for i, word in enumerate(text.split()):
        out.append((round(t, 6), round(t + word_sec, 6), word))
        t += word_sec + gap_sec
        if pause_every and (i + 1) % pause_every == 0:
            t += pause_sec
    return out
