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
import json
import os
import sys
import warnings
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from asr_lab.compare.records import (
    CACHE_FILE,
    RunRecord,
    _append,
    _audio_fingerprint,
    _config_json,
    _identity_hash,
    _key,
    _read_cache,
)
from asr_lab.compare.results import Results
from asr_lab.compare.penalty import offline_name
from asr_lab.replay import Trace
from asr_lab.replay.deadline import DEFAULT_CALL_TIMEOUT_SEC, check_timeout

__all__ = ["compare", "clear_processor_cache", "run_task", "step_for"]

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
    normalize: Union[str, Callable[[str], str], None] = None,
    call_timeout_sec: Optional[float] = DEFAULT_CALL_TIMEOUT_SEC,
    policies: Optional[Mapping[str, Any]] = None,
    sweep: Optional[Mapping[str, Any]] = None,
    record_replay: bool = True,
    profile: Any = None,
    offline: bool = False,
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
    :mod:`asr_lab.replay.compute`; ``"profile"`` with ``profile=`` a cost profile's path: each call's
    cost from a fitted model of its engine on a named machine, the same wherever it is recomputed,
    :mod:`asr_lab.replay.profile`; the profile's digest is part of every cache key). ``workers=N`` runs utterances in N processes, each
    engine with usable cores / N threads (:mod:`asr_lab.threads`). The results carry an
    :class:`~asr_lab.environment.EnvironmentFingerprint`; a wall-accounted comparison on a
    busy machine warns.

    ``policies`` sweeps streaming policies on every config: ``{"hold-n": {"hold_n": [1, 2]},
    "alignatt": {"frame_threshold": [10, 25]}, "local-agreement": None}``, crossed with
    ``sweep`` (other fields, e.g. ``{"min_chunk_size": [0.5, 1.0]}``); systems are named
    ``"<name> <policy label>"`` (:func:`asr_lab.policies.policy_grid`). ``record_replay``: in
    ``offline=True`` also runs every system offline on each whole utterance (named
    ``"<name> (offline)"``; :mod:`asr_lab.compare.penalty`), for
    :meth:`Results.streaming_penalty`. ``normalize``: the WER/CER normaliser, a name
    (default ``"whisper-english"``; ``"basic"``, ``"whisper-basic"``, ``"none"``) or a
    callable (:mod:`asr_lab.metrics.normalizers`). ``record_replay``: in
    this process, re-decoding policies share the engine's answers to identical requests
    (:mod:`asr_lab.policies.record_replay`; replayed calls are charged their recorded compute).
    """
    if policies is not None:
        from asr_lab.policies.grid import expand_configs

        configs = expand_configs(_named_configs(configs), policies, sweep)
    elif sweep:
        raise ValueError("sweep= crosses fields with policies=; give policies (e.g. {'local-agreement': None})")
    from asr_lab.core.config import ASRConfig, ConfigError
    from asr_lab.replay.clocks import make_clock

    from asr_lab.environment import fingerprint
    from asr_lab.provenance import run_provenance
    from asr_lab.replay.compute import validate_compute

    compute = validate_compute(compute, make_clock(clock, speed=speed, slowdown=slowdown).name)  # validates early
    cost_profile = _cost_profile(compute, profile)
    if chunk_sec is not None and not (isinstance(chunk_sec, (int, float)) and 0 < chunk_sec <= 60):
        raise ValueError(f"chunk_sec={chunk_sec!r}: give seconds of new audio per step in (0, 60], e.g. 0.5, or None for each system's own")
    call_timeout_sec = check_timeout(call_timeout_sec)
    from asr_lab.replay.replayer import check_warmup

    warmup_sec = check_warmup(warmup_sec)  # before any run, not in each
    executor, close_pool, pool = _worker_pool(workers, executor)
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r} must be a whole number >= 1")
    systems = _named_configs(configs)
    utterances = _utterances(dataset)
    cache_path = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
    done = _read_cache(cache_path) if cache_path else {}

    tasks: list[_Task] = []
    not_started: dict[str, RunRecord] = {}
    order: list[tuple[str, str, int, str]] = []
    queued: set[str] = set()
    sources = {u.id: _audio_of(u) for u in utterances}  # a path, or the array decoded once and shared by every task
    fingerprints = {uid: _audio_fingerprint(audio) for uid, audio in sources.items()}
    for system, config in systems.items():
        unable: Optional[str] = None  # a config that cannot start is checked once, here (_cannot_start)
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
            try:
                payload, own_step = _validated(config)
            except ConfigError as exc:
                raise ConfigError(f"system {system!r}: {exc}") from None
            identity = json.dumps({"config": payload, "provenance": run_provenance(payload)}, sort_keys=True, default=str)
            unable = _cannot_start(payload)
        engine = _identity_hash(identity)
        if callable(payload):  # this very factory: a worker process gets a fresh copy of it with every task
            engine += f":{id(payload):x}"
        # chunk_sec None: the processor's own min_chunk_sec, else the config's min_chunk_size (see step_for)
        kwargs = dict(clock=clock, chunk_sec=chunk_sec, fallback_chunk_sec=own_step, speed=speed, slowdown=slowdown,
                      compute=compute, warmup_sec=warmup_sec)
        run_kwargs = {**kwargs, "call_timeout_sec": call_timeout_sec}
        if cost_profile is not None:
            if not callable(payload):  # a missing cost model fails now, not after hours of other runs
                _check_profile_covers(cost_profile, system, payload)
            kwargs["profile"] = cost_profile.digest  # a run under another profile is another run
            run_kwargs["profile"] = cost_profile
        runs = [(system, kwargs, run_kwargs)]
        if offline:  # the same engine on each whole utterance, computation-unaware: the streaming penalty's baseline
            whole = dict(clock="unaware", chunk_sec="whole", speed=1.0, slowdown=1.0)
            off = {k: v for k, v in kwargs.items() if k != "profile"} | whole
            if off.get("compute") == "profile":  # the unaware clock counts no cost: no profile to apply
                off["compute"] = None
            runs.append((offline_name(system), off, {**off, "call_timeout_sec": call_timeout_sec}))
        for name, key_kwargs, task_kwargs in runs:
            for u in utterances:
                for r in range(repeats):
                    key = _key(identity, fingerprints[u.id], key_kwargs, r)
                    order.append((name, u.id, r, key))
                    if unable and key not in done:  # checked once above: recorded failed, never tried, never cached
                        not_started[key] = RunRecord(name, u.id, r, key, None, unable, _config_json(payload))
                    elif key not in done and key not in queued:
                        queued.add(key)  # the same run under another name or utterance id is run once
                        tasks.append(_Task(name, payload, u.id, sources[u.id], r, key, task_kwargs, engine))

    for system in dict.fromkeys(r.system for r in not_started.values()):
        runs = [r for r in not_started.values() if r.system == system]
        warnings.warn(f"system {system!r} cannot start, so none of its {len(runs)} runs is tried: {runs[0].error}",
                      RuntimeWarning, stacklevel=2)
    records = {**done, **not_started}
    from_cache = len(order) - len(tasks) - len(not_started)
    if progress:
        print(f"compare: {from_cache} of {len(order)} runs from cache" + (f" ({cache_path})" if cache_path else ""), file=sys.stderr)
    bar = _progress(len(order), from_cache + len(not_started), progress)
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
    _warn_if_behind(ordered, clock)
    results = Results(ordered, {u.id: u for u in utterances}, normalize=normalize, cache_path=cache_path, environment=env)
    results.from_cache = from_cache
    return results


def _cost_profile(compute: str, profile: Any):
    """The :class:`~asr_lab.replay.profile.CostProfile` a ``compute="profile"`` comparison uses, else ``None``."""
    if compute != "profile":
        if profile is not None:
            raise ValueError(f"profile= is used by compute='profile' only, not compute={compute!r}; pass compute='profile'")
        return None
    if profile is None:
        raise ValueError("compute='profile' needs profile=: the path of a cost profile (configs/profiles/*.json, made by "
                         "asr-lab calibrate) or a CostProfile")
    from asr_lab.replay.profile import load_profile

    return load_profile(profile)


def _check_profile_covers(cost_profile, system: str, payload: dict) -> None:
    """Raise ProfileError, naming ``system``, when the profile has no model for its engine configuration."""
    from asr_lab.backends.registry import MissingDependencyError, get_loader
    from asr_lab.core.config import ASRConfig, parse_config
    from asr_lab.replay.profile import ProfileError, cost_identity

    try:
        loader = get_loader(payload.get("backend", ASRConfig.model_fields["backend"].default))
    except MissingDependencyError:
        return  # its runs fail with the missing dependency named
    try:
        cost_profile.engine_for(identity=cost_identity(parse_config(payload, getattr(loader, "config_class", None) or ASRConfig)))
    except ProfileError as exc:
        raise ProfileError(f"system {system!r}: {exc}") from None


def clear_processor_cache() -> None:
    """Drop the engines this process keeps loaded between runs (frees their memory)."""
    _PROCESSORS.clear()


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
        fallback = kwargs.pop("fallback_chunk_sec", None)
        if kwargs.get("chunk_sec") != "whole":  # "whole": an offline twin, the whole audio in one chunk
            kwargs["chunk_sec"] = step_for(processor, kwargs.get("chunk_sec"), fallback)
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
    processes whose engines share the usable cores (:mod:`asr_lab.compare.pool`: a dead worker
    costs one run, Ctrl-C stops at once, workers end with their parent)."""
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers={workers!r} must be a whole number >= 0 (0: run in this process)")
    if workers == 0:
        return executor, lambda: None, None
    if executor is not None:
        raise ValueError("give either workers=N (a process pool asr_lab sizes engine threads for) or executor=, not both")
    from asr_lab.compare.pool import WorkerPool

    return None, lambda: None, WorkerPool(workers, initializer=_init_worker, initargs=(workers,))


