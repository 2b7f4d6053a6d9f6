"""Comparing systems on a dataset: the runner apart from its results.

* :mod:`~asr_lab.compare.runner` — :func:`compare`: configurations × dataset → runs, on any
  executor, one engine per worker, resumed from the cache.
* :mod:`~asr_lab.compare.records` — :class:`RunRecord` and the append-only JSONL cache
  (``cache_dir/runs.jsonl``) keyed by everything that shapes a run.
* :mod:`~asr_lab.compare.results` — :class:`Results`: tables, significance, plots, files.
* :mod:`~asr_lab.compare.pool` — :class:`~asr_lab.compare.pool.WorkerPool`: ``workers=N``'s
  processes, where a dead worker costs one run, Ctrl-C stops at once and workers die with their parent.

The package is callable as its function: ``asr_lab.compare(configs, dataset)`` is
:func:`~asr_lab.compare.runner.compare` (see :func:`asr_lab.core.lazy.callable_package`).
"""

from __future__ import annotations

from asr_lab.compare.records import CACHE_FILE, RunRecord
from asr_lab.compare.results import Results
from asr_lab.compare.runner import clear_processor_cache, compare, run_task, step_for
from asr_lab.core.lazy import callable_package

__all__ = ["CACHE_FILE", "Results", "RunRecord", "clear_processor_cache", "compare", "run_task", "step_for"]

callable_package(__name__, compare)
