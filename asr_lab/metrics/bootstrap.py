"""Confidence intervals and paired significance by bootstrap resampling of utterances.

Three questions, three tools — they are reported side by side and are not interchangeable:

* **Bootstrap interval** (:func:`bootstrap_interval`): *how far could this corpus figure
  move with another test set of the same kind and size?* Utterances are drawn with
  replacement, the corpus figure (WER = Σ errors / Σ reference words; a latency percentile
  of the pooled words) is recomputed on each draw; the interval holds the central
  ``level`` share of those values (percentile bootstrap, Efron & Tibshirani 1993, ch. 13).
* **Paired bootstrap** (:func:`paired_bootstrap`): *is system A really different from B
  on this kind of data?* Both systems are scored on the *same* drawn utterances, so the
  difference A − B varies only with the data, not with which utterances each system
  happened to get. p = 2 · min(share of draws with difference ≤ 0, share ≥ 0), capped at
  1 (Koehn, "Statistical Significance Tests for Machine Translation Evaluation", EMNLP
  2004, adapted to two-sided; Bisani & Ney, "Bootstrap estimates for confidence intervals
  in ASR performance evaluation", ICASSP 2004, for WER).
* **Run-to-run spread** (``repeats`` in :func:`asr_lab.compare`, the ``*_spread``
  columns): *how much does the figure move when the same utterances are run again?* —
  timing noise of the machine (other processes, caches), which a latency on a
  computation-aware clock carries and WER of a deterministic engine does not. The
  bootstrap cannot see it: with repeats, each utterance keeps all its runs (errors summed,
  words pooled) and is resampled as one unit.

Metrics (``metric=``): ``"wer"``, ``"cer"``; ``"<pool>_<stat>"`` with pool one of
``latency``, ``hyp_latency``, ``policy_latency``, ``compute_lag`` and stat one of ``mean``,
``p50``, ``p90``, ``max`` (the pooled per-word values of
:class:`~asr_lab.metrics.LatencyReport`); ``"first_word_latency"``, ``"finish_delay"``
(mean over utterances); ``"rtf"`` (Σ compute / Σ audio); the simultaneous family ``"AL"``,
``"LAAL_CA"``, ... (:func:`~asr_lab.metrics.simuleval_metrics`; mean over utterances, as
SimulEval averages instances). Percentiles are numpy's default
(linear), as in :func:`~asr_lab.metrics.summarize`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from asr_lab.metrics.word_alignment import _show
from asr_lab.metrics.simultaneous import SIMULEVAL_KEYS

__all__ = ["BOOTSTRAP_METRICS", "Interval", "Significance", "bootstrap_interval", "paired_bootstrap"]

_POOLS = ("latency", "hyp_latency", "policy_latency", "compute_lag")
_STATS = ("mean", "p50", "p90", "max")
_SIMUL = tuple(k + s for s in ("", "_CA") for k in SIMULEVAL_KEYS)
BOOTSTRAP_METRICS = (
    ("wer", "cer")
    + tuple(f"{p}_{s}" for p in _POOLS for s in _STATS)
    + ("first_word_latency", "finish_delay", "rtf")
    + _SIMUL
)
"""Names :func:`bootstrap_interval` and :func:`paired_bootstrap` accept."""


@dataclass(frozen=True)
class Interval:
    """A corpus figure with its bootstrap confidence interval.

    ``estimate``: the figure on all utterances; ``low``/``high``: the percentile interval at
    ``level``; ``utterances``: how many were resampled; ``resamples``: how many draws.
    """

    metric: str
    estimate: float
    low: float
    high: float
    level: float
    utterances: int
    resamples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Significance:
    """Paired bootstrap of ``difference = metric(a) − metric(b)`` on the same utterances.

    ``low``/``high``: the interval of the difference at ``level``; ``p_value``: two-sided
    (module doc); ``significant``: the interval excludes 0. ``a_value``/``b_value``: each
    system's figure on all utterances; ``a_spread``/``b_spread``: run-to-run standard
    deviation across repeats (``nan`` without repeats), reported beside because the
    bootstrap does not include it.
    """

    metric: str
    a: str
    b: str
    a_value: float
    b_value: float
    difference: float
    low: float
    high: float
    p_value: float
    level: float
    utterances: int
    resamples: int
    a_spread: float = math.nan
    b_spread: float = math.nan

    @property
    def significant(self) -> bool:
        return not (self.low <= 0.0 <= self.high)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"significant": self.significant}

    def __str__(self) -> str:
        verdict = "significant" if self.significant else "not significant"
        return (
            f"{self.metric}: {self.a} {self.a_value:.4g} − {self.b} {self.b_value:.4g} = {self.difference:+.4g} "
            f"[{self.low:+.4g}, {self.high:+.4g}] at {self.level:.0%}, p = {self.p_value:.3g} ({verdict}; "
            f"{self.utterances} utterances, {self.resamples} resamples)"
        )


# --------------------------------------------------------------------------------------
# per-utterance sufficient statistics


class _Table:
    """What each utterance contributes to ``metric``: counts to sum, or words to pool."""

    def __init__(self, metric: str, per_utterance: Sequence[Sequence[Any]]) -> None:
        self.metric = metric
        self.n = len(per_utterance)
        if metric in ("wer", "cer", "rtf"):
            num, den = [], []
            for runs in per_utterance:
                if metric == "rtf":
                    num.append(sum(_rtf_parts(s)[0] for s in runs))
                    den.append(sum(_rtf_parts(s)[1] for s in runs))
                else:
                    counts = [getattr(s, metric) for s in runs]
                    num.append(sum(c.errors for c in counts))
                    den.append(sum(c.reference_length for c in counts))
            self.num, self.den = np.array(num, float), np.array(den, float)
            self.kind = "ratio"
        elif metric in ("first_word_latency", "finish_delay") or metric in _SIMUL:
            if metric in _SIMUL:
                vals = [[_finite(s.simultaneous.get(metric)) for s in runs] for runs in per_utterance]
            else:
                vals = [[getattr(s.latency, metric) for s in runs] for runs in per_utterance]
            self.num = np.array([sum(v for v in vs if v is not None) for vs in vals], float)
            self.den = np.array([sum(v is not None for v in vs) for vs in vals], float)
            self.kind = "ratio"
        else:
            pool, stat = metric.rsplit("_", 1)
            values, owner = [], []
            for u, runs in enumerate(per_utterance):
                for s in runs:
                    for w in s.latency.words:
                        v = _word_value(w, pool, s.latency.reference_timed)
                        if v is not None:
                            values.append(v)
                            owner.append(u)
            self.values, self.owner, self.stat = np.array(values, float), np.array(owner, int), stat
            self.kind = "pool"

    def value(self, counts: np.ndarray) -> float:
        """The corpus figure when utterance ``u`` is drawn ``counts[u]`` times."""
        if self.kind == "ratio":
            den = float(counts @ self.den)
            return float(counts @ self.num) / den if den > 0 else math.nan
        weights = counts[self.owner]
        vals = np.repeat(self.values, weights)
        if vals.size == 0:
            return math.nan
        if self.stat == "mean":
            return float(vals.mean())
        if self.stat == "max":
            return float(vals.max())
        return float(np.percentile(vals, 50 if self.stat == "p50" else 90))


def _finite(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _rtf_parts(s: Any) -> tuple[float, float]:
    lat = s.latency
    if lat.compute_sec is None or not lat.audio_duration:
        return 0.0, 0.0
    return lat.compute_sec, lat.audio_duration


def _word_value(w: Any, pool: str, reference_timed: bool) -> float | None:
    if pool == "compute_lag" and reference_timed and w.latency is None:
        return None  # as LatencyReport: compute lag over the words that have a latency
    return getattr(w, pool)


def _check(metric: Any, resamples: Any, level: Any) -> None:
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"metric {_show(metric)} cannot be bootstrapped; choose one of {', '.join(BOOTSTRAP_METRICS)}")
    if not isinstance(resamples, int) or isinstance(resamples, bool) or resamples < 10:
        raise ValueError(f"resamples={_show(resamples)} must be a whole number >= 10 (1000 is usual)")
    if not isinstance(level, float) or not 0.0 < level < 1.0:
        raise ValueError(f"level={_show(level)} must be a fraction between 0 and 1, e.g. 0.95")


def _runs(scores: Any, name: str) -> dict[str, list]:
    """``{utterance: [Scores of each repeat]}`` from a mapping, or a list (one run each)."""
    if isinstance(scores, Mapping):
        out = {}
        for k, v in scores.items():
            out[str(k)] = list(v) if isinstance(v, (list, tuple)) else [v]
    elif isinstance(scores, (list, tuple)):
        out = {str(i): [s] for i, s in enumerate(scores)}
    else:
        raise TypeError(
            f"{name} must be {{utterance: Scores or [Scores per repeat]}} or a list of Scores, got {_show(scores)}"
        )
    for k, runs in out.items():
        for s in runs:
            if not hasattr(s, "wer") or not hasattr(s, "latency"):
                raise TypeError(f"{name}[{k!r}] must hold asr_lab Scores (from asr_lab.score), got {_show(s)}")
    if not out:
        raise ValueError(f"{name} is empty: a bootstrap needs at least one scored utterance")
    return out


def _draws(n: int, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)])


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    ok = values[~np.isnan(values)]
    if ok.size == 0:
        return math.nan, math.nan
    low, high = np.percentile(ok, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def bootstrap_interval(
    scores: Any, metric: str = "wer", *, resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of a corpus figure, resampling utterances.

    ``scores``: ``{utterance_id: Scores}`` or ``{utterance_id: [Scores per repeat]}`` (or a
    list of Scores, one per utterance). Same ``seed``, same interval.
    """
    _check(metric, resamples, level)
    runs = _runs(scores, "scores")
    table = _Table(metric, list(runs.values()))
    estimate = table.value(np.ones(table.n, int))
    values = np.array([table.value(c) for c in _draws(table.n, resamples, seed)])
    low, high = _interval(values, level)
    return Interval(metric, estimate, low, high, level, table.n, resamples)


