"""Compute accounting: how long an engine call "took", for the virtual clock.

The virtual clock advances by each call's cost, so the cost measure decides whether
latencies reproduce. Three measures, all taken around every call (each is one
``clock_gettime``, about a microsecond):

* ``"wall"`` — elapsed time (``time.perf_counter``). Counts everything the call waited
  for: a GPU, the network, a sleep — and other programs holding the cores. On a busy
  machine the latencies grow with the neighbours' load.
* ``"thread"`` — CPU time of the thread that calls the engine (``time.thread_time``, taken
  on the replay's call thread, :mod:`asr_lab.replay.deadline`). Exact for engines
  that do their work in the caller's thread (pocketsphinx, the scripted stand-ins, torch
  with one thread); blind to work done in other threads (CTranslate2 runs every call in its
  own worker threads, so the caller's thread only waits).
* ``"process"`` — CPU time of the whole process (``time.process_time``): every thread's
  work, so it covers engines with their own thread pools (CTranslate2/faster-whisper,
  torch with several threads, mlx). Caveats: it also counts unrelated threads of the same
  process that were busy during the call (run such engines in a worker process:
  ``compare(..., workers=N)``), and an engine computing on k threads at once is charged
  the *sum* of their CPU time (≈ k × its wall time on idle cores, more if its threads
  spin while waiting) — the cost of the work done on one core.

``"cpu"`` picks per run: ``"thread"`` when the engine works in the calling thread,
``"process"`` when it does not. The choice comes from a ``compute_scope`` attribute on the
processor (or its ``asr``) when one is declared, else from the warm-up: if the process spent
clearly more CPU than the calling thread (:data:`OTHER_THREADS_SHARE`), work ran elsewhere.
Without a warm-up the choice made for the same processor object earlier is reused, else
``"process"`` (the safe superset). A warm-up does not always show helper threads (torch's
OpenMP pool burned 60–85 % more than the calling thread in later calls, not in the warm-up), so
a ``"thread"`` choice is checked at every step too: the first step whose process CPU exceeds
the thread's by the same rule is charged process CPU, and so is every later one
(``meta["compute"]`` becomes ``"process"``, ``meta["compute_switched_at_step"]`` says where;
:func:`upgrade_scope`).

No CPU measure counts time spent waiting for a GPU, a server or a sleep. So under ``"cpu"``
a warm-up whose process CPU time is below :data:`WAITING_SHARE` of the time it could have
computed means an engine that waits: elapsed time minus the time its threads sat runnable in
the scheduler's queue (Linux ``/proc/self/task/*/schedstat``, :func:`runqueue_wait`), or, where
the kernel does not say, elapsed × min(1, cores / load). Then the run is charged
elapsed time (``meta["compute"] == "wall"``, the reason in ``meta["compute_chosen_by"]``;
:func:`waits`). Without a warm-up there is nothing to detect it from (``replay`` then warns
when a run's CPU time is a small share of its wall time). CPU time is immune to time-sharing
with other programs, not to sharing a physical core (SMT siblings, caches, memory bandwidth):
expect a few percent of drift there — or, for numbers that reproduce exactly, ``"profile"``:
a fitted model of each call's cost on a named machine (:mod:`asr_lab.replay.profile`).
"""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional

__all__ = ["COMPUTE", "CallCost", "Meter", "resolve_compute", "detect_scope", "upgrade_scope", "waits",
           "OTHER_THREADS_SHARE", "WAITING_SHARE", "runqueue_wait", "queued_between"]

COMPUTE = ("wall", "cpu", "thread", "process", "profile")
"""Accepted values of ``compute=``."""

OTHER_THREADS_SHARE = 0.2
"""Warm-up test: the engine works in other threads when process CPU − thread CPU exceeds
this share of the thread's CPU (plus 5 ms); single-threaded engines stay well below it."""

WAITING_SHARE = 0.25
"""Warm-up test: an engine waits (GPU, server, sleep) when its process CPU time is below this share of
the CPU time the load leaves it; a CPU-bound engine stays near 1, a sleeping one near 0."""

_SCOPES: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class CallCost:
    """What one engine call cost, by every measure: seconds of wall, calling-thread CPU and process CPU."""

    wall: float
    thread: float
    process: float

    def get(self, scope: str) -> float:
        return {"wall": self.wall, "thread": self.thread, "process": self.process}[scope]

    def plus(self, charged: float) -> "CallCost":
        """This cost with ``charged`` seconds added to every measure: compute recorded earlier and
        replayed instead of spent (``asr_lab.policies.record_replay``), which has one figure only."""
        if not charged:
            return self
        return CallCost(self.wall + charged, self.thread + charged, self.process + charged)


class Meter:
    """Measures a call: ``m = Meter(); ...call...; cost = m.stop()``.

    ``thread_clock``: the CPU clock of the thread that runs the engine's calls (default:
    this thread's, ``time.thread_time``; the replay loop passes the clock of its call
    worker, see :mod:`asr_lab.replay.deadline`).
    """

    __slots__ = ("_w", "_t", "_p", "_clock")

    def __init__(self, thread_clock: Callable[[], float] = time.thread_time) -> None:
        self._clock = thread_clock
        self._w, self._t, self._p = time.perf_counter(), thread_clock(), time.process_time()

    def stop(self) -> CallCost:
        w, t, p = time.perf_counter(), self._clock(), time.process_time()
        return CallCost(w - self._w, t - self._t, p - self._p)


