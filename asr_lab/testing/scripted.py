"""Stand-in recognisers for testing streaming policies and replay logic without a model.

These are *stand-ins*: they isolate the logic under test from any real engine, and are
named so. Real engines are tested with real models elsewhere.

* :class:`ScriptedASR` answers a fixed list of hypotheses, one per call, and records
  what it was asked (audio window and prompt) — for step-by-step policy checks.
* :class:`TimelineASR` answers from a word timeline, as an ideal recogniser would: it
  returns the words fully contained in the audio it is given. To know *where* in the
  stream that audio lies it reads the sample values of audio made by
  :meth:`TimelineASR.stream_audio`, which encode their own sample index.
* :class:`ScriptedTokenDecoder` and :class:`TimelineTokenDecoder` are the same two ideas
  for AlignAtt's token-stepped decoder (:class:`~asr_lab.policies.TokenDecoder`): each
  token comes with the encoder frame it "attends" to.

Stand-ins that reproduce failures measured with real Whisper weights (bench/vac.py prints them), each on
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
    "ClippedOnsetASR",
    "ContextSensitiveASR",
    "DecoderCall",
    "GhostWordASR",
    "HallucinatingTailASR",
    "OneSegmentASR",
    "ScriptedASR",
    "ScriptedAnswer",
    "ScriptedTokenDecoder",
    "TimelineASR",
    "TimelineTokenDecoder",
    "TimelineUtterance",
    "timeline_dataset",
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
class ClippedOnsetASR(TimelineASR):
    """A :class:`TimelineASR` that misreads a word beginning less than ``lead_sec`` after its window starts.

    Whisper misreads the first words of audio cut right at the speech onset (a VAD fires
    tens of milliseconds into a word); the misreading is ``word?``, agreed on by every
    window that starts at the same place, so LocalAgreement commits it.
    """

    lead_sec: float = 0.2

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> ScriptedAnswer:
        answer = super().transcribe(audio, init_prompt)
        words = [(s, e, w + "?" if s < self.lead_sec else w) for s, e, w in answer.words]
        return ScriptedAnswer(words, answer.ends())


@dataclass
class ContextSensitiveASR(TimelineASR):
    """A :class:`TimelineASR` that needs the previous sentence, and that hears spliced audio.

    The audio may join pieces of the stream (VAC puts the previous utterance before the
    next): each contiguous piece is recognised where it lies in the buffer. A word whose
    predecessor on the timeline is not in the audio is misread (``word?``), as Whisper
    misreads a sentence it hears without the one before. ``stop_at_splice=True``: nothing
    after the first join is recognised, as Whisper sometimes ends its answer after the
    first sentence.
    """

    stop_at_splice: bool = False

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> ScriptedAnswer:
        if len(audio) == 0:
            return super().transcribe(audio, init_prompt)
        pos = np.round(np.asarray(audio, dtype=np.float64) * _POSITION_SCALE).astype(np.int64)
        self.calls.append(ASRCall(len(audio), init_prompt, int(pos[0])))
        cuts = [0, *(np.flatnonzero(np.diff(pos) != 1) + 1).tolist(), len(pos)]
        pieces = [(int(a), float(pos[a]) / SAMPLE_RATE, float(pos[b - 1] + 1) / SAMPLE_RATE) for a, b in zip(cuts, cuts[1:])]
        if self.stop_at_splice:
            pieces = pieces[:1]

        def piece_of(word: Word) -> Optional[tuple[int, float, float]]:
            return next((p for p in pieces if word[0] >= p[1] - 1e-9 and word[1] <= p[2] + 1e-9), None)

        words: list[Word] = []
        for i, word in enumerate(self.words):
            piece = piece_of(word)
            if piece is None:
                continue
            heard_before = i == 0 or piece_of(self.words[i - 1]) is not None
            at = piece[0] / SAMPLE_RATE - piece[1]
            words.append((word[0] + at, word[1] + at, word[2] if heard_before else word[2] + "?"))
        words.sort()
        ends = [e for (s, e, _), nxt in zip(words, words[1:] + [None]) if nxt is None or nxt[0] - e >= self.pause_sec]
        return ScriptedAnswer(words, ends)


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


@dataclass
class TimelineUtterance:
    """Stand-in utterance (the real one lives in asr_lab.data): a slice of one long timeline
    with position-encoded audio, for :class:`TimelineASR`; ``words`` are the reference timings on
    the utterance's own clock."""

    id: str
    text: str
    timeline: list[Word]
    offset: float

    @property
    def words(self) -> list[Word]:
        return [(a - self.offset, b - self.offset, w) for a, b, w in self.timeline]

    def load_audio(self) -> np.ndarray:
        return TimelineASR.stream_audio(self.timeline[-1][1] + 0.6 - self.offset, start_sec=self.offset)


def timeline_dataset(sentences: list[str], gap_sec: float = 5.0) -> list[TimelineUtterance]:
    """One utterance per sentence (ids ``u0``, ``u1``…), laid end to end on one timeline,
    ``gap_sec`` apart; ``TimelineASR([w for u in ds for w in u.timeline])`` recognises them all."""
    utts, t = [], 0.0
    for i, sentence in enumerate(sentences):
        words = words_from_text(sentence, start=t)
        utts.append(TimelineUtterance(f"u{i}", sentence, words, t))
        t = words[-1][1] + gap_sec
    return utts


