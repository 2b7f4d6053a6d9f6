"""The comparison runner: engine configurations × a dataset → :class:`Results`.

Every (system, utterance, repeat) is one replay through :func:`asr_lab.replay` — the same
loop as everywhere else — scored with :func:`asr_lab.score`. Runs are appended to a JSONL
cache as they finish (``cache_dir/runs.jsonl``), keyed by everything that shapes a run's
output: the configuration (decoding options included), the processor's code, the engine
package versions and the model files' identity (:mod:`asr_lab.provenance`), the audio
content, the clock and the chunk size. So a killed comparison resumes where it stopped and
yields the same table, a finished one can be re-scored without re-running engines, and an
edited processor or a new model is run again instead of answered from the cache.

Work can go to any :class:`concurrent.futures.Executor`: a process pool on one machine,
or a ``dask.distributed`` Client's ``get_executor()`` for a cluster. Each worker process
loads an engine once and reuses it across utterances; ``workers=N`` makes such a pool with
each engine's threads sized so the N workers do not oversubscribe the usable cores. With
``compute="wall"``, runs sharing CPU cores measure each other's contention; with the
default ``compute="cpu"`` they do not (up to the cache and memory effects that
:mod:`asr_lab.replay.compute` describes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import warnings
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import numpy as np

from asr_lab.replay import Trace
from asr_lab.replay.deadline import DEFAULT_CALL_TIMEOUT_SEC, check_timeout
from asr_lab.replay.validate import trace_problems

__all__ = ["compare", "Results", "RunRecord", "clear_processor_cache", "step_for"]

CACHE_FILE = "runs.jsonl"
_FORMAT = 1  # bump when a change makes cached traces incomparable


@dataclass
class RunRecord:
    """One replay of one utterance by one system: its trace, or why it failed."""

    system: str
    utterance: str
    repeat: int
    key: str
    trace: Optional[Trace]
    error: Optional[str] = None
    config: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.trace is not None and self.trace.ok

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": _FORMAT,
                "key": self.key,
                "system": self.system,
                "utterance": self.utterance,
                "repeat": self.repeat,
                "config": self.config,
                "error": self.error,
                "trace": None if self.trace is None else list(self.trace.records()),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
            ensure_ascii=False,
            default=_jsonable,
        )

    @classmethod
    def from_json(cls, line: str) -> "RunRecord":
        d = json.loads(line)
        trace = None if d.get("trace") is None else Trace.from_records(d["trace"])
        return cls(d["system"], d["utterance"], d["repeat"], d["key"], trace, d.get("error"), d.get("config"))


@dataclass
class _Task:
    system: str
    config: Any  # a config dict, or a picklable zero-argument factory
    utterance_id: str
    audio: Any  # path or array
    repeat: int
    key: str
    replay_kwargs: dict = field(default_factory=dict)
    engine: str = ""
    """Which loaded engine the task may reuse (see :func:`run_task`); set by :func:`compare`."""


def compare(
    configs: Union[Mapping[str, Any], Iterable[Any]],
    dataset: Any,
    *,
    clock: str = "virtual",
    chunk_sec: Optional[float] = None,
    repeats: int = 1,
    executor: Optional[Executor] = None,
    cache_dir: Union[str, os.PathLike, None] = None,
    speed: float = 1.0,
    slowdown: float = 1.0,
    compute: Optional[str] = None,
    workers: int = 0,
    warmup_sec: float = 1.0,
    progress: bool = True,
    normalize: Optional[Callable[[str], str]] = None,
    call_timeout_sec: Optional[float] = DEFAULT_CALL_TIMEOUT_SEC,
    policies: Optional[Mapping[str, Any]] = None,
    sweep: Optional[Mapping[str, Any]] = None,
    record_replay: bool = True,
) -> "Results":
    """Replay every utterance of ``dataset`` through every configuration and score it.

    ``configs``: ``{"name": config}`` (or a list, named by backend) where a config is
    anything :func:`asr_lab.load_processor` takes (dict, JSON text, ASRConfig) or a
    zero-argument factory returning a processor (a class, a function), or a processor
    instance (reused: ``init()`` starts each run afresh). ``dataset``: an
    :class:`asr_lab.data.Dataset`, a list of utterances, or a path for
    :func:`asr_lab.load_dataset`. ``chunk_sec``: seconds per step for all systems
    (default: :func:`step_for` — the processor's own ``min_chunk_sec``, else the
    configuration's ``min_chunk_size``, however the processor is given). ``repeats`` > 1 runs everything
    again to measure run-to-run spread. ``executor``: run on a process pool or a Dask
    cluster instead of in this process. ``cache_dir``: where ``runs.jsonl`` lives (resume
    and re-score from it). ``call_timeout_sec``: the longest one processor call may take
    (see :func:`asr_lab.replay.replay`). A failing utterance is recorded and the rest go on;
    a run that failed (raised, hung, or answered outside the contract) is never cached as ok.
    ``compute``: how a call's cost counts on the virtual clock (default ``"cpu"``: latencies
    that do not move with other programs' load; ``"wall"`` for GPU or remote engines; see
    :mod:`asr_lab.replay.compute`). ``workers=N`` runs utterances in N processes, each
    engine with usable cores / N threads (:mod:`asr_lab.threads`). The results carry an
    :class:`~asr_lab.environment.EnvironmentFingerprint`; a wall-accounted comparison on a
    busy machine warns.

    ``policies`` sweeps streaming policies on every config: ``{"hold-n": {"hold_n": [1, 2]},
    "alignatt": {"frame_threshold": [10, 25]}, "local-agreement": None}``, crossed with
    ``sweep`` (other fields, e.g. ``{"min_chunk_size": [0.5, 1.0]}``); systems are named
    ``"<name> <policy label>"`` (:func:`asr_lab.policies.policy_grid`). ``record_replay``: in
    this process, re-decoding policies share the engine's answers to identical requests
    (:mod:`asr_lab.policies.record_replay`; replayed calls are charged their recorded compute).
    """
    if policies is not None:
        from asr_lab.policies.grid import expand_configs

        configs = expand_configs(_named_configs(configs), policies, sweep)
    elif sweep:
        raise ValueError("sweep= crosses fields with policies=; give policies (e.g. {'local-agreement': None})")
    from asr_lab.core.config import ASRConfig
    from asr_lab.replay.clocks import make_clock

    from asr_lab.environment import fingerprint
    from asr_lab.provenance import run_provenance
    from asr_lab.replay.compute import validate_compute

    compute = validate_compute(compute, make_clock(clock, speed=speed, slowdown=slowdown).name)  # validates early
    if chunk_sec is not None and not (isinstance(chunk_sec, (int, float)) and 0 < chunk_sec <= 60):
        raise ValueError(f"chunk_sec={chunk_sec!r}: give seconds of new audio per step in (0, 60], e.g. 0.5, or None for each system's own")
    call_timeout_sec = check_timeout(call_timeout_sec)
    executor, close_pool, pool = _worker_pool(workers, executor)
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r} must be a whole number >= 1")
    systems = _named_configs(configs)
    utterances = _utterances(dataset)
    cache_path = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
    done = _read_cache(cache_path) if cache_path else {}

    tasks: list[_Task] = []
    order: list[tuple[str, str, int, str]] = []
    queued: set[str] = set()
    sources = {u.id: _audio_of(u) for u in utterances}  # a path, or the array decoded once and shared by every task
    fingerprints = {uid: _audio_fingerprint(audio) for uid, audio in sources.items()}
    for system, config in systems.items():
        if not callable(config) and all(callable(getattr(config, m, None)) for m in ("init", "process_iter", "finish")):
            config = _Given(config)  # a processor instance
        if callable(config) and not isinstance(config, (dict, str, ASRConfig)):
            payload, own_step = config, None
            target = getattr(config, "instance", config)
            name = (f"instance:{type(target).__module__}.{type(target).__qualname__}" if isinstance(config, _Given) else
                    f"factory:{getattr(config, '__module__', '?')}.{getattr(config, '__qualname__', repr(config))}")
            # the system name too: two lambdas share a qualname, and their closures are not hashable
            identity = json.dumps({"factory": name, "system": system, "defaults": repr(getattr(config, "__defaults__", None)),
                                   "provenance": run_provenance(target)}, sort_keys=True, default=str)
        else:
            payload, own_step = _validated(config)
            identity = json.dumps({"config": payload, "provenance": run_provenance(payload)}, sort_keys=True, default=str)
        engine = _identity_hash(identity)
        if callable(payload):  # this very factory: a worker process gets a fresh copy of it with every task
            engine += f":{id(payload):x}"
        # chunk_sec None: the processor's own min_chunk_sec, else the config's min_chunk_size (see step_for)
        kwargs = dict(clock=clock, chunk_sec=chunk_sec, fallback_chunk_sec=own_step, speed=speed, slowdown=slowdown,
                      compute=compute, warmup_sec=warmup_sec)
        for u in utterances:
            for r in range(repeats):
                key = _key(identity, fingerprints[u.id], kwargs, r)
                order.append((system, u.id, r, key))
                if key not in done and key not in queued:
                    queued.add(key)  # the same run under another name or utterance id is run once
                    tasks.append(_Task(system, payload, u.id, sources[u.id], r, key, {**kwargs, "call_timeout_sec": call_timeout_sec},
                                       engine))

    records = dict(done)
    from_cache = len(order) - len(tasks)
    if progress:
        print(f"compare: {from_cache} of {len(order)} runs from cache" + (f" ({cache_path})" if cache_path else ""), file=sys.stderr)
    bar = _progress(len(order), from_cache, progress)
    env = fingerprint()
    from asr_lab.policies.record_replay import recording

    def keep(record: RunRecord) -> None:
        records[record.key] = record
        if cache_path is not None:
            try:
                _append(cache_path, record)
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"{exc.strerror or exc} — writing run {record.system} / {record.utterance} (repeat {record.repeat}) "
                    f"to the cache {os.fspath(cache_path)}. The cache is intact: it keeps every run finished before this "
                    f"one (a line cut short is skipped when read). Free space (or give another cache_dir) and run the "
                    f"same comparison again: it resumes from there",
                    os.fspath(cache_path),
                ) from exc
        bar.update(1)
        bar.set_postfix_str(f"{record.system} / {record.utterance}" + ("" if record.ok else " FAILED"))

    session = recording() if record_replay and executor is None and pool is None else contextlib.nullcontext()
    clean = False
    try:
        session.__enter__()
        try:
            for record in _execute(tasks, executor, pool):
                keep(record)
        except KeyboardInterrupt:
            if pool is not None:  # what finished is kept; nothing queued runs
                for task, result, error in pool.finished():
                    keep(_record_of(task, result, error))
            if progress and cache_path is not None:
                print(f"compare: interrupted; {len(records)} finished runs are in {cache_path}: run the same comparison "
                      "again to resume", file=sys.stderr)
            raise
        clean = True
    finally:
        session.__exit__(None, None, None)
        bar.close()
        if pool is not None:
            pool.close() if clean else pool.terminate()
        close_pool()
        if executor is None:
            clear_processor_cache()
    # one row per (system, utterance, repeat), even where two share a run (same config, same audio)
    ordered = [_as_row(records[k], system, utt) for system, utt, _, k in order if k in records]
    env.finish()
    _warn_if_busy(env, [records[k].trace for k in (t.key for t in tasks) if k in records], clock, compute, workers)
    results = Results(ordered, {u.id: u for u in utterances}, normalize=normalize, cache_path=cache_path, environment=env)
    results.from_cache = from_cache
    return results


def clear_processor_cache() -> None:
    """Drop the engines this process keeps loaded between runs (frees their memory)."""
    _PROCESSORS.clear()


# -- execution ------------------------------------------------------------------------------

_PROCESSORS: dict[str, tuple[Any, dict]] = {}


def run_task(task: _Task) -> RunRecord:
    """Replay one utterance through one system; never raises (failures become the record's error)."""
    from asr_lab.backends.registry import load_processor
    from asr_lab.replay import replay

    try:
        # one engine per system and process, loaded once: a factory is named by compare() (by its
        # repr a worker saw a new object in every task, loaded an engine each time and kept them all)
        cache_key = task.engine
        kwargs = dict(task.replay_kwargs)
        if cache_key in _PROCESSORS:
            kwargs["warmup_sec"] = 0  # this engine is already warm: warm-up is for its first run
        else:
            from asr_lab.threads import engine_threads_for

            with engine_threads_for(kwargs.get("compute")):  # CPU accounting: one thread per engine
                if callable(task.config):
                    proc = task.config()
                    _PROCESSORS[cache_key] = (proc, {"separator": getattr(getattr(proc, "asr", None), "sep", None) or " "})
                else:
                    _PROCESSORS[cache_key] = load_processor(task.config)
        processor, meta = _PROCESSORS[cache_key]
        kwargs["chunk_sec"] = step_for(processor, kwargs.get("chunk_sec"), kwargs.pop("fallback_chunk_sec", None))
        from asr_lab.policies.record_replay import active_store

        store = active_store()
        calls = (store.live, store.replayed) if store is not None else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a processor error is recorded in the trace
            trace = replay(
                processor, task.audio, separator=meta.get("separator"),
                meta={"system": task.system, "utterance": task.utterance_id, "repeat": task.repeat}, **kwargs,
            )
        if calls is not None and callable(getattr(processor, "replayed_compute", None)):
            trace.meta["engine_calls_live"] = store.live - calls[0]
            trace.meta["engine_calls_replayed"] = store.replayed - calls[1]
        if getattr(processor, "policy", None):
            trace.meta["policy"] = processor.policy
        error = None if trace.ok else str(trace.error)
        if trace.error is not None and trace.error.type == "CallTimeoutError":
            _PROCESSORS.pop(cache_key, None)  # still inside the hung call: the next run loads a fresh one
        return RunRecord(task.system, task.utterance_id, task.repeat, task.key, trace, error, _config_json(task.config))
    except Exception as exc:  # loading failed, bad audio...: record it, the other runs go on
        return RunRecord(task.system, task.utterance_id, task.repeat, task.key, None, f"{type(exc).__name__}: {exc}", _config_json(task.config))


def _worker_pool(workers, executor):
    """``(executor, its closer, None)``, or for ``workers=N`` ``(None, no-op, a WorkerPool)`` of N
    processes whose engines share the usable cores (:mod:`asr_lab.worker_pool`: a dead worker
    costs one run, Ctrl-C stops at once, workers end with their parent)."""
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers={workers!r} must be a whole number >= 0 (0: run in this process)")
    if workers == 0:
        return executor, lambda: None, None
    if executor is not None:
        raise ValueError("give either workers=N (a process pool asr_lab sizes engine threads for) or executor=, not both")
    from asr_lab.worker_pool import WorkerPool

    return None, lambda: None, WorkerPool(workers, initializer=_init_worker, initargs=(workers,))


def _init_worker(workers: int) -> None:
    from asr_lab import threads

    os.environ[threads.WORKERS_ENV] = str(workers)
    threads.limit_threads(threads.default_engine_threads(workers))


def _warn_if_busy(env, traces, clock: str, compute: str, workers: int) -> None:
    """Warn when wall-accounted latencies were measured while other programs wanted the CPU."""
    if clock == "unaware" or (clock != "wall" and compute != "wall") or not traces:
        return
    from asr_lab.environment import busy_reason

    loads = [env.load_before[0], env.load_after[0]] + [
        t.meta[k] for t in traces if t is not None for k in ("load_before", "load_after") if t.meta.get(k) is not None]
    reason = busy_reason(max(loads), max(1, workers), env.cpu_pressure_after)
    if reason:
        warnings.warn(
            f"the machine was busy during this wall-accounted comparison ({reason}): its latencies include waiting "
            f"for the CPU and will not reproduce; use clock='virtual' with compute='cpu' (the default) for "
            f"latencies that do", RuntimeWarning, stacklevel=3,
        )


class _Given:
    """A processor instance given to :func:`compare` in place of a factory: every run reuses it."""

    def __init__(self, instance: Any) -> None:
        self.instance = instance
        self.__qualname__ = f"instance of {type(instance).__qualname__}"

    def __call__(self) -> Any:
        return self.instance

    def __repr__(self) -> str:
        return f"<{self.__qualname__} {id(self.instance):#x}>"


def step_for(processor: Any, chunk_sec: Optional[float] = None, config_chunk_sec: Optional[float] = None) -> float:
    """Seconds of new audio per replay step, the same however a processor is given.

    An explicit ``chunk_sec`` wins; then the processor's own ``min_chunk_sec``; then the
    configuration's ``min_chunk_size`` (for processors without that attribute); then 1.0 s.
    """
    if chunk_sec is not None:
        return float(chunk_sec)
    own = getattr(processor, "min_chunk_sec", None)
    if isinstance(own, (int, float)) and own > 0:
        return float(own)
    return float(config_chunk_sec) if config_chunk_sec else 1.0


def _execute(tasks: list[_Task], executor: Optional[Executor], pool: Any = None):
    if pool is not None:
        for task, result, error in pool.run(run_task, tasks, key=lambda t: t.key):
            yield _record_of(task, result, error)
        return
    if executor is None:
        for task in tasks:
            yield run_task(task)
        return
    futures = {executor.submit(run_task, task): task for task in tasks}
    try:
        for future in as_completed(futures):
            task = futures[future]
            try:
                yield future.result()
            except Exception as exc:  # the worker itself died (killed, unpicklable task...)
                yield _record_of(task, None, exc)
    except KeyboardInterrupt:  # a given executor (Dask...): what has not started is not started
        for future in futures:
            future.cancel()
        raise


def _record_of(task: _Task, result: Optional[RunRecord], error: Optional[BaseException]) -> RunRecord:
    """The worker's record, or a failed one saying why the worker gave none."""
    if error is None and result is not None:
        return result
    return RunRecord(task.system, task.utterance_id, task.repeat, task.key, None,
                     f"worker failed: {type(error).__name__}: {error}", _config_json(task.config))


def _as_row(record: RunRecord, system: str, utterance: str) -> RunRecord:
    """``record`` under this system name and utterance id: a run shared by two names (the same
    config, or identical audio) or cached under an old name is one row for each."""
    if record.system == system and record.utterance == utterance:
        return record
    trace = record.trace
    if trace is not None:
        trace = Trace(emissions=trace.emissions, partials=trace.partials, steps=trace.steps,
                      meta={**trace.meta, "system": system, "utterance": utterance}, error=trace.error)
    return RunRecord(system, utterance, record.repeat, record.key, trace, record.error, record.config)


# -- results --------------------------------------------------------------------------------


class Results:
    """Scores of a comparison: per-utterance and per-system tables, and every trace.

    ``utterances``: one row per (system, utterance, repeat) with all :class:`~asr_lab.Scores`
    columns. ``summary``: one row per system with corpus figures — WER and CER as summed
    errors / summed reference length, latencies pooled over all words, RTF as summed
    compute / summed audio, normalized erasure as summed erasures / summed final words —
    and, with repeats, the run-to-run spread (standard deviation across repeats).
    """

    from_cache: int = 0
    """How many of the runs came from the cache instead of being run by this call."""

    def __init__(self, records: list[RunRecord], references: Mapping[str, Any], *, normalize=None, cache_path=None,
                 environment=None) -> None:
        self.records = records
        self.environment = environment
        """:class:`~asr_lab.environment.EnvironmentFingerprint` of the machine that ran the comparison."""
        for r in records:
            problems = trace_problems(r.trace) if r.trace is not None else []
            if problems and r.error is None:
                r.error = f"malformed trace: {'; '.join(problems[:3])}"
        self.references = dict(references)
        self.normalize = normalize
        self.cache_path = cache_path

    @property
    def systems(self) -> list[str]:
        return list(dict.fromkeys(r.system for r in self.records))

    @property
    def traces(self) -> dict[tuple[str, str, int], Trace]:
        return {(r.system, r.utterance, r.repeat): r.trace for r in self.records if r.trace is not None}

    @property
    def failures(self) -> list[RunRecord]:
        return [r for r in self.records if not r.ok]

    @cached_property
    def scores(self) -> dict[tuple[str, str, int], Any]:
        from asr_lab.metrics import ENGLISH_NORMALIZER, score

        norm = self.normalize or ENGLISH_NORMALIZER
        scores = {}
        for r in self.records:
            if r.trace is None or r.utterance not in self.references or (r.error or "").startswith("malformed trace"):
                continue
            try:
                scores[(r.system, r.utterance, r.repeat)] = score(r.trace, self.references[r.utterance], normalize=norm)
            except Exception as exc:  # one bad run must not break the tables of every system
                r.error = f"scoring failed for {r.system} / {r.utterance} (repeat {r.repeat}): {type(exc).__name__}: {exc}"
        return scores

    @cached_property
    def utterances(self):
        import pandas as pd

        rows = []
        for r in self.records:
            s = self.scores.get((r.system, r.utterance, r.repeat))
            row = {"system": r.system, "utterance": r.utterance, "repeat": r.repeat, "error": r.error}
            if r.trace is not None:
                row.update(duration=r.trace.duration, emissions=len(r.trace.emissions), hypothesis=s.hypothesis if s else None)
            if s is not None:
                row.update(s.to_dict())
            rows.append(row)
        return pd.DataFrame(rows)

    @cached_property
    def summary(self):
        import pandas as pd

        rows = []
        for system in self.systems:
            mine = [r for r in self.records if r.system == system]
            row = _aggregate([self.scores[k] for k in self._keys(mine)])
            row = {"system": system, "utterances": len({r.utterance for r in mine}), "runs": len(mine),
                   "failed": sum(not r.ok for r in mine), **row,
                   "audit_findings": sum(len(r.trace.audit()) for r in mine if r.trace is not None)}
            repeats = sorted({r.repeat for r in mine})
            if len(repeats) > 1:
                per = [_aggregate([self.scores[k] for k in self._keys([r for r in mine if r.repeat == i])]) for i in repeats]
                for col in ("wer", "latency_p50", "latency_mean", "rtf"):
                    values = [p[col] for p in per if p.get(col) is not None and not _isnan(p[col])]
                    row[f"{col}_spread"] = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
            rows.append(row)
        return pd.DataFrame(rows).set_index("system")

    def _keys(self, records):
        return [(r.system, r.utterance, r.repeat) for r in records if (r.system, r.utterance, r.repeat) in self.scores]

    def table(self, columns: Union[list[str], str, None] = None, *, ci: bool = False, level: float = 0.95,
              resamples: int = 1000, seed: int = 0):
        """The summary's headline columns, for printing.

        ``columns="simultaneous"`` shows SimulEval's family instead (AL, LAAL, DAL, AP,
        StartOffset, EndOffset, YAAL and their ``_CA`` variants: means over utterances,
        seconds). ``latency_count`` is the number of words the latency columns were computed over;
        ``audit_findings`` counts :meth:`Trace.audit` findings. ``ci=True`` adds, after each
        column shown that can be bootstrapped (``wer``, ``cer``, ``latency_*``, the
        simultaneous family...; :data:`asr_lab.metrics.bootstrap.BOOTSTRAP_METRICS`), its interval over
        utterances (``_low``, ``_high``; :func:`asr_lab.metrics.bootstrap_interval`) and,
        with repeats, the run-to-run spread (``_spread``): the interval answers "how much
        would this move on another test set like this one", the spread "how much does it
        move when the same utterances are run again".
        """
        if columns == "simultaneous":
            from asr_lab.metrics.simultaneous import SIMULEVAL_KEYS

            columns = ["utterances", "wer"] + [k + s for s in ("", "_CA") for k in SIMULEVAL_KEYS]
        cols = columns or ["utterances", "failed", "wer", "cer", "latency_p50", "latency_p90", "latency_count",
                           "first_word_latency", "finish_delay", "normalized_erasure", "rtf", "audit_findings"]
        table = self.summary[[c for c in cols if c in self.summary.columns]]
        if not ci:
            return table
        from asr_lab.metrics.bootstrap import BOOTSTRAP_METRICS, bootstrap_interval

        out = table.copy()
        for col in list(table.columns):
            if col not in BOOTSTRAP_METRICS or col == "rtf":
                continue
            lows, highs = [], []
            for system in table.index:
                runs = self._per_utterance(system)
                iv = bootstrap_interval(runs, col, resamples=resamples, level=level, seed=seed) if runs else None
                lows.append(iv.low if iv else float("nan"))
                highs.append(iv.high if iv else float("nan"))
            at = list(out.columns).index(col) + 1
            out.insert(at, f"{col}_low", lows)
            out.insert(at + 1, f"{col}_high", highs)
            if f"{col}_spread" in self.summary.columns:
                out.insert(at + 2, f"{col}_spread", self.summary.loc[table.index, f"{col}_spread"].to_numpy())
        return out

    def significance(self, a: str, b: str, metric: str = "wer", *, resamples: int = 1000, level: float = 0.95,
                     seed: int = 0):
        """Is system ``a`` different from ``b`` on ``metric``? A paired bootstrap over the
        utterances both have (:func:`asr_lab.metrics.paired_bootstrap`): the difference
        ``a − b``, its interval, a two-sided p-value, and each system's run-to-run spread
        (with repeats) beside it."""
        from asr_lab.metrics.bootstrap import paired_bootstrap

        for name in (a, b):
            if name not in self.systems:
                raise ValueError(f"unknown system {name!r}; these were compared: {', '.join(self.systems)}")
        spread = f"{metric}_spread"
        spreads = tuple(
            float(self.summary.loc[n, spread]) if spread in self.summary.columns else float("nan") for n in (a, b)
        )
        return paired_bootstrap(self._per_utterance(a), self._per_utterance(b), metric, names=(a, b),
                                resamples=resamples, level=level, seed=seed, spreads=spreads)

    def _per_utterance(self, system: str) -> dict:
        """``{utterance: [Scores of each repeat]}`` of one system (the bootstrap's unit)."""
        out: dict = {}
        for (sys_, utt, _rep), s in self.scores.items():
            if sys_ == system:
                out.setdefault(utt, []).append(s)
        return out

    def to_files(self, out_dir: Union[str, os.PathLike]) -> Path:
        """Write ``summary.csv``, ``utterances.csv``, ``traces/*.jsonl``, ``summary.md`` and
        ``simuleval/<system>.instances.log`` (:func:`asr_lab.export.to_simuleval_log`) to ``out_dir``."""
        out = Path(out_dir)
        (out / "traces").mkdir(parents=True, exist_ok=True)
        self.summary.to_csv(out / "summary.csv")
        self.utterances.to_csv(out / "utterances.csv", index=False)
        names = _FileNames()
        for (system, utt, rep), trace in self.traces.items():
            try:
                trace.to_jsonl(out / "traces" / names.get(f"{_safe(system)}__{_safe(utt)}__{rep}", (system, utt, rep), ".jsonl"))
            except (TypeError, ValueError) as exc:  # a malformed trace from an old cache: the others are still written
                warnings.warn(f"trace of {system} / {utt} (repeat {rep}) not written: {exc}", RuntimeWarning)
        from asr_lab.export import to_simuleval_log

        for system in self.systems:  # SimulEval / OmniSTEval input, first run of each utterance
            if any(s == system and r == 0 for s, _, r in self.traces):
                try:
                    to_simuleval_log(self, out / "simuleval" / names.get(_safe(system), system, ".instances.log"), system=system)
                except Exception as exc:  # one system's export must not cost the others theirs
                    warnings.warn(f"SimulEval log of {system} not written: {type(exc).__name__}: {exc}", RuntimeWarning)
        (out / "summary.md").write_text(self.markdown(), encoding="utf-8", errors="surrogateescape")
        if self.environment is not None:
            (out / "environment.json").write_text(json.dumps(self.environment.to_dict(), indent=2))
        return out

    def markdown(self) -> str:
        """The headline table as Markdown, with the failures listed under it."""
        table = self.table()
        head = "| system | " + " | ".join(table.columns) + " |\n|---|" + "---|" * len(table.columns) + "\n"
        body = "".join(
            f"| {_cell(system)} | " + " | ".join(_fmt(v, integer=c in _COUNTS) for c, v in row.items()) + " |\n"
            for system, row in table.iterrows()
        )
        notes = "".join(f"- {_cell(r.system)} / {_cell(r.utterance)} (repeat {r.repeat}): {_cell(r.error)}\n" for r in self.failures)
        env = f"\nEnvironment:\n{self.environment.markdown()}{_accounting(self)}" if self.environment is not None else ""
        return head + body + (f"\nFailures:\n{notes}" if notes else "") + env

    # -- figures (asr_lab.plots) --------------------------------------------------------
    def plot_waterfall(self, utterance: Optional[str] = None, **kwargs):
        """:func:`asr_lab.plots.waterfall` of one utterance (default: the longest)."""
        from asr_lab import plots

        return plots.waterfall(self, utterance, **kwargs)

    def plot_latency(self, **kwargs):
        """:func:`asr_lab.plots.latency_distribution`."""
        from asr_lab import plots

        return plots.latency_distribution(self, **kwargs)

    def plot_wer_vs_latency(self, **kwargs):
        """:func:`asr_lab.plots.wer_vs_latency` with the Pareto front."""
        from asr_lab import plots

        return plots.wer_vs_latency(self, **kwargs)

    def latency_decomposition(self):
        """Per system: mean/p50/p90 of recognition, policy hold and compute & queueing of
        the correctly committed words (:mod:`asr_lab.metrics.decomposition`)."""
        import pandas as pd

        from asr_lab.metrics.decomposition import decompose_results

        rows = {s: d.to_dict() for s, d in decompose_results(self, normalize=self.normalize or _english()).items()}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("system")

    def plot_latency_decomposition(self, **kwargs):
        """:func:`asr_lab.plots.latency_decomposition`: stacked bars of where latency comes from."""
        from asr_lab import plots

        return plots.latency_decomposition(self, **kwargs)

    def plot_stability(self, utterance: Optional[str] = None, **kwargs):
        """:func:`asr_lab.plots.stability_over_time` of one utterance."""
        from asr_lab import plots

        return plots.stability_over_time(self, utterance, **kwargs)

    def __repr__(self) -> str:
        return (f"Results({len(self.systems)} systems, {len(self.references)} utterances, {len(self.records)} runs "
                f"({self.from_cache} of {len(self.records)} from cache), {len(self.failures)} failed)")

    def _repr_html_(self) -> str:
        import html

        failed = "".join(f"<li>{html.escape(f'{r.system} / {r.utterance} (repeat {r.repeat}): {r.error}')}</li>" for r in self.failures)
        head = f"<p style='color:crimson'><b>{len(self.failures)} of {len(self.records)} runs failed</b></p><ul>{failed}</ul>" if failed else ""
        return head + self.table().to_html(float_format=lambda v: f"{v:.3f}")


def _accounting(results: "Results") -> str:
    """One line per system: the clock, the compute measure (``replay.compute``) and the engine threads its runs used."""
    seen = {}
    for r in results.records:
        if r.trace is not None:
            meta, threads = r.trace.meta, r.trace.meta.get("threads") or {}
            ran = f", {threads.get('default_engine_threads')} engine thread(s) in {threads.get('workers')} worker(s)" if threads else ""
            seen.setdefault(r.system, set()).add(f"clock {meta.get('clock')}, compute {meta.get('compute', 'wall')}{ran}")
    return "".join(f"- {system}: {'; '.join(sorted(v))}\n" for system, v in seen.items())


def _aggregate(scores: list) -> dict:
    from asr_lab.metrics import LatencyAccumulator, StabilityAccumulator

    if not scores:
        return {}
    words = sum((s.wer for s in scores[1:]), scores[0].wer)
    chars = sum((s.cer for s in scores[1:]), scores[0].cer)
    lat, stab = LatencyAccumulator(), StabilityAccumulator()
    for s in scores:
        lat.add(s.latency)
        stab.add(s.stability)
    L, S = lat.compute(), stab.compute()
    row = {"wer": words.rate, "substitutions": words.substitutions, "deletions": words.deletions,
           "insertions": words.insertions, "reference_words": words.reference_length, "cer": chars.rate}
    row.update(L.to_dict())
    row.update({"normalized_erasure": S.normalized_erasure, "revisions_per_word": S.revisions.mean,
                "time_to_stable_mean": S.time_to_stable.mean})
    for key in scores[0].simultaneous:  # SimulEval's corpus rule: the mean of the utterances' scores
        values = [s.simultaneous[key] for s in scores if key in s.simultaneous and not _isnan(s.simultaneous[key])]
        row[key] = float(np.mean(values)) if values else float("nan")
    return row


# -- helpers ----------------------------------------------------------------------------------


def _named_configs(configs) -> dict[str, Any]:
    if isinstance(configs, Mapping):
        named = dict(configs)
    else:
        named = {}
        for c in configs:
            base = c.get("backend", "system") if isinstance(c, dict) else getattr(c, "backend", getattr(c, "__name__", "system"))
            name, k = base, 2
            while name in named:
                name, k = f"{base}-{k}", k + 1
            named[name] = c
    if not named:
        raise ValueError("no configurations to compare; give {'name': config, ...}")
    for name in named:
        if not isinstance(name, str) or not name:
            raise ValueError(f"system names must be non-empty strings, not {name!r}")
    return named


def _validated(config) -> tuple[dict, float]:
    """The config as a plain dict and its step (``min_chunk_size``, or ``vac_chunk_size`` when
    ``vac``, with the backend's own default), checked now with its backend's config class so that a typo fails before hours
    of runs; a backend whose engine is missing is left to fail per run, so the other
    systems still run."""
    from asr_lab.backends.registry import MissingDependencyError, get_loader
    from asr_lab.core.config import ASRConfig, parse_config

    if isinstance(config, (str, bytes)):
        config = json.loads(config)
    payload = config.model_dump(exclude_unset=True) | {"backend": config.backend} if isinstance(config, ASRConfig) else dict(config)
    try:
        loader = get_loader(payload.get("backend", ASRConfig.model_fields["backend"].default))
    except MissingDependencyError:
        return payload, float(payload.get("min_chunk_size", ASRConfig.model_fields["min_chunk_size"].default))
    parsed = parse_config(payload, getattr(loader, "config_class", None) or ASRConfig)
    # with VAC the reference's driver steps vac_chunk_size (the VAD's step), not min_chunk_size
    return payload, parsed.vac_chunk_size if parsed.vac else parsed.min_chunk_size


def _utterances(dataset) -> list:
    if isinstance(dataset, (str, os.PathLike)):
        from asr_lab.data import load_dataset

        dataset = load_dataset(dataset)
    utts = list(dataset)
    if not utts:
        raise ValueError("the dataset is empty; nothing to compare")
    ids = [u.id for u in utts]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"utterance ids must be unique; repeated: {dup[:5]}")
    return utts