def _init_worker(workers: int) -> None:
    from asr_lab import threads

    os.environ[threads.WORKERS_ENV] = str(workers)
    threads.limit_threads(threads.default_engine_threads(workers))


def _warn_if_behind(records, clock: str) -> None:
    """Warn, per system, when an engine cannot keep up with the audio (its lag grows along the stream)."""
    if clock == "unaware":
        return
    from asr_lab.metrics.lag import FALLS_BEHIND_SLOPE, falls_behind, lag_slope

    by_system: dict = {}
    for r in records:
        if r.trace is not None:
            by_system.setdefault(r.system, []).append(r.trace)
    for system, traces in by_system.items():
        slope = lag_slope(traces)
        audio = sum(t.duration for t in traces)
        rtf = sum(t.compute_sec for t in traces) / audio if audio > 0 else float("nan")
        if falls_behind(slope, rtf):
            warnings.warn(
                f"{system!r} falls behind the audio: its lag grows {slope:.3f} s per second of stream (RTF "
                f"{rtf:.2f}; keeping up means a slope near 0 and below {FALLS_BEHIND_SLOPE}), so its latency grows with "
                f"the stream's length and a median over short utterances understates it (column falls_behind)",
                RuntimeWarning, stacklevel=3,
            )


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


NOT_STARTED = "not started (checked before any run): "
"""How the error of a run that a failed up-front check kept from starting begins."""


