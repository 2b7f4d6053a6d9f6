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
   the tokens before it. Here only whole words are committed: the last word is kept only
   when the stopping token starts a new word (SimulStreaming without its end-of-word
   model commits partial words; its ``--never_fire`` drops the last word always);
4. once the buffer is longer than ``max_buffer_sec``, cut it at a committed word's end;
   the words before the cut become context.

At the end of the stream no more audio will come, so by default (``final_frame_threshold
= None``) decoding runs to end-of-text and everything is committed (SimulStreaming stops
at 4 frames from the end there, which drops a last word spoken right up to the end).
Word times come from the attended frames: a word starts at its first token's frame and
ends where the next token attends (at least one frame after its own last token); a start
never goes back before the previous word's.

The engine is any :class:`TokenDecoder`: it encodes audio and yields tokens one by one
with their most-attended frame, and never learns why decoding stops. Greedy decoding
only. No rewind detection (SimulStreaming's guard against attention jumping back).
Not replayable from recordings: what the decoder is asked depends on what was committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence, Tuple

import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE

__all__ = ["AlignAttProcessor", "DecodingSession", "TokenDecoder", "TokenStep"]

Word = Tuple[float, float, str]


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


class DecodingSession(Protocol):
    """One incremental decoding of one audio buffer."""

    n_frames: int
    """Encoder frames that hold audio (the rest is padding)."""

    def next(self) -> TokenStep:
        """Decode one more token (greedy) and say where it attends."""


class TokenDecoder(Protocol):
    """An engine the lab can step token by token with cross-attention (see openai-whisper's backend)."""

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


class AlignAttProcessor:
    """An :class:`~asr_lab.ASRProcessor` running AlignAtt over a :class:`TokenDecoder`."""

    sampling_rate = SAMPLE_RATE

    def __init__(
        self,
        decoder: TokenDecoder,
        *,
        frame_threshold: int = 25,
        final_frame_threshold: Optional[int] = None,
        max_buffer_sec: float = 30.0,
        min_chunk_sec: float = 1.0,
        max_new_tokens: int = 128,
    ) -> None:
        for method in ("begin", "detokenize"):
            if not callable(getattr(decoder, method, None)):
                raise TypeError(
                    f"{type(decoder).__name__} cannot run AlignAtt: it has no {method}(); it needs a decoder stepped "
                    f"token by token with cross-attention (backend 'openai-whisper')"
                )
        if not (isinstance(frame_threshold, int) and frame_threshold >= 0):
            raise ValueError(f"frame_threshold={frame_threshold!r} must be a whole number of frames >= 0, e.g. 25")
        if not (0 < max_buffer_sec <= 30):
            raise ValueError(f"max_buffer_sec={max_buffer_sec!r} must be in (0, 30]: Whisper hears at most 30 s")
        self.decoder = decoder
        self.sep = decoder.sep
        self.frame_threshold = frame_threshold
        self.final_frame_threshold = final_frame_threshold
        self.max_buffer_sec = float(max_buffer_sec)
        self.min_chunk_sec = float(min_chunk_sec)
        self.max_new_tokens = int(max_new_tokens)
        self.init()

    def init(self, offset: float = 0.0) -> None:
        self.audio_buffer = np.array([], dtype=np.float32)
        self.buffer_time_offset = float(offset or 0.0)
        self.context: list[int] = []  # committed tokens before the buffer
        self.in_buffer: list[_Committed] = []  # committed words still inside the buffer
        self.committed: list[Word] = []
        self._last_words: list[Word] = []
        self._last_start = self.buffer_time_offset
        self.decoded_tokens = 0  # tokens decoded (including rejected ones), for compute figures
        self.calls = 0

    def insert_audio_chunk(self, audio: np.ndarray) -> None:
        self.audio_buffer = np.append(self.audio_buffer, np.asarray(audio, dtype=np.float32))

    def process_iter(self) -> Optional[Tuple[float, float, str]]:
        return self._step(final=False)

    def finish(self) -> Optional[Tuple[float, float, str]]:
        out = self._step(final=True)
        self.buffer_time_offset += len(self.audio_buffer) / SAMPLE_RATE
        self.audio_buffer = np.array([], dtype=np.float32)
        return out

    def last_words(self) -> list[Word]:
        return list(self._last_words)

    # -- the policy ---------------------------------------------------------------------
    def _step(self, final: bool) -> Optional[Tuple[float, float, str]]:
        self._last_words = []
        if len(self.audio_buffer) == 0:
            return None
        forced = [t for w in self.in_buffer for t in w.tokens]
        session = self.decoder.begin(self.audio_buffer, context=list(self.context), forced=forced)
        self.calls += 1
        threshold = self.final_frame_threshold if final else self.frame_threshold
        taken: list[TokenStep] = []
        word_complete = final
        next_frame = None  # where the token after the last taken one attends: the last word's end
        for _ in range(self.max_new_tokens):
            step = session.next()
            self.decoded_tokens += 1
            if step.eot:
                word_complete = True
                break
            if threshold is not None and session.n_frames - step.frame <= threshold:
                word_complete = word_complete or step.starts_word
                next_frame = step.frame
                break
            taken.append(step)
        words = self._words(taken, session.n_frames, next_frame)
        if words and not word_complete:
            words.pop()
        for w in words:  # attention can jump back: keep word times in spoken order (SimulStreaming keeps them non-decreasing)
            w.start = max(w.start, self._last_start)
            w.end = max(w.end, w.start)
            self._last_start = w.start
        self.in_buffer.extend(words)
        new = [(w.start, w.end, w.text) for w in words]
        self.committed.extend(new)
        self._last_words = new
        if not final and len(self.audio_buffer) / SAMPLE_RATE > self.max_buffer_sec:
            self._trim()
        return self._join(new)

    def _words(self, steps: list[TokenStep], n_frames: int, next_frame: Optional[int]) -> list[_Committed]:
        groups: list[list[TokenStep]] = []
        for step in steps:
            if step.starts_word or not groups:
                groups.append([step])
            else:
                groups[-1].append(step)
        fps = self.decoder.frames_per_sec
        out = []
        for k, g in enumerate(groups):
            start = self.buffer_time_offset + g[0].frame / fps
            last = max(s.frame for s in g) + 1
            following = groups[k + 1][0].frame if k + 1 < len(groups) else next_frame
            end_frame = min(max(last, following if following is not None else last), n_frames)
            end = self.buffer_time_offset + end_frame / fps
            out.append(_Committed(start, max(end, start), self.decoder.detokenize([s.token for s in g]), [s.token for s in g]))
        return out

    def _trim(self) -> None:
        """Cut the buffer to at most ``max_buffer_sec`` at a committed word's end; earlier words become context."""
        buffer_end = self.buffer_time_offset + len(self.audio_buffer) / SAMPLE_RATE
        must = buffer_end - self.max_buffer_sec
        ends = [w.end for w in self.in_buffer if w.end >= must]
        cut = min(ends) if ends else must
        if cut > buffer_end:
            cut = must
        while self.in_buffer and self.in_buffer[0].end <= cut:
            self.context.extend(self.in_buffer.pop(0).tokens)
        self.audio_buffer = self.audio_buffer[int((cut - self.buffer_time_offset) * SAMPLE_RATE):]
        self.buffer_time_offset = cut

    def _join(self, words: Sequence[Word]) -> Optional[Tuple[float, float, str]]:
        if not words:
            return None
        return (words[0][0], words[-1][1], self.sep.join(w[2] for w in words))
