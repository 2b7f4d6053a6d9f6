"""The comparison's process pool: runs survive a dead worker, Ctrl-C stops at once, workers die with their parent.

:class:`WorkerPool` runs tasks in ``workers`` processes and yields each result as it
finishes, with three guarantees a plain :class:`~concurrent.futures.ProcessPoolExecutor`
does not give:

* **A killed worker costs one run.** When a worker process dies (killed, out of memory, a
  crash in native code) the executor breaks and fails every pending future. The pool
  knows which tasks were running (each worker marks the task it starts in a small file
  and removes the mark when it returns), starts a fresh executor, runs those few again one
  at a time to find the one that kills its worker — that task alone fails, with the exit
  signal — and submits everything else again.
* **Ctrl-C stops within one call.** Workers ignore SIGINT (a terminal sends it to the
  whole process group), so only the parent decides: on KeyboardInterrupt it cancels the
  queued tasks, yields the results that had already finished (so the caller caches them),
  terminates the workers and re-raises. Nothing queued is run; a re-run resumes.
* **Workers end with their parent.** Each worker asks the kernel (Linux
  ``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to be killed when the process that started it
  dies, so a ``kill -9`` of the CLI does not leave engines loaded; elsewhere a watcher
  thread exits the worker once its parent is gone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

__all__ = ["WorkerDied", "WorkerPool"]

_PR_SET_PDEATHSIG = 1


class WorkerDied(RuntimeError):
    """The worker process running a task died (the task is the one that killed it)."""


def _die_with_parent(parent: int) -> None:
    """Make this process end when ``parent`` does (prctl on Linux, a watcher thread elsewhere)."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the request was in place
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, name="asr_lab-parent-watch", daemon=True).start()


