"""The comparison runner: engine configurations × a dataset → :class:`Results`.

Every (system, utterance, repeat) is one replay through :func:`asr_lab.replay` — the same
loop as everywhere else — scored with :func:`asr_lab.score`. Runs are appended to a JSONL
cache as they finish (``cache_dir/runs.jsonl``), keyed by the configuration, the audio
content, the clock and the chunk size, so a killed comparison resumes where it stopped and
yields the same table, and a finished one can be re-scored without re-running engines.

Work can go to any :class:`concurrent.futures.Executor`: a process pool on one machine,
or a ``dask.distributed`` Client's ``get_executor()`` for a cluster. Each worker process
loads an engine once and reuses it across utterances; ``workers=N`` makes such a pool with
each engine's threads sized so the N workers do not oversubscribe the usable cores. With
``compute="wall"``, runs sharing CPU cores measure each other's contention; with the
default ``compute="cpu"`` they do not (up to the cache and memory effects that
:mod:`asr_lab.replay.compute` describes).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import numpy as np

from asr_lab.replay import Trace

__all__ = ["compare", "Results", "RunRecord", "clear_processor_cache"]

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
) -> "Results":
    """Replay every utterance of ``dataset`` through every configuration and score it.

    ``configs``: ``{"name": config}`` (or a list, named by backend) where a config is
    anything :func:`asr_lab.load_processor` takes (dict, JSON text, ASRConfig) or a
    zero-argument factory returning a processor. ``dataset``: an
    :class:`asr_lab.data.Dataset`, a list of utterances, or a path for
    :func:`asr_lab.load_dataset`. ``chunk_sec``: seconds per step for all systems
    (default: each configuration's ``min_chunk_size``). ``repeats`` > 1 runs everything
    again to measure run-to-run spread. ``executor``: run on a process pool or a Dask
    cluster instead of in this process. ``cache_dir``: where ``runs.jsonl`` lives (resume
    and re-score from it). A failing utterance is recorded and the rest go on.
    ``compute``: how a call's cost counts on the virtual clock (default ``"cpu"``: latencies
    that do not move with other programs' load; ``"wall"`` for GPU or remote engines; see
    :mod:`asr_lab.replay.compute`). ``workers=N`` runs utterances in N processes, each
    engine with usable cores / N threads (:mod:`asr_lab.threads`). The results carry an
    :class:`~asr_lab.environment.EnvironmentFingerprint`; a wall-accounted comparison on a
    busy machine warns.
    """
    from asr_lab.core.config import ASRConfig
    from asr_lab.replay.clocks import make_clock

    from asr_lab.environment import fingerprint
    from asr_lab.replay.compute import validate_compute

    compute = validate_compute(compute, make_clock(clock, speed=speed, slowdown=slowdown).name)  # validates early
    executor, close_pool = _worker_pool(workers, executor)
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r} must be a whole number >= 1")
    systems = _named_configs(configs)
    utterances = _utterances(dataset)
    cache_path = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
    done = _read_cache(cache_path) if cache_path else {}

    tasks: list[_Task] = []
    order: list[tuple[str, str, int, str]] = []
    sources = {u.id: _audio_of(u) for u in utterances}  # a path, or the array decoded once and shared by every task
    fingerprints = {uid: _audio_fingerprint(audio) for uid, audio in sources.items()}
    for system, config in systems.items():
        if callable(config) and not isinstance(config, (dict, str, ASRConfig)):
            payload, identity, step = config, f"factory:{getattr(config, '__module__', '?')}.{getattr(config, '__qualname__', repr(config))}", chunk_sec
        else:
            payload, own_step = _validated(config)
            identity = json.dumps(payload, sort_keys=True, default=str)
            step = chunk_sec if chunk_sec is not None else own_step
        kwargs = dict(clock=clock, chunk_sec=step, speed=speed, slowdown=slowdown, compute=compute, warmup_sec=warmup_sec)
        for u in utterances:
            for r in range(repeats):
                key = _key(identity, fingerprints[u.id], kwargs, r)
                order.append((system, u.id, r, key))
                if key not in done:
                    tasks.append(_Task(system, payload, u.id, sources[u.id], r, key, kwargs))

    records = dict(done)
    bar = _progress(len(order), len(order) - len(tasks), progress)
    env = fingerprint()
    try:
        for record in _execute(tasks, executor):
            records[record.key] = record
            if cache_path is not None:
                _append(cache_path, record)
            bar.update(1)
            bar.set_postfix_str(f"{record.system} / {record.utterance}" + ("" if record.ok else " FAILED"))
    finally:
        bar.close()
        close_pool()
        if executor is None:
            clear_processor_cache()
    ordered = [records[k] for *_, k in order if k in records]
    env.finish()
    _warn_if_busy(env, [records[k].trace for k in (t.key for t in tasks) if k in records], clock, compute, workers)
    return Results(ordered, {u.id: u for u in utterances}, normalize=normalize, cache_path=cache_path, environment=env)


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
        cache_key = task.key.split(":")[0] if not callable(task.config) else repr(task.config)
        kwargs = dict(task.replay_kwargs)
        if cache_key in _PROCESSORS:
            kwargs["warmup_sec"] = 0  # this engine is already warm: warm-up is for its first run
        else:
            if callable(task.config):
                proc = task.config()
                _PROCESSORS[cache_key] = (proc, {"separator": getattr(getattr(proc, "asr", None), "sep", None) or " "})
            else:
                _PROCESSORS[cache_key] = load_processor(task.config)
        processor, meta = _PROCESSORS[cache_key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a processor error is recorded in the trace
            trace = replay(
                processor, task.audio, separator=meta.get("separator"),
                meta={"system": task.system, "utterance": task.utterance_id, "repeat": task.repeat}, **kwargs,
            )
        error = None if trace.ok else str(trace.error)
        return RunRecord(task.system, task.utterance_id, task.repeat, task.key, trace, error, _config_json(task.config))
    except Exception as exc:  # loading failed, bad audio...: record it, the other runs go on
        return RunRecord(task.system, task.utterance_id, task.repeat, task.key, None, f"{type(exc).__name__}: {exc}", _config_json(task.config))


def _worker_pool(workers, executor):
    """A process pool of ``workers`` processes whose engines share the usable cores, and its closer."""
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers={workers!r} must be a whole number >= 0 (0: run in this process)")
    if workers == 0:
        return executor, lambda: None
    if executor is not None:
        raise ValueError("give either workers=N (a process pool asr_lab sizes engine threads for) or executor=, not both")
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(workers,))
    return pool, pool.shutdown


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


def _execute(tasks: list[_Task], executor: Optional[Executor]):
    if executor is None:
        for task in tasks:
            yield run_task(task)
        return
    futures = {executor.submit(run_task, task): task for task in tasks}
    for future in as_completed(futures):
        task = futures[future]
        try:
            yield future.result()
        except Exception as exc:  # the worker itself died (killed, unpicklable task...)
            yield RunRecord(task.system, task.utterance_id, task.repeat, task.key, None, f"worker failed: {type(exc).__name__}: {exc}", _config_json(task.config))


# -- results --------------------------------------------------------------------------------


class Results:
    """Scores of a comparison: per-utterance and per-system tables, and every trace.

    ``utterances``: one row per (system, utterance, repeat) with all :class:`~asr_lab.Scores`
    columns. ``summary``: one row per system with corpus figures — WER and CER as summed
    errors / summed reference length, latencies pooled over all words, RTF as summed
    compute / summed audio, normalized erasure as summed erasures / summed final words —
    and, with repeats, the run-to-run spread (standard deviation across repeats).
    """

    def __init__(self, records: list[RunRecord], references: Mapping[str, Any], *, normalize=None, cache_path=None,
                 environment=None) -> None:
        self.records = records
        self.environment = environment
        """:class:`~asr_lab.environment.EnvironmentFingerprint` of the machine that ran the comparison."""
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
        return {
            (r.system, r.utterance, r.repeat): score(r.trace, self.references[r.utterance], normalize=norm)
            for r in self.records
            if r.trace is not None and r.utterance in self.references
        }

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
                   "failed": sum(not r.ok for r in mine), **row}
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

    def table(self, columns: Optional[list[str]] = None):
        """The summary's headline columns, for printing."""
        cols = columns or ["utterances", "failed", "wer", "cer", "latency_p50", "latency_p90", "first_word_latency",
                           "finish_delay", "normalized_erasure", "rtf"]
        return self.summary[[c for c in cols if c in self.summary.columns]]

    def to_files(self, out_dir: Union[str, os.PathLike]) -> Path:
        """Write ``summary.csv``, ``utterances.csv``, ``traces/*.jsonl`` and ``summary.md`` to ``out_dir``."""
        out = Path(out_dir)
        (out / "traces").mkdir(parents=True, exist_ok=True)
        self.summary.to_csv(out / "summary.csv")
        self.utterances.to_csv(out / "utterances.csv", index=False)
        for (system, utt, rep), trace in self.traces.items():
            trace.to_jsonl(out / "traces" / f"{_safe(system)}__{_safe(utt)}__{rep}.jsonl")
        (out / "summary.md").write_text(self.markdown())
        if self.environment is not None:
            (out / "environment.json").write_text(json.dumps(self.environment.to_dict(), indent=2))
        return out

    def markdown(self) -> str:
        """The headline table as Markdown, with the failures listed under it."""
        table = self.table()
        head = "| system | " + " | ".join(table.columns) + " |\n|---|" + "---|" * len(table.columns) + "\n"
        body = "".join(
            f"| {system} | " + " | ".join(_fmt(v) for v in row) + " |\n" for system, row in table.iterrows()
        )
        notes = "".join(f"- {r.system} / {r.utterance} (repeat {r.repeat}): {r.error}\n" for r in self.failures)
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

    def plot_stability(self, utterance: Optional[str] = None, **kwargs):
        """:func:`asr_lab.plots.stability_over_time` of one utterance."""
        from asr_lab import plots

        return plots.stability_over_time(self, utterance, **kwargs)

    def __repr__(self) -> str:
        return f"Results({len(self.systems)} systems, {len(self.references)} utterances, {len(self.records)} runs, {len(self.failures)} failed)"

    def _repr_html_(self) -> str:
        return self.table().to_html(float_format=lambda v: f"{v:.3f}")


def _accounting(results: "Results") -> str:
    """One line per system: the clock and the compute measure its runs used (``replay.compute``)."""
    seen = {}
    for r in results.records:
        if r.trace is not None:
            seen.setdefault(r.system, set()).add(f"clock {r.trace.meta.get('clock')}, compute {r.trace.meta.get('compute', 'wall')}")
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
    """The config as a plain dict and its step (``min_chunk_size``, with the backend's own
    default), checked now with its backend's config class so that a typo fails before hours
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
    return payload, parsed.min_chunk_size


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
    return hashlib.sha256(identity.encode()).hexdigest()[:16] + ":" + hashlib.sha256(blob.encode()).hexdigest()[:24]


def _read_cache(path: Path) -> dict[str, RunRecord]:
    records: dict[str, RunRecord] = {}
    if not path.exists():
        return records
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = RunRecord.from_json(line)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            warnings.warn(f"{path}:{n}: skipping an unreadable run record ({exc}); it will be run again", RuntimeWarning)
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
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


def _isnan(v) -> bool:
    return isinstance(v, float) and v != v


def _fmt(v) -> str:
    if v is None or _isnan(v):
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)
