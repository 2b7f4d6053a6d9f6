"""AlignAtt: decode incrementally and stop where the decoder's attention reaches the end of the audio.

Papi, Turchi & Negri (2023), "AlignAtt: Using Attention-based Audio-Translation Alignments
as a Guide for Simultaneous Speech Translation"; applied to Whisper by Simul-Whisper
(Wang et al. 2024) and SimulStreaming (Macháček & Polák 2025, IWSLT 2025). At every step:

1. encode the audio buffer; the decoder is prompted with the committed text that has
   left the buffer (context) and forced through the committed tokens still inside it;
2. decode new tokens greedily, one at a time; for each, look at the cross-attention of
   the model's alignment heads (each row normalised over the tokens decoded so far,
   median-filtered over 7 frames, averaged over the heads, as SimulStreaming does):
   the most-attended encoder frame is where the token is heard;
3. stop at the first token whose frame lies within ``frame_threshold`` frames of the
   audio's end (the model is guessing beyond what it heard), or at end-of-text; commit
   the tokens before it, subject to the ``last_word`` rule;
4. keep the buffer within ``max_buffer_sec`` (``cut``); the words cut off become context.

The options, each asr_lab's default first and SimulStreaming's (``simulstreaming_whisper.py``)
second, which :data:`SIMULSTREAMING` collects (``reference_mode`` in the configs):

``last_word``
    what happens to the last decoded word when decoding stopped at the threshold:
    ``"hold"`` keeps it only when the stopping token starts a new word; ``"punctuation"``
    also when the word ends in punctuation (``, . ? ! ; :``: the word is over);
    ``"commit"`` commits every token, partial words included (SimulStreaming without
    its end-of-word model); ``"drop"`` drops the last word always (its ``--never_fire``).
``cut``
    ``"after"``: after decoding, once the buffer is longer than ``max_buffer_sec``, cut it
    at a committed word's end; ``"before"``: the same, before decoding; ``"chunk"``:
    before decoding, drop whole inserted chunks (one per step) while the buffer is longer,
    each taking the oldest step's committed tokens into the context (SimulStreaming).
    Whatever the rule, asr_lab never decodes more audio than the encoder hears
    (:data:`ENCODER_SEC`): a longer buffer is cut at a word end first (``"chunk"``, being
    the reference, keeps its behaviour).
``final_frame_threshold``
    at ``finish()`` no more audio will come: ``None`` decodes to end-of-text and commits
    everything; SimulStreaming stops at 4 frames from the end, which drops a last word
    spoken right up to the end.
``rewind_threshold``
    ``None``; SimulStreaming (200 frames) drops a step's new tokens when one attends more
    than this many frames before the previous token.
``timestamps``
    ``"clean"``: a word starts at its first token's frame and ends where the next token
    attends (at least one frame after its own last token); words are then laid out in
    spoken order inside [end of the previous emission, end of the audio], each of
    positive length, none overlapping another (a word that cannot fit waits for more
    audio). ``"reference"``: SimulStreaming's: a word spans its first to its last token's
    frame; an emission starts 1 ms after the previous one ended at the earliest and ends
    at its words' latest end (the stream's end at ``finish()``).
``context_trim``
    ``"tokens"``: the decoder keeps the last tokens of the context (openai-whisper's
    prompt half); ``"words"``: the context is text, re-tokenised each step and cut word
    by word from the front while it exceeds the decoder's window less 20 tokens
    (SimulStreaming's TokenBuffer).

The engine-side differences (alignment heads, suppressed tokens, the epsilon of the
attention z-score, beam search) are the decoder's: see
:meth:`asr_lab.backends.openai_whisper.OpenAIWhisperDecoder.configure`.

The engine is any :class:`TokenDecoder`: it encodes audio and yields tokens one by one
with their most-attended frame, and never learns why decoding stops. Not replayable
from recordings: what the decoder is asked depends on what was committed.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Literal, Optional, Protocol, Sequence, Tuple

import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE

__all__ = ["ENCODER_SEC", "SIMULSTREAMING", "AlignAttProcessor", "DecodingSession", "TokenDecoder", "TokenStep"]

Word = Tuple[float, float, str]

ENCODER_SEC = 30.0
"""Whisper's encoder hears at most 30 s; audio beyond it is cut off before the encoder and never heard."""