def validate_compute(compute: Optional[str], clock_name: str) -> str:
    """The accounting a replay on ``clock_name`` uses: ``compute`` checked, ``None`` → the default.

    Default: ``"cpu"`` on the virtual clock (latencies that reproduce on a busy machine),
    ``"wall"`` on the wall clock (real time is the point there). The unaware clock ignores
    compute for stream time and records ``"cpu"`` costs.
    """
    if compute is None:
        return "wall" if clock_name == "wall" else "cpu"
    if compute not in COMPUTE:
        raise ValueError(
            f"compute={compute!r} is not one of {', '.join(map(repr, COMPUTE))}; use 'cpu' for latencies that "
            f"reproduce on a busy machine, 'wall' for engines that wait on a GPU or a server, 'profile' (with "
            f"profile=PATH) for latencies computed from a machine's cost profile"
        )
    if clock_name == "wall" and compute != "wall":
        raise ValueError(
            f"compute={compute!r} needs clock='virtual': on the wall clock stream time is real time, so the "
            f"call's elapsed time is what counts; use clock='virtual' with compute={compute!r}, or compute='wall'"
        )
    return compute


def declared_scope(processor: Any) -> Optional[str]:
    """``"thread"``/``"process"`` when the processor (or its ``asr``) declares ``compute_scope``."""
    for obj in (processor, getattr(processor, "asr", None)):
        scope = getattr(obj, "compute_scope", None)
        if scope in ("thread", "process"):
            return scope
    return None


def detect_scope(cost: CallCost) -> str:
    """``"process"`` if a measured call (the warm-up) spent CPU outside the calling thread, else ``"thread"``."""
    elsewhere = cost.process - cost.thread
    return "process" if elsewhere > OTHER_THREADS_SHARE * cost.thread + 0.005 else "thread"


def runqueue_wait() -> Optional[dict]:
    """Seconds each thread of this process has spent runnable but not running (waiting for a core),
    by thread id (Linux schedstat, field 2); ``None`` where the kernel does not report it.
    :func:`queued_between` turns two readings into the wait in between."""
    waits: dict = {}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                waits[tid] = int(f.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):  # a thread that just ended
            continue
    return waits or None


def queued_between(before: Optional[dict], after: Optional[dict]) -> Optional[float]:
    """Run-queue wait of this process's threads between two :func:`runqueue_wait` readings (threads
    started in between count from their start; threads that ended in between are not seen)."""
    if before is None or after is None:
        return None
    return sum(max(0.0, v - before.get(tid, 0.0)) for tid, v in after.items())


def background_cpu_rate(window: float = 0.05) -> float:
    """Process CPU seconds per second while no engine call runs (threads of other work in this
    process), measured over ``window`` seconds; the waiting test subtracts it from the warm-up."""
    w, p = time.perf_counter(), time.process_time()
    time.sleep(window)
    dw = time.perf_counter() - w
    return max(0.0, (time.process_time() - p) / dw) if dw > 0 else 0.0


def waits(cost: CallCost, cores: int, load: Optional[float], queued: Optional[float] = None,
          background: float = 0.0) -> bool:
    """Whether a measured call (the warm-up) mostly waited: process CPU below :data:`WAITING_SHARE`
    of the time it could compute — elapsed minus ``queued`` (its threads' run-queue wait, see
    :func:`runqueue_wait`), else ``elapsed × min(1, cores / load)`` — over at least 20 ms elapsed.
    ``background``: CPU seconds per second other threads of the process spend anyway
    (:func:`background_cpu_rate`), not counted as the engine's."""
    if cost.wall < 0.02:
        return False
    if queued is not None:
        could = max(0.0, cost.wall - queued)
    else:
        could = cost.wall * (min(1.0, cores / load) if load and load > 0 else 1.0)
    return max(0.0, cost.process - background * cost.wall) < WAITING_SHARE * could


def upgrade_scope(scope: str, cost: CallCost) -> str:
    """``"process"`` when a ``"thread"``-charged step shows CPU work in other threads (the
    :func:`detect_scope` rule), else ``scope``."""
    return "process" if scope == "thread" and detect_scope(cost) == "process" else scope


def resolve_compute(compute: str, processor: Any, warmup: Optional[CallCost], *, cores: int = 1,
                    load: Optional[float] = None, queued: Optional[float] = None,
                    background: float = 0.0) -> tuple[str, str]:
    """``(scope, how)``: the measure this run uses and how it was chosen (recorded in the trace).

    ``cores``/``load``/``queued``: usable cores, the load average and the warm-up's run-queue
    wait, for the waiting test (:func:`waits`).
    """
    if compute != "cpu":
        return compute, "asked"
    scope = declared_scope(processor)
    if scope is not None:
        return scope, "declared by the processor"
    if warmup is not None:
        if waits(warmup, cores, load, queued, background):
            _remember(processor, "wall")
            return "wall", (f"warm-up: process CPU {warmup.process:.3f} s of {warmup.wall:.3f} s elapsed, the engine "
                            f"waits (GPU, server, sleep): charged elapsed time")
        scope = detect_scope(warmup)
        _remember(processor, scope)
        return scope, f"warm-up: thread CPU {warmup.thread:.3f} s, process CPU {warmup.process:.3f} s"
    scope = _recall(processor)
    if scope is not None:
        return scope, "an earlier warm-up of this processor"
    return "process", "no warm-up: process CPU covers every engine"


def _remember(processor: Any, scope: str) -> None:
    try:
        _SCOPES[processor] = scope
    except TypeError:  # not weak-referenceable: nothing to remember
        pass


def _recall(processor: Any) -> Optional[str]:
    try:
        return _SCOPES.get(processor)
    except TypeError:
        return None
