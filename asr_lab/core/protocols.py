"""The three contracts every engine plugs in through.

Conventions shared by all of them
---------------------------------
* Audio is ``numpy.float32``, mono, 16 kHz (:data:`SAMPLE_RATE`), in [-1, 1].
  It is converted once, at the edge (:func:`asr_lab.load_audio`); engines only see arrays.
* An :class:`ASRProcessor` speaks in **absolute stream seconds**: ``init(offset)`` says
  where the stream starts, and every ``(start, end, text)`` it returns is measured from
  the start of the stream, not from its internal buffer.
* An :class:`ASRBase` speaks in seconds **relative to the start of the audio it was
  given**; the streaming policy (:class:`asr_lab.OnlineASRProcessor`) shifts them.

How a driver uses an ASRProcessor (the replay loop, written once in ``asr_lab.replay``)
-------------------------------------------------------------------------------------
1. ``processor.init(offset)`` once per stream.
2. While audio arrives: wait until at least ``chunk_sec`` of new audio exists (or the
   stream ends), ``insert_audio_chunk(all new audio)``, then ``process_iter()``.
   A non-``None`` answer is a newly *committed* segment; it will never be revised.
   If the processor also has ``partial()``, the driver may read the current
   unconfirmed text after each step.
3. At the end of the stream: ``finish()`` returns what is still pending.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Protocol, Tuple, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from asr_lab.core.config import ASRConfig

__all__ = ["SAMPLE_RATE", "Segment", "ASRProcessor", "SupportsPartial", "SupportsWords", "ASRBase", "ModelLoader",
           "checked_ts_words"]

SAMPLE_RATE = 16000
"""Samples per second of every array that crosses a contract."""

Segment = Tuple[float, float, str]
"""``(start, end, text)``: a span of the stream in seconds and what was said in it."""


@runtime_checkable
class ASRProcessor(Protocol):
    """A real-time recogniser: audio goes in chunk by chunk, committed text comes out.

    Implement it directly for a native streaming engine (the seed's "complete custom
    processor" path), or get it from :class:`asr_lab.OnlineASRProcessor` around an
    :class:`ASRBase`.
    """

    def init(self, offset: float = 0.0) -> None:
        """Forget everything and start a new stream whose first sample is at ``offset`` s."""

    def insert_audio_chunk(self, audio: np.ndarray) -> None:
        """Append ``audio`` (float32, 16 kHz, mono; may be empty) to the pending input."""

    def process_iter(self) -> Optional[Tuple[float, float, str]]:
        """Work on the pending input; return a newly committed ``(start, end, text)`` or ``None``.

        Called in a loop; each call may take as long as the engine needs. Times are
        absolute stream seconds and never go back before the end of an earlier segment.
        """

    def finish(self) -> Optional[Tuple[float, float, str]]:
        """The stream has ended: return whatever is still pending, or ``None``."""


@runtime_checkable
class SupportsPartial(Protocol):
    """Optional capability of an :class:`ASRProcessor`, detected at run time.

    ``partial()`` returns the current *unconfirmed* hypothesis ``(start, end, text)``
    (or ``None``): the grey text of a live display, and the raw material of the
    stability metrics. It may change or vanish on the next ``process_iter()``.
    """

    def partial(self) -> Optional[Tuple[float, float, str]]: ...


@runtime_checkable
class SupportsWords(Protocol):
    """Optional capability of an :class:`ASRProcessor`, detected at run time.

    ``last_words()`` returns the engine's own word timestamps ``[(start, end, word)]``
    (absolute stream seconds) of the segment the latest ``process_iter()`` or
    ``finish()`` returned; the replayer stores them with the emission so latency can be
    measured against the engine's word times, as Whisper-Streaming logs them.
    """

    def last_words(self) -> list[tuple[float, float, str]]: ...


@runtime_checkable
class ASRBase(Protocol):
    """A whole-buffer recogniser with word timestamps (the Whisper-streaming backend contract).

    :class:`asr_lab.OnlineASRProcessor` calls it repeatedly on a growing audio buffer
    and turns its answers into a stream with the LocalAgreement-2 policy.
    """

    sep: str
    """What joins two words of this engine's output (``" "``, or ``""`` for Whisper tokens)."""

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> Any:
        """Recognise ``audio`` (the whole buffer), conditioned on ``init_prompt``; any result type."""

    def ts_words(self, result: Any) -> list[tuple[float, float, str]]:
        """Words of ``result`` as ``(start, end, word)``, seconds from the start of the buffer."""

    def segments_end_ts(self, result: Any) -> list[float]:
        """End time of every segment of ``result``, seconds from the start of the buffer."""


def checked_ts_words(asr: Any, result: Any) -> list:
    """``asr.ts_words(result)``, checked against the contract: a list (or tuple) of
    ``(start, end, word)`` with numeric times and a string word. A backend that returns
    ``None`` or a malformed word fails here with a TypeError naming the backend and the
    value, instead of somewhere inside a policy's bookkeeping."""
    words = asr.ts_words(result)
    name = type(asr).__name__
    if not isinstance(words, (list, tuple)):
        raise TypeError(
            f"{name}.ts_words() returned {words!r:.60} ({type(words).__name__}), not a list of (start, end, word); "
            f"return [] when the buffer holds no words"
        )
    for i, w in enumerate(words):
        if not (isinstance(w, (list, tuple)) and len(w) == 3 and isinstance(w[2], str)
                and all(isinstance(t, (int, float, np.number)) and not isinstance(t, bool) for t in w[:2])):
            raise TypeError(f"{name}.ts_words() word {i} is {w!r:.80}; each word must be (start_sec, end_sec, text)")
    return list(words)


@runtime_checkable
class ModelLoader(Protocol):
    """Builds a ready :class:`ASRProcessor` from a configuration; registered by name.

    ``load`` returns ``(processor, metadata)``; the metadata always holds ``"separator"``
    (what joins consecutive segments of this engine's output). A loader may set the
    class attribute ``config_class`` to its :class:`~asr_lab.ASRConfig` subclass and
    ``description`` to one line shown by ``asr_lab.available_backends()``.
    """

    def load(self, config: "ASRConfig") -> tuple[ASRProcessor, dict]:
        """Create a processor for ``config``; may load model weights (slow)."""