def _cannot_start(payload: dict) -> Optional[str]:
    """Why no run of this config can start (the backend missing, its model absent, a policy
    the engine cannot run...), found once without loading a model; None when it can."""
    from asr_lab.backends.registry import check_config

    try:
        check_config(payload)
    except Exception as exc:  # whatever a run would raise, said once instead of once per run
        return f"{NOT_STARTED}{type(exc).__name__}: {exc}"
    return None


def _validated(config) -> tuple[dict, float]:
    """The config as a plain dict and its step (``min_chunk_size``, or ``vac_chunk_size`` when
    ``vac``, with the backend's own default), checked now with its backend's config class so that a typo fails before hours
    of runs; a backend whose engine is missing is left to fail per run, so the other
    systems still run."""
    from asr_lab.backends.registry import MissingDependencyError, get_loader
    from asr_lab.core.config import ASRConfig, ConfigError, config_from_json, parse_config

    if isinstance(config, (str, bytes)):
        config = config_from_json(config)  # a ConfigError naming the JSON fault, or a non-object
    if not isinstance(config, (ASRConfig, Mapping)):
        raise ConfigError(
            f"a config must be a dict, an ASRConfig, a JSON object text or a processor factory, not "
            f"{type(config).__name__} ({config!r:.60}); e.g. {{\"backend\": \"pocketsphinx\"}}"
        )
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


def _progress(total: int, already: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=already, disable=not enabled, desc="compare", unit="run")