SIMULSTREAMING = {
    "frame_threshold": 25,
    "final_frame_threshold": 4,
    "max_buffer_sec": 30.0,
    "max_new_tokens": None,
    "last_word": "commit",
    "cut": "chunk",
    "rewind_threshold": 200,
    "timestamps": "reference",
    "context_trim": "words",
}
"""The processor options under which it behaves as SimulStreaming's ``simulstreaming_whisper.py`` (its defaults:
``--frame_threshold 25 --audio_max_len 30 --audio_min_len 0``, no CIF model, no ``--never_fire``, greedy)."""

_PUNCTUATION_ENDS = tuple(",.?!;:")
_MIN_WORD_SEC = 0.02  # one encoder frame


@dataclass(frozen=True)
class TokenStep:
    """One decoded token: its id and text, its most-attended encoder frame, and whether it ends the text."""

    token: int
    text: str
    frame: int
    eot: bool = False

    @property
    def starts_word(self) -> bool:
        return self.text[:1].isspace()

    @classmethod
    def of(cls, token: int, tokenizer: Any, frame: int) -> "TokenStep":
        """The step for ``token`` as ``tokenizer`` spells it (end-of-text has no text)."""
        if token == tokenizer.eot:
            return cls(token, "", frame, eot=True)
        return cls(token, tokenizer.decode([token]), frame)


class DecodingSession(Protocol):
    """One incremental decoding of one audio buffer."""

    n_frames: int
    """Encoder frames that hold audio (the rest is padding)."""

    def next(self) -> TokenStep:
        """Decode one more token (greedy) and say where it attends."""


