"""LocalAgreement: the streaming policy of Whisper-Streaming (the reference LocalAgreement-2), and LA-n.

Macháček, Dabre & Bojar (2023), "Turning Whisper into Real-Time Transcription System",
IJCNLP-AACL demo track. The recogniser re-transcribes a growing audio buffer; a word is
*committed* once two consecutive hypotheses agree on it (the longest common prefix of
their uncommitted tails). The buffer is trimmed at segment or sentence ends that lie in
the committed part, and the committed text before the buffer is passed as the prompt.

This module reproduces the published reference behaviour exactly, on the same ASR
answers: the same committed words and timestamps, prompts and audio windows at every
step. Improvements belong in options or in another policy, never in silent changes here.
Words are ``(start, end, text)`` tuples.

Named fixes, each off by default (the default is the reference, exactly), each a defect
measured with real Whisper weights (figures in bench/vac.py's output):

* ``ghost_filter``: drop words of zero or negative length, or that begin at or after the
  end of the audio buffer. Whisper emits them at buffer cuts ("day." at 28.32-28.32 s);
  committed, they also reach every later prompt.
* ``guarded_finish``: at ``finish()``, do not commit a pending sentence that repeats
  committed text (half of its words or more in 4-word runs already committed), nor what
  follows it, nor more words than the audio after the last commit can hold
  (:data:`MAX_WORDS_PER_SEC`). Whisper hallucinates such tails
  when the buffer ends in silence, and the reference commits them unconfirmed.
* ``max_buffer_sec``: a hard cap on the audio buffer. Segment trimming needs two segment
  ends inside the buffer, and a recogniser that answers with one segment per call (tiny.en
  often does) or commits nothing (faint noise) lets the buffer grow without bound. Over
  the cap the buffer is cut at the end of the last committed word; if that is not enough,
  the oldest audio is dropped so that ``buffer_trimming_sec`` remain, with the uncommitted
  words that lay in it.

:class:`LocalAgreementN` generalises the rule to any ``n`` (Polák et al. 2022 define LA-n): a
word is committed once ``n`` consecutive hypotheses agree on it (by text, at the same position
of their uncommitted tails), keeping the newest hypothesis's timestamps; ``n = 1`` commits
every hypothesis whole. It is a :class:`~asr_lab.policies.redecoding.CommitRule` and runs on
:class:`~asr_lab.policies.redecoding.RedecodingProcessor`'s fixed schedule (its buffer is cut
at segment ends whether or not they were committed); with ``n = 2`` and no cut it commits
exactly what the reference commits (a test checks it). ``policy="local-agreement"`` with
``agreement_n=2`` runs the reference itself.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np

from asr_lab.core.audio import as_chunk
from asr_lab.core.protocols import SAMPLE_RATE, ASRBase, checked_ts_words

__all__ = ["HypothesisBuffer", "LocalAgreementN", "OnlineASRProcessor", "SerializedASR", "split_sentences"]

Word = Tuple[float, float, str]

MAX_WORDS_PER_SEC = 5.0
"""Guarded finish: the most words a second of audio can hold (fast read speech is ~3.5 words/s)."""
REPEAT_NGRAM = 4
REPEAT_SHARE = 0.5
"""Guarded finish: a pending sentence is a repeat when at least this share of its words lie in
runs of ``REPEAT_NGRAM`` words that were already committed (a lone common phrase is not)."""
REPEAT_CONTEXT_WORDS = 200
"""Guarded finish: how many of the last committed words are searched for repeats."""

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

    ``ghost_filter``, ``guarded_finish`` and ``max_buffer_sec`` (seconds, ``None`` = no
    cap) are the named fixes of the module docstring, all off by default. ``fix_stats``
    counts what they did over the processor's life (words dropped, cap cuts, seconds dropped).
    """

    sampling_rate = SAMPLE_RATE

    def __init__(
        self,
        asr: ASRBase,
        buffer_trimming: Tuple[str, float] = ("segment", 15),
        min_chunk_sec: float = 1.0,
        tokenizer: Optional[SentenceSplitter] = None,
        *,
        ghost_filter: bool = False,
        guarded_finish: bool = False,
        max_buffer_sec: Optional[float] = None,
    ) -> None:
        mode, seconds = _check_trimming(buffer_trimming)
        if max_buffer_sec is not None and not (
            isinstance(max_buffer_sec, (int, float)) and not isinstance(max_buffer_sec, bool) and max_buffer_sec >= seconds
        ):
            raise ValueError(
                f"max_buffer_sec={max_buffer_sec!r} must be None (no cap) or a number of seconds at least "
                f"buffer_trimming's {seconds} (the cap only acts when trimming cannot), e.g. 30"
            )
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
        self.ghost_filter = bool(ghost_filter)
        self.guarded_finish = bool(guarded_finish)
        self.max_buffer_sec = None if max_buffer_sec is None else float(max_buffer_sec)
        self.fix_stats = {"ghost_words": 0, "finish_words_dropped": 0, "cap_cuts": 0, "cap_dropped_sec": 0.0, "cap_dropped_words": 0}
        """What the fixes did over this processor's life (all streams): words dropped, cap cuts, seconds cut."""
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
        words = checked_ts_words(self.asr, result)
        if self.ghost_filter:
            words = self._drop_ghosts(words)
        self.transcript_buffer.insert(words, self.buffer_time_offset)
        new = self.transcript_buffer.flush()
        self.committed.extend(new)
        self._last_words = new

        if new and self.buffer_trimming_way == "sentence" and self._buffer_sec() > self.buffer_trimming_sec:
            self._trim_at_sentence()
        limit = self.buffer_trimming_sec if self.buffer_trimming_way == "segment" else SENTENCE_MODE_MAX_BUFFER_SEC
        if self._buffer_sec() > limit:
            self._trim_at_segment(result)
        if self.max_buffer_sec is not None and self._buffer_sec() > self.max_buffer_sec:
            self._cap_buffer()
        return self._join(new)

    def finish(self) -> Optional[Tuple[float, float, str]]:
        """End of stream: return the unconfirmed words and move the offset past the buffer."""
        self._last_words = list(self.transcript_buffer.unconfirmed())
        if self.guarded_finish:
            self._last_words = self._guard_tail(self._last_words)
        pending = self._join(self._last_words)
        self.buffer_time_offset += self._buffer_sec()
        return pending

    def settle_until(self, time: float) -> None:
        """Treat the audio before absolute ``time`` as already committed: its words are never committed.

        VAC puts the previous utterance's audio in front of the next one so that Whisper
        hears the context; the words recognised there were committed before.
        """
        hb = self.transcript_buffer
        hb.last_committed_time = max(hb.last_committed_time, float(time))

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
        return OnlineASRProcessor(
            asr,
            self.buffer_trimming,
            self.min_chunk_sec,
            self.tokenizer,
            ghost_filter=self.ghost_filter,
            guarded_finish=self.guarded_finish,
            max_buffer_sec=self.max_buffer_sec,
        )

    def warmup(self, audio: np.ndarray) -> None:
        """Run the recogniser once on ``audio``, as the reference does before its clock starts.

        The first call of an engine pays one-off costs (allocation, kernel selection); a
        driver calls this before measuring. The policy's state is not touched.
        """
        self.asr.transcribe(np.asarray(audio, dtype=np.float32), init_prompt="")

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

    # -- the named fixes (off by default) -----------------------------------------
    def _drop_ghosts(self, words: Sequence[Word]) -> list[Word]:
        """Words (relative to the buffer) that have a length and begin inside the buffer."""
        length = self._buffer_sec()
        kept = [w for w in words if w[1] > w[0] and w[0] < length]
        self.fix_stats["ghost_words"] += len(words) - len(kept)
        return kept

    def _guard_tail(self, pending: Sequence[Word]) -> list[Word]:
        """The pending words finish() may commit: no ghosts, no repeated sentence, no more than the audio holds."""
        end = self.buffer_time_offset + self._buffer_sec()
        kept = [w for w in pending if w[1] > w[0] and w[0] < end]
        context = [_norm(w[2]) for w in self.committed[-REPEAT_CONTEXT_WORDS:]]
        seen = {tuple(context[i : i + REPEAT_NGRAM]) for i in range(len(context) - REPEAT_NGRAM + 1)}
        start = 0
        for i, word in enumerate(kept):
            if i == len(kept) - 1 or word[2].rstrip().endswith((".", "!", "?", "…")):
                tokens = [_norm(w[2]) for w in kept[start : i + 1]]
                covered = set()
                for j in range(len(tokens) - REPEAT_NGRAM + 1):
                    if tuple(tokens[j : j + REPEAT_NGRAM]) in seen:
                        covered.update(range(j, j + REPEAT_NGRAM))
                if tokens and len(covered) >= REPEAT_SHARE * len(tokens):
                    kept = kept[:start]
                    break
                start = i + 1
        since = self.transcript_buffer.last_committed_time
        capacity = int(max(0.0, end - since) * MAX_WORDS_PER_SEC) + 1
        kept = kept[:capacity]
        self.fix_stats["finish_words_dropped"] += len(pending) - len(kept)
        return kept

    def _cap_buffer(self) -> None:
        """Bring the buffer under ``max_buffer_sec``: cut after the committed words, else drop the oldest audio."""
        self.fix_stats["cap_cuts"] += 1
        if self.committed and self.committed[-1][1] > self.buffer_time_offset:
            self.chunk_at(self.committed[-1][1])
        if self._buffer_sec() <= self.max_buffer_sec:
            return
        cut = self.buffer_time_offset + self._buffer_sec() - self.buffer_trimming_sec
        hb = self.transcript_buffer
        lost = [w for w in hb.previous if w[0] < cut]
        hb.previous = [w for w in hb.previous if w[0] >= cut]
        hb.last_committed_time = max(hb.last_committed_time, cut)
        self.fix_stats["cap_dropped_words"] += len(lost)
        self.fix_stats["cap_dropped_sec"] += cut - self.buffer_time_offset
        self.chunk_at(cut)

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


