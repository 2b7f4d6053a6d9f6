"""A time limit on every processor call, so a hung engine ends a run instead of blocking forever.

A Python thread cannot be stopped from outside, and a hung C call (a decoder stuck in a
loop, a lock never released) does not even see signals. So :class:`CallDeadline` runs the
processor's calls, one at a time and in order, on one worker thread of its own and waits
for each answer at most ``timeout_sec``. When a call overruns, the caller gets
:class:`CallTimeoutError` at once and the worker is abandoned (it is a daemon thread: it
ends when the call finally returns, or with the process); the processor must not be used
again, since it is still inside that call.

All calls of one replay go to the same thread, so engines that keep per-thread state see
one thread. ``timeout_sec=None`` runs calls directly in the caller's thread, with no limit.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Optional

__all__ = ["CallDeadline", "CallTimeoutError", "DEFAULT_CALL_TIMEOUT_SEC", "check_timeout"]

DEFAULT_CALL_TIMEOUT_SEC = 600.0
"""Generous: a large Whisper model re-decoding a 30 s buffer on a slow CPU takes well under this."""


class CallTimeoutError(TimeoutError):
    """A processor call did not return within the time limit; the message names the call."""


def check_timeout(timeout_sec: Any, name: str = "call_timeout_sec") -> Optional[float]:
    """``timeout_sec`` as a float, or ``None`` (no limit); raises ValueError naming the value otherwise."""
    if timeout_sec is None:
        return None
    if isinstance(timeout_sec, bool) or not isinstance(timeout_sec, (int, float)) or not (0 < timeout_sec < float("inf")):
        raise ValueError(
            f"{name}={timeout_sec!r} must be a positive number of seconds (default {DEFAULT_CALL_TIMEOUT_SEC:g}), "
            f"or None for no limit"
        )
    return float(timeout_sec)


class CallDeadline:
    """Runs calls on a worker thread with a time limit each; see the module docstring.

    ``call(fn, *args, what=...)`` returns ``fn(*args)`` or raises what it raised, or
    :class:`CallTimeoutError`. ``cpu_sec`` is the CPU time the thread that ran the last call
    spent in it (``time.thread_time``). Since the call runs on the worker thread, a caller
    measuring CPU time must measure there: give ``meter``, a zero-argument callable returning
    an object with ``stop()`` (started just before the call, stopped just after, on the thread
    that runs it); ``last_cost`` is what ``stop()`` returned for the last call.
    Use as a context manager, or call :meth:`close` to end the worker.
    """

    def __init__(self, timeout_sec: Optional[float], processor: str = "processor", meter: Optional[Callable[[], Any]] = None) -> None:
        self.timeout_sec = check_timeout(timeout_sec)
        self.processor = processor
        self.meter = meter
        self.cpu_sec = 0.0
        self.last_cost: Any = None
        self._jobs: Optional[queue.SimpleQueue] = None
        self._hung = False

    def call(self, fn: Callable[..., Any], *args: Any, what: str = "call", step: Optional[int] = None) -> Any:
        if self._hung:
            raise CallTimeoutError(f"{self.processor} is still inside an earlier call that timed out; load a fresh one")
        if self.timeout_sec is None:
            box: dict = {}
            _run(fn, args, box, self.meter)
            self.cpu_sec, self.last_cost = box["cpu"], box.get("cost")
            if "error" in box:
                raise box["error"]
            return box.get("value")
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            threading.Thread(target=_work, args=(self._jobs,), name=f"asr_lab-call-{self.processor}", daemon=True).start()
        box = {}
        done = threading.Event()
        self._jobs.put((fn, args, box, done, self.meter))
        if not done.wait(self.timeout_sec):
            self._hung = True
            self._jobs = None  # the worker stays stuck in fn; a later close() must not wait for it
            at = f" at step {step}" if step is not None else ""
            raise CallTimeoutError(
                f"{self.processor}.{what}(){at} did not return within {self.timeout_sec:g} s; the run is ended and "
                f"this processor is abandoned. If the engine is just slow, raise the limit "
                f"(call_timeout_sec=..., or None for no limit)"
            )
        self.cpu_sec, self.last_cost = box.get("cpu", 0.0), box.get("cost")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None

    def __enter__(self) -> "CallDeadline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _work(jobs: queue.SimpleQueue) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        fn, args, box, done, meter = job
        try:
            _run(fn, args, box, meter)
        finally:
            done.set()
        del job, fn, args, box  # drop the processor's bound methods while waiting for the next call


def _run(fn, args, box: dict, meter) -> None:
    m = meter() if meter is not None else None
    c0 = time.thread_time()
    try:
        box["value"] = fn(*args)
    except BaseException as exc:  # handed to the caller, who decides
        box["error"] = exc
    finally:
        box["cpu"] = time.thread_time() - c0
        if m is not None:
            box["cost"] = m.stop()
