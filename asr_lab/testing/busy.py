"""A busy machine on demand, for tests that check results do not move with load."""

from __future__ import annotations

import multiprocessing
import time

from asr_lab import threads

__all__ = ["BusyCores"]


def _spin() -> None:
    while True:
        pass


class BusyCores:
    """Busy-loop processes (``per_core`` for each usable core) for the duration of a ``with`` block.

    Two per core, not one: with one busy loop per core the scheduler's fair share still gives an
    engine 2/3 of a core on 2 cores (an elapsed/CPU stretch of about 1.5); with two it is about 2.5.
    """

    def __init__(self, per_core: int = 2):
        self.per_core = per_core

    def __enter__(self) -> "BusyCores":
        ctx = multiprocessing.get_context("fork")
        self.procs = [ctx.Process(target=_spin, daemon=True) for _ in range(self.per_core * threads.usable_cores())]
        for p in self.procs:
            p.start()
        time.sleep(0.2)
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.terminate()
            p.join()
