"""Black-box policies over a re-decoding engine, on a schedule the policy cannot change.

:class:`RedecodingProcessor` re-transcribes a growing audio buffer with any
:class:`~asr_lab.ASRBase` (as LocalAgreement does) and asks a :class:`CommitRule` how many
words of the new hypothesis's uncommitted tail to commit. Everything the engine is asked
— which audio, which prompt — depends only on the audio and on the engine's own earlier
answers, never on what the rule committed:

* the buffer grows from the stream start; once it is longer than ``trim_sec`` and the
  newest hypothesis has two or more segments, it is cut at the end of the second-to-last
  segment (as LocalAgreement-2 does, but without waiting for that point to be committed);
  the hypothesis's words before the cut are committed at once, whatever the rule said,
  because their audio leaves the buffer;
* the prompt is the text of those cut-off words (the last ~200 characters), as the
  reference prompts with the committed text before its buffer.

So the engine's answers can be recorded once and any rule replayed from them exactly
(:mod:`asr_lab.policies.record_replay`). The tail of a hypothesis is found as LocalAgreement
finds it (:class:`~asr_lab.policies.local_agreement.HypothesisBuffer`: words starting
before the last commit are dropped, and up to 5 leading words that repeat the committed
end). Committed words keep the timestamps of the hypothesis that committed them.
"""

from __future__ import annotations

from typing import Optional, Protocol, Sequence, Tuple

import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE, ASRBase, checked_ts_words
from asr_lab.policies.local_agreement import PROMPT_CHARS, HypothesisBuffer

__all__ = ["CommitRule", "RedecodingProcessor"]

Word = Tuple[float, float, str]


class CommitRule(Protocol):
    """Decides, from each new hypothesis tail, how many of its leading words to commit."""

    name: str

    def reset(self) -> None:
        """Forget everything: a new stream starts."""

    def decide(self, tail: list[Word], buffer_end: float) -> int:
        """How many leading words of ``tail`` (absolute times, nothing committed in it) to commit now."""

    def forced(self, until: float) -> None:
        """Words ending at or before ``until`` were committed by the schedule, not by the rule."""


class RedecodingProcessor:
    """An :class:`~asr_lab.ASRProcessor` driving ``asr`` on the fixed schedule above, committing by ``rule``.

    ``partial()`` is the newest hypothesis's uncommitted tail; ``finish()`` commits it.
    """

    sampling_rate = SAMPLE_RATE

    def __init__(self, asr: ASRBase, rule: CommitRule, *, trim_sec: float = 15.0, min_chunk_sec: float = 1.0) -> None:
        for method in ("transcribe", "ts_words", "segments_end_ts"):
            if not callable(getattr(asr, method, None)):
                raise TypeError(f"{type(asr).__name__} is not an ASRBase: it has no method {method}()")
        if not (isinstance(trim_sec, (int, float)) and trim_sec > 0):
            raise ValueError(f"trim_sec={trim_sec!r} must be a positive number of seconds, e.g. 15")
        self.asr = asr
        self.rule = rule
        self.trim_sec = float(trim_sec)
        self.min_chunk_sec = float(min_chunk_sec)
        self.init()

    def init(self, offset: float = 0.0) -> None:
        """Start a new stream at ``offset`` seconds."""
        self.audio_buffer = np.array([], dtype=np.float32)
        self.buffer_time_offset = float(offset or 0.0)
        self.hypotheses = HypothesisBuffer(self.buffer_time_offset)
        self.committed: list[Word] = []
        self.cut_off: list[Word] = []  # the engine's words before the buffer: the prompt's source
        self.pending: list[Word] = []
        self._last_words: list[Word] = []
        self.rule.reset()

    def insert_audio_chunk(self, audio: np.ndarray) -> None:
        self.audio_buffer = np.append(self.audio_buffer, np.asarray(audio, dtype=np.float32))

    def process_iter(self) -> Optional[Tuple[float, float, str]]:
        result = self.asr.transcribe(self.audio_buffer, init_prompt=self.prompt())
        words = checked_ts_words(self.asr, result)
        ends = list(self.asr.segments_end_ts(result))
        self.hypotheses.insert(words, self.buffer_time_offset)
        tail, self.hypotheses.current = self.hypotheses.current, []
        buffer_end = self.buffer_time_offset + len(self.audio_buffer) / SAMPLE_RATE
        k = max(0, min(len(tail), int(self.rule.decide(list(tail), buffer_end))))
        new, rest = tail[:k], tail[k:]
        self._commit(new)
        if len(self.audio_buffer) / SAMPLE_RATE > self.trim_sec and len(ends) >= 2:
            cut = ends[-2] + self.buffer_time_offset
            n = 0
            while n < len(rest) and rest[n][1] <= cut:
                n += 1
            forced, rest = rest[:n], rest[n:]
            self._commit(forced)
            new = new + forced
            self.rule.forced(cut)
            self.cut_off.extend((a + self.buffer_time_offset, b + self.buffer_time_offset, w) for a, b, w in words if b + self.buffer_time_offset <= cut)
            self.hypotheses.pop_committed(cut)
            self.audio_buffer = self.audio_buffer[int((cut - self.buffer_time_offset) * SAMPLE_RATE):]
            self.buffer_time_offset = cut
        self.pending = rest
        self._last_words = new
        return self._join(new)

    def finish(self) -> Optional[Tuple[float, float, str]]:
        """End of stream: commit the newest hypothesis's uncommitted tail."""
        self._last_words, self.pending = list(self.pending), []
        self.committed.extend(self._last_words)
        self.buffer_time_offset += len(self.audio_buffer) / SAMPLE_RATE
        return self._join(self._last_words)

    def settle_until(self, time: float) -> None:
        """Treat the audio before absolute ``time`` as already committed (VAC's spliced context)."""
        self.hypotheses.last_committed_time = max(self.hypotheses.last_committed_time, float(time))

    def partial(self) -> Optional[Tuple[float, float, str]]:
        return self._join(self.pending)

    def last_words(self) -> list[Word]:
        return list(self._last_words)

    def spawn(self) -> "RedecodingProcessor":
        """A fresh processor (own rule state) sharing this one's engine; calls are serialised
        unless the engine is ``thread_safe`` (as :meth:`OnlineASRProcessor.spawn`)."""
        import copy

        from asr_lab.policies.local_agreement import SerializedASR

        if not getattr(self.asr, "thread_safe", False) and not isinstance(self.asr, SerializedASR):
            self.asr = SerializedASR(self.asr)
        return RedecodingProcessor(self.asr, copy.deepcopy(self.rule), trim_sec=self.trim_sec, min_chunk_sec=self.min_chunk_sec)

    def prompt(self) -> str:
        """The engine's words before the buffer, from the end backwards, up to ~200 characters."""
        taken: list[str] = []
        length = 0
        for word in reversed(self.cut_off):
            if length >= PROMPT_CHARS:
                break
            taken.append(word[2])
            length += len(word[2]) + 1
        return self.asr.sep.join(reversed(taken))

    def _commit(self, words: Sequence[Word]) -> None:
        if not words:
            return
        self.committed.extend(words)
        self.hypotheses.committed_in_buffer.extend(words)
        self.hypotheses.last_committed_time = words[-1][1]
        self.hypotheses.last_committed_word = words[-1][2]

    def _join(self, words: Sequence[Word]) -> Optional[Tuple[float, float, str]]:
        if not words:
            return None
        return (words[0][0], words[-1][1], self.asr.sep.join(w[2] for w in words))
