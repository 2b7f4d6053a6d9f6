"""Audio that arrives in real time (a browser microphone, a WebSocket) as a replay source.

Producers — a widget's comm handler, a socket reader — call :meth:`LiveAudio.push` from
their own thread; it never blocks: when more than ``max_pending_sec`` of audio is
waiting to be processed, the new chunk is dropped and counted (``dropped_chunks``,
``dropped_sec``), never silently. With ``max_behind_sec``, a chunk is also dropped while
the engine is more than that many seconds behind real time (:meth:`behind_sec`: stream time
now minus the audio the engine has finished or that was dropped), which bounds the lag of a
slow engine in wall-clock seconds. :func:`asr_lab.replay` consumes it on the wall clock,
exactly as it replays a file.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE

__all__ = ["LiveAudio"]


class LiveAudio:
    """A bounded, thread-safe queue of float32 16 kHz mono chunks with a stream clock."""

    def __init__(self, max_pending_sec: float = 30.0, max_behind_sec: Optional[float] = None) -> None:
        if not max_pending_sec > 0:
            raise ValueError(f"max_pending_sec={max_pending_sec!r} must be positive, e.g. 30")
        if max_behind_sec is not None and not max_behind_sec > 0:
            raise ValueError(f"max_behind_sec={max_behind_sec!r} must be positive seconds, e.g. 10, or None")
        self.max_pending_sec = max_pending_sec
        self.max_behind_sec = max_behind_sec
        self._done = 0  # samples the engine has finished: all read before the latest read()
        self._chunks: list[np.ndarray] = []
        self._pending = 0  # samples pushed and not yet read
        self._received = 0  # samples accepted since the start
        self._read = 0
        self._closed = False
        self._cond = threading.Condition()
        self.first_arrival: Optional[float] = None  # perf_counter() when the first chunk arrived
        self.first_chunk_samples = 0
        self.dropped_chunks = 0
        self.dropped_samples = 0
        self.recording: Optional[list[np.ndarray]] = []  # every accepted chunk, to save the session

    @property
    def dropped_sec(self) -> float:
        return self.dropped_samples / SAMPLE_RATE

    @property
    def received_sec(self) -> float:
        return self._received / SAMPLE_RATE

    def behind_sec(self) -> float:
        """How far the engine is behind real time now: stream time minus the audio it has
        finished (everything read before the latest :meth:`read`) or that was dropped."""
        return self.stream_time_now() - (self._done + self.dropped_samples) / SAMPLE_RATE

    def stream_time_now(self) -> float:
        """Stream seconds now, if the audio arrives in real time: the first chunk ended when it
        arrived, and time has passed since. ``0.0`` before any audio."""
        if self.first_arrival is None:
            return 0.0
        return self.first_chunk_samples / SAMPLE_RATE + (time.perf_counter() - self.first_arrival)

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, chunk: np.ndarray) -> bool:
        """Offer a chunk (float32 16 kHz mono); ``False`` if it was dropped (queue full or closed)."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        with self._cond:
            behind = self.max_behind_sec is not None and self.first_arrival is not None and self.behind_sec() > self.max_behind_sec
            if self._closed or behind or (self._pending + len(chunk)) / SAMPLE_RATE > self.max_pending_sec:
                self.dropped_chunks += 1
                self.dropped_samples += len(chunk)
                return False
            if self.first_arrival is None:
                self.first_arrival = time.perf_counter()
                self.first_chunk_samples = len(chunk)
            self._chunks.append(chunk)
            if self.recording is not None:
                self.recording.append(chunk)
            self._pending += len(chunk)
            self._received += len(chunk)
            self._cond.notify_all()
            return True

    def close(self) -> None:
        """No more audio will come: the replay finishes the stream once it has read everything."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_for(self, samples: int, timeout: Optional[float] = None) -> int:
        """Block until ``samples`` have been received in total, or the source is closed.

        Returns the number of samples received so far.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._received >= samples or self._closed, timeout=timeout)
            return self._received

    def read(self) -> np.ndarray:
        """Everything received and not read yet."""
        with self._cond:
            chunks, self._chunks = self._chunks, []
            self._pending = 0
            self._done = self._read  # the caller comes back for more once it has processed the last read
        out = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        self._read += len(out)
        return out

    def recorded_audio(self) -> np.ndarray:
        """All accepted audio so far, as one array (for saving a session)."""
        with self._cond:
            parts = list(self.recording or [])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