# --------------------------------------------------------------------------- AlignAtt stand-ins

FRAMES_PER_SEC = 50.0
"""Whisper's encoder frames per second (20 ms each)."""


@dataclass
class DecoderCall:
    """What a token-decoder stand-in was asked: audio window, context and forced text."""

    n_samples: int
    context: str
    forced: str
    start_sample: Optional[int] = None


class _Session:
    def __init__(self, steps: list, n_frames: int) -> None:
        self._steps = list(steps)
        self.n_frames = n_frames
        self.taken = 0

    def next(self):
        from asr_lab.policies.alignatt import TokenStep

        if self.taken >= len(self._steps):
            self.taken += 1
            return TokenStep(-1, "", self.n_frames - 1, eot=True)
        self.taken += 1
        return self._steps[self.taken - 1]


@dataclass
class ScriptedTokenDecoder:
    """A token decoder stand-in whose k-th session yields ``sessions[k]``: ``(text, frame)`` pairs, then end-of-text.

    Token ids are assigned per distinct text (``tokens`` maps them back). ``n_frames`` of a
    session is the audio's length in encoder frames. Running out of sessions raises.
    """

    sessions: Sequence[Sequence[tuple[str, int]]]
    sep: str = ""
    frames_per_sec: float = FRAMES_PER_SEC
    calls: list[DecoderCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.vocabulary: dict[str, int] = {}

    def _id(self, text: str) -> int:
        return self.vocabulary.setdefault(text, len(self.vocabulary))

    def begin(self, audio: np.ndarray, *, context: Sequence[int], forced: Sequence[int]):
        from asr_lab.policies.alignatt import TokenStep

        k = len(self.calls)
        self.calls.append(DecoderCall(len(audio), self.detokenize(context), self.detokenize(forced)))
        if k >= len(self.sessions):
            raise IndexError(f"ScriptedTokenDecoder has {len(self.sessions)} sessions but was started a {k + 1}th time")
        steps = [TokenStep(self._id(text), text, int(frame)) for text, frame in self.sessions[k]]
        return _Session(steps, int(np.ceil(len(audio) / SAMPLE_RATE * self.frames_per_sec)))

    def detokenize(self, tokens: Sequence[int]) -> str:
        texts = {v: k for k, v in self.vocabulary.items()}
        return "".join(texts[t] for t in tokens)

    def encode(self, text: str) -> list[int]:
        """Tokens of ``text``: one per word with its leading space (a real tokenizer may split words further)."""
        import re

        return [self._id(piece) for piece in re.findall(r"\s*\S+", text)]


@dataclass
class TimelineTokenDecoder:
    """An ideal token decoder over a word timeline, for audio made by :meth:`TimelineASR.stream_audio`.

    It continues the text after the last forced (or, with none, context) token: the next
    words of the timeline that start inside the window, one token per word (words longer
    than ``split_over`` characters come as two tokens, the second without a leading
    space). A token whose word lies wholly inside the audio attends to the word's
    middle; one whose word runs past the audio's end attends to the last frame, as a
    real decoder that has not heard it yet. After the last word: end-of-text.
    Words are ``(start, end, " text")``.
    """

    words: Sequence[Word]
    split_over: int = 0
    sep: str = ""
    frames_per_sec: float = FRAMES_PER_SEC
    calls: list[DecoderCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.words = sorted(self.words)
        self._texts: dict[int, str] = {}
        self._pieces: list[list[tuple[int, str]]] = []
        for i, (_, _, text) in enumerate(self.words):
            parts = [text] if not self.split_over or len(text.strip()) <= self.split_over else [text[: len(text) // 2 + 1], text[len(text) // 2 + 1:]]
            pieces = [(i * 4 + j, part) for j, part in enumerate(parts)]
            self._pieces.append(pieces)
            self._texts.update(pieces)

    def begin(self, audio: np.ndarray, *, context: Sequence[int], forced: Sequence[int]):
        from asr_lab.policies.alignatt import TokenStep

        first = int(round(float(audio[0]) * _POSITION_SCALE)) if len(audio) else 0
        self.calls.append(DecoderCall(len(audio), self.detokenize(context), self.detokenize(forced), first))
        t0 = first / SAMPLE_RATE
        t1 = t0 + len(audio) / SAMPLE_RATE
        n_frames = int(np.ceil(len(audio) / SAMPLE_RATE * self.frames_per_sec))
        last = list(forced or context)
        after = last[-1] if last else None
        steps = []
        for i, (start, end, _) in enumerate(self.words):
            if start < t0 - 1e-9 or start >= t1:
                continue
            for token, text in self._pieces[i]:
                if after is not None and token <= after:
                    continue
                frame = n_frames - 1 if end > t1 + 1e-9 else int(((start + end) / 2 - t0) * self.frames_per_sec)
                steps.append(TokenStep(token, text, frame))
        return _Session(steps, n_frames)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return "".join(self._texts[t] for t in tokens)