def paired_bootstrap(
    a: Any,
    b: Any,
    metric: str = "wer",
    *,
    names: tuple[str, str] = ("a", "b"),
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    spreads: tuple[float, float] = (math.nan, math.nan),
) -> Significance:
    """Paired bootstrap of ``metric(a) − metric(b)`` over the utterances both systems have.

    ``a``, ``b``: ``{utterance_id: Scores or [Scores per repeat]}``; only utterances scored
    for both are used (their count is in the result). ``spreads``: run-to-run standard
    deviations to report beside (``Results.significance`` fills them from repeats).
    """
    _check(metric, resamples, level)
    ra, rb = _runs(a, "a"), _runs(b, "b")
    common = [u for u in ra if u in rb]
    if not common:
        raise ValueError(f"{names[0]} and {names[1]} share no scored utterance, so they cannot be paired")
    ta = _Table(metric, [ra[u] for u in common])
    tb = _Table(metric, [rb[u] for u in common])
    ones = np.ones(len(common), int)
    va, vb = ta.value(ones), tb.value(ones)
    diffs = np.array([ta.value(c) - tb.value(c) for c in _draws(len(common), resamples, seed)])
    low, high = _interval(diffs, level)
    ok = diffs[~np.isnan(diffs)]
    p = min(1.0, 2 * min(float(np.mean(ok <= 0)), float(np.mean(ok >= 0)))) if ok.size else math.nan
    return Significance(metric, names[0], names[1], va, vb, va - vb, low, high, p, level, len(common), resamples, *spreads)
