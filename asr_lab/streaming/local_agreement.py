"""LocalAgreement-2: the streaming policy of Whisper-Streaming, over any :class:`~asr_lab.ASRBase`.

Macháček, Dabre & Bojar (2023), "Turning Whisper into Real-Time Transcription System",
IJCNLP-AACL demo track. The recogniser re-transcribes a growing audio buffer; a word is
*committed* once two consecutive hypotheses agree on it (the longest common prefix of
their uncommitted tails). The buffer is trimmed at segment or sentence ends that lie in
the committed part, and the committed text before the buffer is passed as the prompt.

This module reproduces the published reference behaviour exactly, on the same ASR
answers: the same committed words and timestamps, prompts and audio windows at every
step. Improvements belong in options or in another policy, never in silent changes here.
Words are ``(start, end, text)`` tuples.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np

from asr_lab.core.audio import as_chunk
from asr_lab.core.protocols import SAMPLE_RATE, ASRBase

__all__ = ["HypothesisBuffer", "OnlineASRProcessor", "SerializedASR", "split_sentences"]

Word = Tuple[float, float, str]

PROMPT_CHARS = 200
"""The prompt holds committed words (from the end backwards) until it reaches this many characters."""
SENTENCE_MODE_MAX_BUFFER_SEC = 30.0
"""In "sentence" trimming mode the buffer is still cut at segments beyond Whisper's 30 s window."""