class TokenDecoder(Protocol):
    """An engine the lab can step token by token with cross-attention (see openai-whisper's backend).

    Optional: ``encode(text) -> tokens`` (for ``context_trim="words"``), ``n_text_ctx`` and
    ``n_sot_tokens`` (its window and start-of-transcript length).
    """

    sep: str
    frames_per_sec: float

    def begin(self, audio: np.ndarray, *, context: Sequence[int], forced: Sequence[int]) -> DecodingSession:
        """Encode ``audio``; prompt with ``context`` tokens and force ``forced`` tokens before decoding."""

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens``."""


@dataclass
class _Committed:
    start: float
    end: float
    text: str
    tokens: list


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")
    return value


class AlignAttProcessor:
    """An :class:`~asr_lab.ASRProcessor` running AlignAtt over a :class:`TokenDecoder` (options: module docstring)."""

    sampling_rate = SAMPLE_RATE

    def __init__(
        self,
        decoder: TokenDecoder,
        *,
        frame_threshold: int = 25,
        final_frame_threshold: Optional[int] = None,
        max_buffer_sec: float = 30.0,
        min_chunk_sec: float = 1.0,
        max_new_tokens: Optional[int] = 128,
        last_word: Literal["hold", "punctuation", "commit", "drop"] = "hold",
        cut: Literal["after", "before", "chunk"] = "after",
        rewind_threshold: Optional[int] = None,
        timestamps: Literal["clean", "reference"] = "clean",
        context_trim: Literal["tokens", "words"] = "tokens",
    ) -> None:
        for method in ("begin", "detokenize"):
            if not callable(getattr(decoder, method, None)):
                raise TypeError(
                    f"{type(decoder).__name__} cannot run AlignAtt: it has no {method}(); it needs a decoder stepped "
                    f"token by token with cross-attention (backend 'openai-whisper')"
                )
        for name, value in (("frame_threshold", frame_threshold), ("final_frame_threshold", final_frame_threshold),
                            ("rewind_threshold", rewind_threshold)):
            if value is not None and not (isinstance(value, int) and value >= 0):
                raise ValueError(f"{name}={value!r} must be a whole number of frames >= 0, e.g. 25")
        if frame_threshold is None:
            raise ValueError("frame_threshold=None: give a whole number of frames >= 0, e.g. 25")
        if not (0 < max_buffer_sec <= ENCODER_SEC):
            raise ValueError(f"max_buffer_sec={max_buffer_sec!r} must be in (0, {ENCODER_SEC:g}]: Whisper hears at most 30 s")
        self.decoder = decoder
        self.sep = decoder.sep
        self.frame_threshold = frame_threshold
        self.final_frame_threshold = final_frame_threshold
        self.max_buffer_sec = float(max_buffer_sec)
        self.min_chunk_sec = float(min_chunk_sec)
        self.max_new_tokens = None if max_new_tokens is None else int(max_new_tokens)
        self.last_word = _choice("last_word", last_word, ("hold", "punctuation", "commit", "drop"))
        self.cut = _choice("cut", cut, ("after", "before", "chunk"))
        self.rewind_threshold = rewind_threshold
        self.timestamps = _choice("timestamps", timestamps, ("clean", "reference"))
        self.context_trim = _choice("context_trim", context_trim, ("tokens", "words"))
        if self.context_trim == "words" and not callable(getattr(decoder, "encode", None)):
            raise ValueError(f"context_trim='words' needs a decoder with encode(text); {type(decoder).__name__} has none")
        self.init()

    def init(self, offset: float = 0.0) -> None:
        self.audio_buffer = np.array([], dtype=np.float32)
        self.buffer_time_offset = float(offset or 0.0)
        self.context: list[int] = []  # committed tokens before the buffer
        self.in_buffer: list[_Committed] = []  # committed words still inside the buffer
        self.committed: list[Word] = []
        self._last_words: list[Word] = []
        self._fed_until = self.buffer_time_offset  # stream time of the end of the audio received
        self._last_end = self.buffer_time_offset  # where the last emission ended
        self._last_ts = -1.0  # SimulStreaming's emission clamp
        self._chunks: list[int] = []  # cut="chunk": samples of each step's new audio still in the buffer
        self._step_words: list[int] = []  # cut="chunk": committed words per step still in the buffer
        self._unchunked = 0
        self._last_attend = -(self.rewind_threshold or 0)
        self.decoded_tokens = 0  # tokens decoded (including rejected ones), for compute figures
        self.calls = 0
        self.decoded_sec: list[float] = []  # audio length of each decoding, to show it never exceeds the encoder's

    def insert_audio_chunk(self, audio: np.ndarray) -> None:
        audio = np.asarray(audio, dtype=np.float32)
        self.audio_buffer = np.append(self.audio_buffer, audio)
        self._unchunked += len(audio)
        self._fed_until += len(audio) / SAMPLE_RATE

    def process_iter(self) -> Optional[Tuple[float, float, str]]:
        return self._step(final=False)

    def finish(self) -> Optional[Tuple[float, float, str]]:
        out = self._step(final=True)
        self.buffer_time_offset += len(self.audio_buffer) / SAMPLE_RATE
        self.audio_buffer = np.array([], dtype=np.float32)
        self.in_buffer, self._chunks, self._step_words, self.context = [], [], [], []
        self._last_attend = -(self.rewind_threshold or 0)
        return out

    def last_words(self) -> list[Word]:
        return list(self._last_words)

    # -- the policy ---------------------------------------------------------------------
    def _step(self, final: bool) -> Optional[Tuple[float, float, str]]:
        self._last_words = []
        if self._unchunked:
            self._chunks.append(self._unchunked)
            self._unchunked = 0
        if self.cut == "chunk":
            self._drop_chunks()
        else:
            if self.cut == "before" and len(self.audio_buffer) / SAMPLE_RATE > self.max_buffer_sec:
                self._trim(self.max_buffer_sec)
            if len(self.audio_buffer) / SAMPLE_RATE > ENCODER_SEC:
                self._trim(ENCODER_SEC)
        if len(self.audio_buffer) == 0:
            return None
        forced = [t for w in self.in_buffer for t in w.tokens]
        if self.context_trim == "words":
            self._trim_context_words(len(forced))
        session = self.decoder.begin(self.audio_buffer, context=list(self.context), forced=forced)
        self.calls += 1
        self.decoded_sec.append(len(self.audio_buffer) / SAMPLE_RATE)
        threshold = self.final_frame_threshold if final else self.frame_threshold
        taken: list[TokenStep] = []
        stopped_on: Optional[TokenStep] = None  # the token within the threshold, not taken
        eot = False
        limit = self.max_new_tokens if self.max_new_tokens is not None else 10**6
        for _ in range(limit):
            step = session.next()
            self.decoded_tokens += 1
            if step.eot:
                eot = True
                break
            if self.rewind_threshold is not None and not final:
                if self._last_attend - step.frame > self.rewind_threshold:
                    if taken or forced:  # SimulStreaming lets attention jump back after special tokens only
                        self._last_attend = -self.rewind_threshold
                        taken = []
                        stopped_on = None
                        break
                self._last_attend = step.frame
            if threshold is not None and session.n_frames - step.frame <= threshold:
                stopped_on = step
                break
            taken.append(step)
        groups = self._groups(taken)
        if groups and not final and not self._last_word_complete(groups[-1], eot, stopped_on):
            groups.pop()
        words = self._timed(groups, session.n_frames, stopped_on, final)
        self.in_buffer.extend(words)
        self._step_words.append(len(words))
        new = [(w.start, max(w.end, w.start), w.text) for w in words]  # reference times can run backwards within a word
        self.committed.extend(new)
        self._last_words = new
        if self.cut == "after" and not final and len(self.audio_buffer) / SAMPLE_RATE > self.max_buffer_sec:
            self._trim(self.max_buffer_sec)
        return self._emission(words, final)

    def _last_word_complete(self, group: list[TokenStep], eot: bool, stopped_on: Optional[TokenStep]) -> bool:
        if self.last_word == "commit":
            return True
        if self.last_word == "drop":
            return False
        if eot or (stopped_on is not None and stopped_on.starts_word):
            return True
        if stopped_on is None:  # the token budget ran out mid-text
            return False
        return self.last_word == "punctuation" and group[-1].text.rstrip().endswith(_PUNCTUATION_ENDS)

    def _groups(self, steps: list[TokenStep]) -> list[list[TokenStep]]:
        """Tokens grouped into words: at a leading space (and, with reference timestamps, at punctuation, as SimulStreaming splits)."""
        split_punct = self.timestamps == "reference"
        groups: list[list[TokenStep]] = []
        for step in steps:
            punct = split_punct and step.text.strip() != "" and all(c in string.punctuation for c in step.text.strip())
            if step.starts_word or punct or not groups:
                groups.append([step])
            else:
                groups[-1].append(step)
        return groups

    def _timed(self, groups: list[list[TokenStep]], n_frames: int, stopped_on: Optional[TokenStep], final: bool) -> list[_Committed]:
        fps = self.decoder.frames_per_sec
        off = self.buffer_time_offset
        words = []
        for k, g in enumerate(groups):
            tokens = [s.token for s in g]
            text = self.decoder.detokenize(tokens)
            if self.timestamps == "reference":
                step = 1.0 / fps  # SimulStreaming: frame * 0.02 + offset
                words.append(_Committed(g[0].frame * step + off, g[-1].frame * step + off, text, tokens))
                continue
            last = max(s.frame for s in g) + 1
            nxt = groups[k + 1][0] if k + 1 < len(groups) else stopped_on
            following = nxt.frame if nxt is not None else last
            end_frame = min(max(last, following), n_frames)
            words.append(_Committed(off + g[0].frame / fps, off + end_frame / fps, text, tokens))
        if self.timestamps == "clean":
            words = self._laid_out(words, final)
        return words

    def _laid_out(self, words: list[_Committed], final: bool) -> list[_Committed]:
        """Word times in spoken order inside [end of the last emission, end of the audio], each of positive length.

        Forward, each word starts at the earliest where the one before ended and lasts at
        least ``_MIN_WORD_SEC``; backward, the words are pulled inside the audio's end.
        When the room is too small for every word at that length the length shrinks;
        with no room at all, the words wait for more audio (at ``finish()``, they end
        where the last emission did).
        """
        if not words:
            return words
        low, high = self._last_end, self._fed_until
        n = len(words)
        if high - low <= 1e-9:
            if not final:
                return []
            for w in words:
                w.start = w.end = low
            return words
        minimum = min(_MIN_WORD_SEC, (high - low) / n)
        cursor = low
        for w in words:
            w.start = min(max(w.start, cursor), high)
            w.end = max(w.end, w.start + minimum)
            cursor = w.end
        limit = high
        for w in reversed(words):
            w.end = min(w.end, limit)
            w.start = min(w.start, w.end - minimum)
            limit = w.start
        return words

    def _emission(self, words: list[_Committed], final: bool) -> Optional[Tuple[float, float, str]]:
        if not words:
            return None
        text = self.sep.join(w.text for w in words)
        if self.timestamps == "reference":
            start = max(min(w.start for w in words), self._last_ts + 0.001)
            end = self._fed_until if final else max(w.end for w in words)
            end = max(end, start + 0.001)
            self._last_ts = end
        else:
            start, end = words[0].start, words[-1].end
        self._last_end = max(self._last_end, end)
        return (start, end, text)

    # -- the buffer ---------------------------------------------------------------------
    def _trim(self, limit: float) -> None:
        """Cut the buffer to at most ``limit`` seconds at a committed word's end; earlier words become context."""
        buffer_end = self.buffer_time_offset + len(self.audio_buffer) / SAMPLE_RATE
        must = buffer_end - limit
        ends = [w.end for w in self.in_buffer if w.end >= must]
        cut = min(ends) if ends else must
        if cut > buffer_end:
            cut = must
        while self.in_buffer and self.in_buffer[0].end <= cut:
            self.context.extend(self.in_buffer.pop(0).tokens)
        self.audio_buffer = self.audio_buffer[int((cut - self.buffer_time_offset) * SAMPLE_RATE):]
        self.buffer_time_offset = cut

    def _drop_chunks(self) -> None:
        """SimulStreaming's cut: drop the oldest step's audio while the buffer is too long (keeping one step's)."""
        total = sum(self._chunks)
        removed = 0
        while len(self._chunks) > 1 and total / SAMPLE_RATE > self.max_buffer_sec:
            removed = self._chunks.pop(0)
            total -= removed
            self.audio_buffer = self.audio_buffer[removed:]
            self._last_attend -= int(self.decoder.frames_per_sec * removed / SAMPLE_RATE)
            if self._step_words:
                for _ in range(self._step_words.pop(0)):
                    self.context.extend(self.in_buffer.pop(0).tokens)
        # SimulStreaming advances its time offset by the last chunk dropped only (one per step in practice)
        self.buffer_time_offset += removed / SAMPLE_RATE

    def _trim_context_words(self, n_forced: int) -> None:
        """SimulStreaming's context: its text re-tokenised, cut a word at a time from the front while too long."""
        if not self.context:
            return
        window = int(getattr(self.decoder, "n_text_ctx", 448))
        sot = int(getattr(self.decoder, "n_sot_tokens", 2))
        tokens = list(self.decoder.encode(self.decoder.detokenize(self.context)))
        while len(tokens) > window or sot + n_forced + len(tokens) > window - 20:
            steps = [TokenStep(t, self.decoder.detokenize([t]), 0) for t in tokens]
            words = self._groups_simul(steps)
            if not words:
                break
            tokens = [s.token for g in words[1:] for s in g]
            tokens = list(self.decoder.encode(self.decoder.detokenize(tokens))) if tokens else []
        self.context = tokens

    @staticmethod
    def _groups_simul(steps: list[TokenStep]) -> list[list[TokenStep]]:
        groups: list[list[TokenStep]] = []
        for step in steps:
            punct = step.text.strip() != "" and all(c in string.punctuation for c in step.text.strip())
            if step.starts_word or punct or not groups:
                groups.append([step])
            else:
                groups[-1].append(step)
        return groups
