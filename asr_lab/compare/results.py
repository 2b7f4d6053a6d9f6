"""Reading a comparison: :class:`Results`, its tables, significance tests, plots and files.

Nothing here runs an engine: :class:`Results` is built from :class:`~asr_lab.compare.records.RunRecord`
objects (by :func:`~asr_lab.compare.compare`, or from a cache file) and scores them on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from asr_lab.compare.records import RunRecord
from asr_lab.replay import Trace
from asr_lab.replay.validate import trace_problems

__all__ = ["Results"]

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
        from asr_lab.metrics import score
        from asr_lab.metrics.normalizers import DEFAULT_NORMALIZER

        norm = DEFAULT_NORMALIZER if self.normalize is None else self.normalize
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

        from asr_lab.metrics.lag import falls_behind, lag_slope

        rows = []
        for system in self.systems:
            mine = [r for r in self.records if r.system == system]
            row = _aggregate([self.scores[k] for k in self._keys(mine)])
            row = {"system": system, "utterances": len({r.utterance for r in mine}), "runs": len(mine),
                   "failed": sum(not r.ok for r in mine), **row,
                   "audit_findings": sum(len(r.trace.audit()) for r in mine if r.trace is not None)}
            aware = [r.trace for r in mine if r.trace is not None and r.trace.meta.get("clock") != "unaware"]
            row["lag_slope"] = lag_slope(aware)
            row["falls_behind"] = falls_behind(row["lag_slope"], row.get("rtf", float("nan")))
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
                           "first_word_latency", "finish_delay", "normalized_erasure", "rtf", "falls_behind",
                           "audit_findings"]
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

    @property
    def normalizer(self) -> str:
        """The name of the normaliser every WER/CER here was computed under (``wer_raw``: none)."""
        from asr_lab.metrics.normalizers import DEFAULT_NORMALIZER, normalizer_name

        return normalizer_name(DEFAULT_NORMALIZER if self.normalize is None else self.normalize)

    def streaming_penalty(self, metric: str = "wer", *, resamples: int = 1000, level: float = 0.95, seed: int = 0):
        """Per system run with ``offline=True``: streaming − offline ``metric`` with its paired bootstrap
        interval and p (:func:`asr_lab.compare.penalty.streaming_penalty`)."""
        from asr_lab.compare.penalty import streaming_penalty

        return streaming_penalty(self, metric, resamples=resamples, level=level, seed=seed)

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
        body += f"\nWER and CER normalised with {self.normalizer!r} (`wer_raw` in summary.csv: without normalisation).\n"
        body += _penalty_markdown(self)
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


def _penalty_markdown(results: "Results") -> str:
    """The streaming-penalty table, when offline twins were run ('' otherwise)."""
    from asr_lab.compare.penalty import OFFLINE_SUFFIX

    if not any(s.endswith(OFFLINE_SUFFIX) for s in results.systems):
        return ""
    try:
        table = results.streaming_penalty()
    except ValueError:
        return ""
    lines = ["", "Streaming penalty (streaming WER − the same engine offline on each whole utterance; paired "
             "bootstrap, 95 %):", "", "| system | utterances | WER streaming | WER offline | penalty [95 % CI] | p | significant |",
             "|---|---|---|---|---|---|---|"]
    for system, row in table.iterrows():
        lines.append(f"| {_cell(system)} | {row['utterances']} | {row['wer_streaming']:.3f} | {row['wer_offline']:.3f} | "
                     f"{row['penalty']:+.3f} [{row['penalty_low']:+.3f}, {row['penalty_high']:+.3f}] | "
                     f"{row['p_value']:.3f} | {'yes' if row['significant'] else 'no'} |")
    return "\n".join(lines) + "\n"


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
           "insertions": words.insertions, "reference_words": words.reference_length, "cer": chars.rate,
           "normalizer": scores[0].normalizer}
    if all(s.wer_raw is not None for s in scores):
        row["wer_raw"] = sum((s.wer_raw for s in scores[1:]), scores[0].wer_raw).rate
    row.update(L.to_dict())
    row.update({"normalized_erasure": S.normalized_erasure, "revisions_per_word": S.revisions.mean,
                "time_to_stable_mean": S.time_to_stable.mean})
    for key in ("first_visible_latency", "first_committed_latency", "finalization_sec", "source_lag_mean",
                "source_lag_max", "source_lag_slope"):  # what a viewer sees: means over utterances
        values = [s.responsiveness.to_dict()[key] for s in scores if s.responsiveness is not None]
        values = [v for v in values if v is not None and not _isnan(v)]
        row[key] = float(np.mean(values)) if values else float("nan")
    for key in scores[0].simultaneous:  # SimulEval's corpus rule: the mean of the utterances' scores
        values = [s.simultaneous[key] for s in scores if key in s.simultaneous and not _isnan(s.simultaneous[key])]
        row[key] = float(np.mean(values)) if values else float("nan")
    return row


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
