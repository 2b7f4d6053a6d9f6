"""The replay clocks: what "now" means while audio is streamed into a processor.

All three run the same schedule — wait until ``chunk_sec`` of new audio exists, feed it,
call ``process_iter()`` — and differ in how stream time passes:

* :class:`WallClock` — real time (× ``speed``). Computation-aware: while the engine
  computes, audio keeps arriving, so a slow engine falls behind as it would live.
* :class:`VirtualClock` — the same schedule without waiting: it jumps over the waits and
  advances by each call's measured cost (× ``speed`` × ``slowdown``). What "cost" means is
  the replay's ``compute=`` (:mod:`asr_lab.replay.compute`): CPU time by default, so that
  other programs on the machine do not move the latencies; elapsed time with
  ``compute="wall"``, which gives the wall clock's latencies on the same machine in only the
  engine's compute time. A recorded virtual run can be re-timed for another ``slowdown``
  without the engine (:func:`asr_lab.replay.retime`) while its chunk schedule holds.
* :class:`UnawareClock` — computation-unaware: fixed chunks, compute time ignored; an
  answer is stamped at the end of the audio fed (the Whisper-Streaming paper's
  "computation unaware" simulation; SimulEval's non-computation-aware latency).
"""

from __future__ import annotations

import time
from typing import Union

__all__ = ["Clock", "WallClock", "VirtualClock", "UnawareClock", "make_clock", "CLOCKS"]

CLOCKS = ("wall", "virtual", "unaware")


class Clock:
    """Stream time during a replay, in seconds."""

    name = "clock"
    aware = True

    def start(self, at: float) -> None:
        raise NotImplementedError

    def now(self) -> float:
        raise NotImplementedError

    def advance_to(self, t: float) -> float:
        """Wait (or jump) until stream time ``t``; return the time now (>= ``t``)."""
        raise NotImplementedError

    def after_call(self, compute_sec: float, fed_until: float) -> float:
        """A call to the engine took ``compute_sec``; return the stream time it returned at."""
        raise NotImplementedError


class WallClock(Clock):
    """Real time since :meth:`start`, times ``speed`` (2.0 plays the audio twice as fast)."""

    name = "wall"

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self._t0 = time.perf_counter()
        self._at = 0.0

    def start(self, at: float) -> None:
        self._t0, self._at = time.perf_counter(), at

    def now(self) -> float:
        return self._at + (time.perf_counter() - self._t0) * self.speed

    def advance_to(self, t: float) -> float:
        while (now := self.now()) < t:
            time.sleep((t - now) / self.speed)
        return now

    def after_call(self, compute_sec: float, fed_until: float) -> float:
        return self.now()


class VirtualClock(Clock):
    """Jumps over waits; advances by measured compute × ``speed`` × ``slowdown``.

    ``slowdown`` emulates slower hardware: 2.0 counts every call as twice as long.
    """

    name = "virtual"

    def __init__(self, speed: float = 1.0, slowdown: float = 1.0) -> None:
        self.speed, self.slowdown = speed, slowdown
        self._t = 0.0

    def start(self, at: float) -> None:
        self._t = at

    def now(self) -> float:
        return self._t

    def advance_to(self, t: float) -> float:
        self._t = max(self._t, t)
        return self._t

    def after_call(self, compute_sec: float, fed_until: float) -> float:
        self._t += compute_sec * self.speed * self.slowdown
        return self._t


class UnawareClock(VirtualClock):
    """Computation-unaware: time is the audio fed; answers are stamped at the end of it."""

    name = "unaware"
    aware = False

    def __init__(self) -> None:
        super().__init__()

    def after_call(self, compute_sec: float, fed_until: float) -> float:
        self._t = max(self._t, fed_until)
        return fed_until


def make_clock(clock: Union[str, Clock], *, speed: float = 1.0, slowdown: float = 1.0) -> Clock:
    """A clock by name (``"wall"``, ``"virtual"``, ``"unaware"``), or ``clock`` itself."""
    if isinstance(clock, Clock):
        return clock
    if not (isinstance(speed, (int, float)) and speed > 0):
        raise ValueError(f"speed={speed!r} must be a positive number (1.0 = real time, 2.0 = twice as fast)")
    if not (isinstance(slowdown, (int, float)) and slowdown > 0):
        raise ValueError(f"slowdown={slowdown!r} must be a positive number (1.0 = as measured, 2.0 = half as fast hardware)")
    if clock == "wall":
        if slowdown != 1.0:
            raise ValueError("slowdown applies to clock='virtual' only; on the wall clock use speed")
        return WallClock(speed)
    if clock == "virtual":
        return VirtualClock(speed, slowdown)
    if clock == "unaware":
        return UnawareClock()
    raise ValueError(f"clock={clock!r} is not one of {', '.join(map(repr, CLOCKS))}")