class LocalAgreementN:
    """A :class:`~asr_lab.policies.redecoding.CommitRule`: words the last ``n`` tails agree on."""

    name = "local-agreement"

    def __init__(self, n: int = 2) -> None:
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"local-agreement needs n >= 1 hypotheses to agree, not {n!r}")
        self.n = n
        self.reset()

    def reset(self) -> None:
        self.history: list[list[Word]] = []  # the previous n-1 tails, uncommitted parts only

    def decide(self, tail: list[Word], buffer_end: float) -> int:
        earlier = self.history[-(self.n - 1):] if self.n > 1 else []
        if len(earlier) < self.n - 1:
            k = 0
        else:
            k = 0
            while all(k < len(h) for h in earlier) and k < len(tail) and all(h[k][2] == tail[k][2] for h in earlier):
                k += 1
        kept = [h[k:] for h in earlier] + [list(tail[k:])]
        self.history = kept[len(kept) - (self.n - 1):] if self.n > 1 else []
        return k

    def forced(self, until: float) -> None:
        # the schedule committed everything up to `until`: forget it in the remembered tails too
        self.history = [[w for w in h if w[0] > until - 0.1] for h in self.history]


def _norm(word: str) -> str:
    return re.sub(r"[^\w']+", "", word.lower())


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