def _audio_of(utt) -> Any:
    path = getattr(utt, "audio_path", None)
    if callable(path):
        path = path()
    if path is not None and Path(path).exists():
        if not Path(path).is_file():  # /dev/zero, a FIFO, a folder: reading it would never end or fail late
            raise ValueError(
                f"utterance {utt.id!r}: audio {os.fspath(path)!r} is not a regular file (a device, pipe or folder); "
                f"point the manifest at an audio file"
            )
        return str(path)
    return utt.load_audio()


def _audio_fingerprint(audio) -> str:
    """Content hash of a path's bytes or of an array's float32 samples (the cache key's audio part)."""
    h = hashlib.sha1()
    if isinstance(audio, str):
        with open(audio, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    else:
        h.update(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    return h.hexdigest()


def _key(identity: str, fingerprint: str, kwargs: dict, repeat: int) -> str:
    blob = json.dumps({"config": identity, "audio": fingerprint, "replay": kwargs, "repeat": repeat, "format": _FORMAT}, sort_keys=True)
    return _identity_hash(identity) + ":" + hashlib.sha256(blob.encode()).hexdigest()[:24]


def _identity_hash(identity: str) -> str:
    """The first part of a run's cache key: which system (config or factory, with its provenance) ran."""
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _read_cache(path: Path) -> dict[str, RunRecord]:
    records: dict[str, RunRecord] = {}
    if not path.exists():
        return records
    if not path.is_file():
        raise ValueError(f"cache {os.fspath(path)!r} is not a regular file; give cache_dir a folder of your own")
    for n, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        if not raw.strip():
            continue
        try:  # line by line: a run killed mid-write may have cut a line inside a UTF-8 character
            rec = RunRecord.from_json(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            warnings.warn(f"{path}:{n}: skipping an unreadable run record ({type(exc).__name__}: {exc}); it will be run again", RuntimeWarning)
            continue
        if rec.ok and rec.trace is not None and trace_problems(rec.trace):
            warnings.warn(f"{path}:{n}: run {rec.system} / {rec.utterance} has a malformed trace; it will be run again", RuntimeWarning)
            continue
        if rec.ok:  # failed runs are tried again on resume
            records[rec.key] = rec
    return records


def _append(path: Path, record: RunRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = record.to_json() + "\n"
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a run killed mid-write left half a line: start a new one
                line = "\n" + line
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()


def _progress(total: int, already: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=already, disable=not enabled, desc="compare", unit="run")


def _config_json(config) -> Any:
    return config if isinstance(config, dict) else f"factory:{getattr(config, '__qualname__', repr(config))}"


def _jsonable(obj):
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def _safe(name: str) -> str:
    """A file-name part for ``name``: itself when it is only letters, digits, ``-``, ``_``
    and ``.``; else those kept and a short hash of the whole name appended, so that two
    names (``a/b`` and ``a_b``) never share a file."""
    name = str(name)
    kept = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    if kept == name and not name.startswith("."):
        return name
    return f"{kept.lstrip('.') or 'x'}-{hashlib.sha1(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


class _FileNames:
    """File names that never repeat within one output folder (compared case-insensitively, for
    file systems that ignore case): a repeat gets a hash of what it names appended."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def get(self, stem: str, what: Any, suffix: str) -> str:
        name = stem
        if (name + suffix).lower() in self.used:
            name = f"{stem}-{hashlib.sha1(repr(what).encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
        self.used.add((name + suffix).lower())
        return name + suffix


def _cell(text: Any) -> str:
    """``text`` for one Markdown table cell or list line: ``|`` escaped, line breaks as spaces."""
    return " ".join(str(text).replace("\\", "\\\\").replace("|", "\\|").split())


def _english():
    from asr_lab.metrics import ENGLISH_NORMALIZER

    return ENGLISH_NORMALIZER


def _isnan(v) -> bool:
    return isinstance(v, float) and v != v


_COUNTS = {"utterances", "runs", "failed", "substitutions", "deletions", "insertions", "reference_words", "emissions",
           "latency_count", "audit_findings"}


def _fmt(v, integer: bool = False) -> str:
    if v is None or _isnan(v):
        return "–"
    if integer:
        return str(int(v))
    return f"{v:.3f}" if isinstance(v, float) else str(v)
