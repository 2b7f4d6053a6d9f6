"""Engine thread counts: from the cores this process may use, split between workers.

Engines with their own thread pools (CTranslate2's ``cpu_threads``, torch's intra-op pool,
OpenMP/BLAS libraries) default to a fixed count (CTranslate2: 4) whatever the machine.
More runnable threads than free cores makes every call wait for descheduled threads:
measured here, CTranslate2's 4 threads on 2 cores made single calls 10–20× slower whenever
another process held a core. So asr_lab sets them from the *usable* cores (the CPU
affinity mask and a cgroup quota, not the machine's core count) divided by the number of
worker processes running engines side by side (``compare(..., workers=N)``), and records
what it set in every trace (``meta["threads"]``).

An engine's own setting wins where the user gives one (``cpu_threads`` > 0).

Under CPU accounting (``compute="cpu"``, the default of the virtual clock) ``compare`` loads
engines with **one** thread (:func:`engine_threads_for`): an engine whose threads wait for
each other on a busy machine burns CPU time waiting, so its CPU cost stops reproducing.
Measured on the shared 2-core VM, Whisper tiny.en (CTranslate2) on 3 s of LibriVox, 3 runs
each: with 1 thread, latency p50 1.021 s (sd 0.005) as the machine was and 1.016 s (sd 0.005)
beside a busy loop per core, CPU 2.60 / 2.58 s; with 2 threads, p50 6.0 s (sd 0.8) and CPU
8.5 s (sd 1.9) as the machine was. Use ``workers=N`` to fill the cores instead.
"""

from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

__all__ = ["usable_cores", "default_engine_threads", "engine_threads", "engine_threads_for", "limit_threads",
           "thread_settings"]

WORKERS_ENV = "ASR_LAB_WORKERS"
"""Set in each worker process of ``compare(..., workers=N)`` to N: engines there share the cores N ways."""

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_given: dict[str, int] = {}
_override: list[int] = []


def usable_cores() -> int:
    """Cores this process may run on: the affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


def _cgroup_quota() -> Optional[float]:
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            limit, period = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) / int(period)


def _workers() -> int:
    try:
        return max(1, int(os.environ.get(WORKERS_ENV, "1")))
    except ValueError:
        return 1


def default_engine_threads(workers: Optional[int] = None) -> int:
    """Threads per engine so that ``workers`` engines side by side fill the usable cores, at least 1
    (1 inside :func:`engine_threads_for` with CPU accounting)."""
    if _override and workers is None:
        return _override[-1]
    return max(1, usable_cores() // (workers or _workers()))


@contextmanager
def engine_threads_for(compute: Optional[str]) -> Iterator[None]:
    """Engines loaded inside get one thread when ``compute`` is a CPU measure (see the module docstring)."""
    single = compute in ("cpu", "thread", "process", "profile")  # profiles are calibrated under "cpu"
    if single:
        _override.append(1)
    try:
        yield
    finally:
        if single:
            _override.pop()


def engine_threads(requested: int = 0, engine: str = "engine") -> int:
    """``requested`` when > 0 (the user's choice), else :func:`default_engine_threads`; recorded under ``engine``."""
    n = int(requested) if requested and requested > 0 else default_engine_threads()
    _given[engine] = n
    return n


def limit_threads(n: int) -> None:
    """Cap OpenMP/BLAS pools (for libraries not loaded yet) and torch (if loaded) at ``n`` threads.

    Called in each worker process before any engine loads, so torch and CTranslate2's
    OpenMP start with ``n`` threads there.
    """
    for var in _THREAD_ENV:
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    _given["limit"] = n


def thread_settings() -> dict:
    """What this process runs engines with: usable cores, workers, the defaults and what was set."""
    settings: dict = {"usable_cores": usable_cores(), "workers": _workers(), "default_engine_threads": default_engine_threads()}
    settings.update({f"set_{k}": v for k, v in _given.items()})
    settings.update({var: os.environ[var] for var in _THREAD_ENV if var in os.environ})
    torch = sys.modules.get("torch")
    if torch is not None:
        settings["torch_threads"] = torch.get_num_threads()
    return settings