def _initialize(parent: int, marks: str, initializer: Optional[Callable], initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent(parent)
    global _MARKS
    _MARKS = marks
    if initializer is not None:
        initializer(*initargs)


_MARKS = ""


def _mark_name(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()


def _marked_call(fn: Callable, key: str, item: Any) -> Any:
    """Run ``fn(item)`` in a worker with a mark saying which task this process is running."""
    mark = Path(_MARKS) / _mark_name(key)
    mark.write_text(str(os.getpid()))
    try:
        return fn(item)
    finally:
        mark.unlink(missing_ok=True)


class WorkerPool:
    """``workers`` processes running ``fn(item)`` for keyed items (see the module doc).

    ``initializer(*initargs)`` runs in each worker after the pool's own set-up.
    :meth:`run` yields ``(item, result, error)``: ``error`` is ``None``, a
    :class:`WorkerDied`, or the exception the call raised in the worker.
    """

    def __init__(self, workers: int, initializer: Optional[Callable] = None, initargs: tuple = ()) -> None:
        self.workers = workers
        self._initializer = initializer
        self._initargs = initargs
        self._marks = tempfile.mkdtemp(prefix="asr_lab-workers-")
        self._executor: Optional[ProcessPoolExecutor] = None
        self.rebuilt = 0
        """How many times a dead worker made the pool start fresh processes."""

    # -- the executor -----------------------------------------------------------------------
    def _fresh(self) -> ProcessPoolExecutor:
        self._discard()
        self._executor = ProcessPoolExecutor(
            self.workers, initializer=_initialize,
            initargs=(os.getpid(), self._marks, self._initializer, self._initargs),
        )
        return self._executor

    def _processes(self) -> list:
        return list((getattr(self._executor, "_processes", None) or {}).values())

    def _discard(self, kill: bool = False) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        procs = list((getattr(executor, "_processes", None) or {}).values())
        if kill:
            for p in procs:
                if p.is_alive():
                    p.kill()
        executor.shutdown(wait=not kill, cancel_futures=True)
        for p in procs:
            p.join(timeout=5)

    def close(self) -> None:
        """Stop the workers (they have finished their tasks) and remove the marks folder."""
        self._discard()
        shutil.rmtree(self._marks, ignore_errors=True)

    def terminate(self) -> None:
        """Kill the workers now (what is running is lost) and remove the marks folder."""
        self._discard(kill=True)
        shutil.rmtree(self._marks, ignore_errors=True)

    # -- running -----------------------------------------------------------------------------
    def run(self, fn: Callable, items: list, key: Callable[[Any], str]) -> Iterator[tuple[Any, Any, Optional[BaseException]]]:
        """Yield ``(item, result, error)`` for every item, as they finish (see the class doc).

        On KeyboardInterrupt the caller should take :meth:`finished` (results that came in
        but were not yielded yet), then :meth:`terminate`.
        """
        pending = list(items)
        suspects: list = []
        self._futures: dict = {}
        self._yielded: set = set()
        while pending or suspects:
            # tasks that were running when a worker died: one at a time, to find the one that kills
            while suspects:
                item = suspects.pop(0)
                executor = self._executor or self._fresh()
                future = executor.submit(_marked_call, fn, key(item), item)
                self._futures = {future: item}
                procs = self._processes()
                try:
                    result = future.result()
                except BrokenProcessPool:
                    self._yielded.add(future)
                    mark = Path(self._marks) / _mark_name(key(item))
                    codes = _exit_codes(_culprit(procs, mark))
                    mark.unlink(missing_ok=True)
                    yield item, None, WorkerDied(_died_message(codes))
                    self._discard()
                    self.rebuilt += 1
                    continue
                except Exception as exc:
                    self._yielded.add(future)
                    yield item, None, exc
                    continue
                self._yielded.add(future)
                yield item, result, None
            if not pending:
                break
            executor = self._executor or self._fresh()
            self._futures = {executor.submit(_marked_call, fn, key(item), item): item for item in pending}
            pending = []
            waiting = set(self._futures)
            broken = False
            while waiting and not broken:
                finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = self._futures[future]
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        waiting.add(future)
                        continue
                    except Exception as exc:
                        self._yielded.add(future)
                        yield item, None, exc
                        continue
                    self._yielded.add(future)
                    yield item, result, None
            if broken:
                running = {p.name for p in Path(self._marks).iterdir()} & {_mark_name(key(self._futures[f])) for f in waiting}
                if not running and not any(f in self._yielded for f in self._futures):
                    # the workers die before they start any task (their set-up fails): nothing to retry
                    codes = [p.exitcode for p in self._processes() if p.exitcode not in (None, 0)]
                    for future in waiting:
                        self._yielded.add(future)
                        yield self._futures[future], None, WorkerDied(
                            _died_message(codes, before_start=True) + f" ({future.exception()})")
                    self._discard()
                    break
                for future in waiting:
                    item = self._futures[future]
                    if future.done() and not future.cancelled() and future.exception() is None:
                        self._yielded.add(future)  # it finished just before the break
                        yield item, future.result(), None
                    elif _mark_name(key(item)) in running:
                        suspects.append(item)
                    else:
                        pending.append(item)
                for mark in Path(self._marks).iterdir():
                    mark.unlink(missing_ok=True)
                self._discard()
                self.rebuilt += 1

    def finished(self) -> list[tuple[Any, Any, Optional[BaseException]]]:
        """Results that finished but :meth:`run` has not yielded (taken after a KeyboardInterrupt)."""
        out = []
        for future, item in getattr(self, "_futures", {}).items():
            if future in self._yielded or not future.done() or future.cancelled():
                continue
            exc = future.exception()
            if exc is None:
                out.append((item, future.result(), None))
            elif not isinstance(exc, BrokenProcessPool):
                out.append((item, None, exc))
            self._yielded.add(future)
        return out


def _culprit(procs: list, mark: Path) -> list:
    """The process whose mark names it (the one that ran the task), else all of ``procs``: the
    executor terminates the others when one dies, and their SIGTERM says nothing of the task."""
    try:
        pid = int(mark.read_text())
    except (OSError, ValueError):
        return procs
    return [p for p in procs if p.pid == pid] or procs


def _exit_codes(procs: list, wait_sec: float = 3.0) -> list:
    """Non-zero exit codes of ``procs``; waits briefly, because the executor's own thread may be
    reaping the dead process at this moment (its code is then not readable yet)."""
    deadline = time.monotonic() + wait_sec
    while True:
        codes = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
        if codes or time.monotonic() > deadline:
            return codes
        time.sleep(0.05)


def _died_message(codes: list, before_start: bool = False) -> str:
    if before_start:
        return ("the worker processes died before running any task (their start-up failed, or they were killed "
                "as they started); nothing was run")
    if codes:
        code = codes[0]
        how = f"killed by signal {-code} ({signal.Signals(-code).name})" if code < 0 else f"exit code {code}"
    else:
        how = "it ended unexpectedly"
    return (f"the worker process running this task died ({how}) — the task itself ends its process "
            "(a crash in native code, running out of memory, or a kill); the other runs went on in fresh workers")