class HypothesisBuffer:
    """Holds the uncommitted hypotheses and decides what two consecutive ones agree on.

    State: ``committed_in_buffer`` (committed words still inside the audio buffer),
    ``previous`` (uncommitted tail of the previous hypothesis), ``current`` (tail of the
    newest one), ``last_committed_time`` and ``last_committed_word``.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.committed_in_buffer: list[Word] = []
        self.previous: list[Word] = []
        self.current: list[Word] = []
        self.last_committed_time: float = offset
        self.last_committed_word: Optional[str] = None

    def insert(self, words: Sequence[Word], offset: float) -> None:
        """Take a new hypothesis (times relative to the buffer start ``offset``) as ``current``.

        Words starting before the last commit (minus 0.1 s) are dropped; if the new tail
        begins within 1 s of the last commit, up to 5 leading words that repeat the end of
        the committed text are dropped too (the n-gram de-duplication of the reference).
        """
        shifted = [(a + offset, b + offset, t) for a, b, t in words]
        kept = [w for w in shifted if w[0] > self.last_committed_time - 0.1]
        if kept and abs(kept[0][0] - self.last_committed_time) < 1 and self.committed_in_buffer:
            longest = min(5, len(self.committed_in_buffer), len(kept))
            for n in range(1, longest + 1):
                committed_tail = " ".join(w[2] for w in self.committed_in_buffer[-n:])
                new_head = " ".join(w[2] for w in kept[:n])
                if committed_tail == new_head:
                    kept = kept[n:]
                    break
        self.current = kept

    def flush(self) -> list[Word]:
        """Commit the common prefix of ``previous`` and ``current``; return the newly committed words.

        Committed words carry the timestamps of the *newest* hypothesis.
        """
        committed: list[Word] = []
        while self.current and self.previous and self.current[0][2] == self.previous[0][2]:
            word = self.current.pop(0)
            self.previous.pop(0)
            committed.append(word)
            self.last_committed_word = word[2]
            self.last_committed_time = word[1]
        self.previous = self.current
        self.current = []
        self.committed_in_buffer.extend(committed)
        return committed

    def pop_committed(self, time: float) -> None:
        """Forget committed words that end at or before ``time`` (they left the audio buffer)."""
        while self.committed_in_buffer and self.committed_in_buffer[0][1] <= time:
            self.committed_in_buffer.pop(0)

    def unconfirmed(self) -> list[Word]:
        """The newest uncommitted tail: what the engine currently believes but has not confirmed."""
        return self.previous


SentenceSplitter = Union[Callable[[str], Sequence[str]], Any]

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")


def split_sentences(text: str) -> list[str]:
    """Split ``text`` after ``.``, ``!``, ``?`` or ``…`` followed by white space.

    The default splitter for "sentence" trimming; pass a language-aware one (an object
    with ``split(text)``, such as a MosesSentenceSplitter, or any callable) for real use.
    """
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


class OnlineASRProcessor:
    """An :class:`~asr_lab.ASRProcessor` that streams any :class:`~asr_lab.ASRBase` by LocalAgreement-2.

    ``buffer_trimming`` is ``("segment", seconds)`` (cut at the recogniser's segment ends
    once the buffer is longer than ``seconds``) or ``("sentence", seconds)`` (cut at the
    end of the second-to-last committed sentence; ``tokenizer`` splits sentences).
    ``min_chunk_sec`` is how much new audio a driver should wait for between calls; the
    policy itself runs on whatever it has been given. ``partial()`` is the unconfirmed tail.
    """

    sampling_rate = SAMPLE_RATE

    def __init__(
        self,
        asr: ASRBase,
        buffer_trimming: Tuple[str, float] = ("segment", 15),
        min_chunk_sec: float = 1.0,
        tokenizer: Optional[SentenceSplitter] = None,
    ) -> None:
        mode, seconds = _check_trimming(buffer_trimming)
        if not (isinstance(min_chunk_sec, (int, float)) and min_chunk_sec > 0):
            raise ValueError(f"min_chunk_sec={min_chunk_sec!r} must be a positive number of seconds, e.g. 1.0")
        for method in ("transcribe", "ts_words", "segments_end_ts"):
            if not callable(getattr(asr, method, None)):
                raise TypeError(f"{type(asr).__name__} is not an ASRBase: it has no method {method}()")
        self.asr = asr
        self.buffer_trimming = (mode, seconds)
        self.buffer_trimming_way, self.buffer_trimming_sec = mode, seconds
        self.min_chunk_sec = float(min_chunk_sec)
        self.tokenizer = tokenizer
        self.init()

    # -- the ASRProcessor contract -------------------------------------------------
    def init(self, offset: float = 0.0) -> None:
        """Start a new stream at ``offset`` seconds: empty buffer, fresh hypotheses, nothing committed."""
        self.audio_buffer = np.array([], dtype=np.float32)
        self.buffer_time_offset = float(offset) if offset is not None else 0.0
        self.transcript_buffer = HypothesisBuffer(self.buffer_time_offset)
        self.committed: list[Word] = []
        self._last_words: list[Word] = []

    def insert_audio_chunk(self, audio: np.ndarray) -> None:
        """Append ``audio`` (float32, 16 kHz, mono) to the buffer."""
        self.audio_buffer = np.append(self.audio_buffer, as_chunk(audio))  # int16 scaled, stereo averaged

    def process_iter(self) -> Optional[Tuple[float, float, str]]:
        """Transcribe the whole buffer, commit what agrees with the previous hypothesis, trim.

        Returns the newly committed words as one ``(start, end, text)`` or ``None``.
        """
        prompt = self.prompt()
        result = self.asr.transcribe(self.audio_buffer, init_prompt=prompt)
        words = self.asr.ts_words(result)
        self.transcript_buffer.insert(words, self.buffer_time_offset)
        new = self.transcript_buffer.flush()
        self.committed.extend(new)
        self._last_words = new

        if new and self.buffer_trimming_way == "sentence" and self._buffer_sec() > self.buffer_trimming_sec:
            self._trim_at_sentence()
        limit = self.buffer_trimming_sec if self.buffer_trimming_way == "segment" else SENTENCE_MODE_MAX_BUFFER_SEC
        if self._buffer_sec() > limit:
            self._trim_at_segment(result)
        return self._join(new)

    def finish(self) -> Optional[Tuple[float, float, str]]:
        """End of stream: return the unconfirmed words and move the offset past the buffer."""
        self._last_words = list(self.transcript_buffer.unconfirmed())
        pending = self._join(self._last_words)
        self.buffer_time_offset += self._buffer_sec()
        return pending

    def partial(self) -> Optional[Tuple[float, float, str]]:
        """The current unconfirmed hypothesis (may change on the next call), or ``None``."""
        return self._join(self.transcript_buffer.unconfirmed())

    def spawn(self) -> "OnlineASRProcessor":
        """A fresh processor with the same settings that shares this one's recogniser.

        Servers give every stream its own policy state while the model is loaded once. A
        recogniser that declares ``thread_safe = True`` is shared as it is; any other is
        wrapped in a :class:`SerializedASR`, so concurrent streams take turns calling it
        (correct, though streams then wait for each other).
        """
        asr = self.asr
        if not getattr(asr, "thread_safe", False) and not isinstance(asr, SerializedASR):
            asr = self.asr = SerializedASR(asr)
        return OnlineASRProcessor(asr, self.buffer_trimming, self.min_chunk_sec, self.tokenizer)

    def last_words(self) -> list[Word]:
        """Word timestamps of the segment the last ``process_iter()``/``finish()`` returned."""
        return list(self._last_words)

    # -- the policy's parts --------------------------------------------------------
    def prompt(self) -> str:
        """Committed text that has left the audio buffer, at most ~200 characters, for the recogniser.

        Words still inside the buffer are excluded (their audio is transcribed anyway);
        words are taken from the end backwards until their lengths plus one exceed 200.
        """
        k = max(0, len(self.committed) - 1)
        while k > 0 and self.committed[k - 1][1] > self.buffer_time_offset:
            k -= 1
        before_buffer = [w[2] for w in self.committed[:k]]
        taken: list[str] = []
        length = 0
        while before_buffer and length < PROMPT_CHARS:
            word = before_buffer.pop()
            length += len(word) + 1
            taken.append(word)
        return self.asr.sep.join(reversed(taken))

    def _trim_at_segment(self, result: Any) -> None:
        if not self.committed:
            return
        ends = list(self.asr.segments_end_ts(result))
        last_committed_end = self.committed[-1][1]
        if len(ends) > 1:
            cut = ends[-2] + self.buffer_time_offset
            while len(ends) > 2 and cut > last_committed_end:
                ends.pop()
                cut = ends[-2] + self.buffer_time_offset
            if cut <= last_committed_end:
                self.chunk_at(cut)

    def _trim_at_sentence(self) -> None:
        if not self.committed:
            return
        sentences = self.words_to_sentences(self.committed)
        if len(sentences) < 2:
            return
        self.chunk_at(sentences[-2][1])

    def chunk_at(self, time: float) -> None:
        """Cut the audio buffer (and committed words in it) at absolute ``time``."""
        self.transcript_buffer.pop_committed(time)
        cut_samples = int((time - self.buffer_time_offset) * self.sampling_rate)
        self.audio_buffer = self.audio_buffer[cut_samples:]
        self.buffer_time_offset = time

    def words_to_sentences(self, words: Sequence[Word]) -> list[Word]:
        """Group timed words into ``(start, end, sentence)`` by the sentence splitter.

        Words are consumed left to right against each sentence's text: the first word a
        sentence starts with gives its start, the word equal to what is left of it gives
        its end (the reference's matching, kept as is for identical trimming points).
        """
        remaining = list(words)
        sentences = self._split(" ".join(w[2] for w in remaining))
        out: list[Word] = []
        for raw in sentences:
            sentence = raw.strip()
            text = sentence
            start = end = None
            while remaining:
                b, e, w = remaining.pop(0)
                w = w.strip()
                if start is None and text.startswith(w):
                    start = b
                elif end is None and text == w:
                    end = e
                    out.append((start, end, sentence))
                    break
                text = text[len(w):].strip()
        return out

    # -- helpers -------------------------------------------------------------------
    def _split(self, text: str) -> list[str]:
        if self.tokenizer is None:
            return split_sentences(text)
        split = getattr(self.tokenizer, "split", None)
        return list(split(text) if callable(split) else self.tokenizer(text))

    def _buffer_sec(self) -> float:
        return len(self.audio_buffer) / self.sampling_rate

    def _join(self, words: Sequence[Word]) -> Optional[Tuple[float, float, str]]:
        if not words:
            return None
        return (words[0][0], words[-1][1], self.asr.sep.join(w[2] for w in words))


class SerializedASR:
    """An :class:`~asr_lab.ASRBase` shared by several streams, one call at a time (a lock)."""

    thread_safe = True

    def __init__(self, asr: ASRBase) -> None:
        self.asr = asr
        self.sep = asr.sep
        self._lock = threading.Lock()

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> Any:
        with self._lock:
            return self.asr.transcribe(audio, init_prompt=init_prompt)

    def ts_words(self, result: Any) -> list[Word]:
        return self.asr.ts_words(result)

    def segments_end_ts(self, result: Any) -> list[float]:
        return self.asr.segments_end_ts(result)


def _check_trimming(buffer_trimming: Any) -> Tuple[str, float]:
    try:
        mode, seconds = buffer_trimming
    except (TypeError, ValueError):
        raise ValueError(
            f"buffer_trimming={buffer_trimming!r} must be a pair (mode, seconds), e.g. ('segment', 15)"
        ) from None
    if mode not in ("segment", "sentence"):
        raise ValueError(f"buffer_trimming mode {mode!r} is not allowed; use 'segment' or 'sentence'")
    if not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ValueError(f"buffer_trimming seconds {seconds!r} must be a positive number, e.g. 15")
    return mode, float(seconds)
