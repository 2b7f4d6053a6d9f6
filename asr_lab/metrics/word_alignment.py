"""Shared building blocks of the metrics: the word aligner, summary statistics, input checks.

* :func:`align_words` — a minimum-edit-distance alignment of two token sequences, used by
  :mod:`asr_lab.metrics.latency` to find which hypothesis word is which reference word.
* :class:`Summary` / :func:`summarize` — count, mean, p50, p90, max of a list of numbers.
* Private checks (``_check_*``) that turn bad user input into errors that name the value,
  say what is allowed and how to fix it (never ``assert``).

Nothing here imports jiwer; numpy is the only dependency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["AlignedPair", "Summary", "align_words", "summarize"]

Op = Literal["match", "substitution", "deletion", "insertion"]

# A cost is encoded as one integer: _EDIT * (number of edits) - (number of exact matches).
# Minimising it finds a minimum-edit alignment and, among those, one with the most matches.
_EDIT = 1 << 20


@dataclass(frozen=True)
class AlignedPair:
    """One step of an alignment.

    ``ref_index`` / ``hyp_index`` index the two input sequences; one of them is ``None`` for
    a deletion (reference word with no hypothesis word) or an insertion (hypothesis word
    with no reference word). ``op`` is ``"match"`` only when the two tokens are equal.
    """

    op: Op
    ref_index: int | None
    hyp_index: int | None


def align_words(*, reference: Sequence[str], hypothesis: Sequence[str]) -> list[AlignedPair]:
    """Align two token sequences with the fewest edits, preferring exact matches and unbroken runs.

    What
        A Levenshtein alignment (Levenshtein 1966; the same edit distance as WER) of
        ``reference`` and ``hypothesis``: substitutions, deletions and insertions each cost 1,
        an exact match costs 0. Compare tokens already normalised
        (:class:`asr_lab.metrics.TextNormalizer`).

    Formula
        ``D[i][j] = min(D[i-1][j] + 1, D[i][j-1] + 1, D[i-1][j-1] + (r_i != h_j))``, the
        total ``D[m][n]`` equals the WER numerator ``S + D + I`` (tests check it against
        jiwer). Ties between alignments of equal cost are broken in two stages:

        1. the alignment with the most exact matches wins (so more words get a latency);
        2. among those, the backtrace keeps runs unbroken: after a diagonal step it prefers
           another diagonal step; after a gap it prefers continuing the same kind of gap.
           This is the idea of "Continuous Levenshtein Alignment" of ufal/asr_latency
           (Macháček & Polák, CUNI submission to IWSLT 2025, Sec. 5.1): a streaming
           hypothesis ``"the dog"`` against ``"the cat the dog"`` aligns to the *second*
           ``"the"``, not to a scattered first one.

    Source
        ufal/asr_latency (https://github.com/ufal/asr_latency) aligns characters and keeps
        substitutions; asr_lab aligns normalised *words* and the latency metrics use only
        exact matches (``op == "match"``). Own implementation: each DP row is computed with
        numpy, the left-to-right insertion chain as a running minimum.

    Cost: O(len(reference) × len(hypothesis)) time and 8 bytes per cell of memory
    (2,000 × 2,000 words ≈ 32 MB, well under a second); segment longer streams first.
    """
    ref = _check_tokens(reference, "reference")
    hyp = _check_tokens(hypothesis, "hypothesis")
    m, n = len(ref), len(hyp)
    if m == 0 or n == 0:
        return [AlignedPair("deletion", i, None) for i in range(m)] + [
            AlignedPair("insertion", None, j) for j in range(n)
        ]

    vocab: dict[str, int] = {}
    ref_ids = np.array([vocab.setdefault(w, len(vocab)) for w in ref], dtype=np.int64)
    hyp_ids = np.array([vocab.setdefault(w, len(vocab)) for w in hyp], dtype=np.int64)

    steps = np.arange(n + 1, dtype=np.int64) * _EDIT
    dp = np.empty((m + 1, n + 1), dtype=np.int64)
    dp[0] = steps
    for i in range(1, m + 1):
        prev = dp[i - 1]
        diag_cost = np.where(hyp_ids == ref_ids[i - 1], -1, _EDIT)
        best = np.empty(n + 1, dtype=np.int64)
        best[0] = prev[0] + _EDIT
        best[1:] = np.minimum(prev[1:] + _EDIT, prev[:-1] + diag_cost)
        # insertions chain left to right: row[j] = min_k<=j best[k] + (j-k)*EDIT
        dp[i] = np.minimum.accumulate(best - steps) + steps

    pairs: list[AlignedPair] = []
    i, j = m, n
    order = ("diag", "del", "ins")
    while i > 0 and j > 0:
        here = dp[i, j]
        for step in order:
            if step == "diag":
                same = ref[i - 1] == hyp[j - 1]
                if here == dp[i - 1, j - 1] + (-1 if same else _EDIT):
                    pairs.append(AlignedPair("match" if same else "substitution", i - 1, j - 1))
                    i, j = i - 1, j - 1
                    order = ("diag", "del", "ins")
                    break
            elif step == "del":
                if here == dp[i - 1, j] + _EDIT:
                    pairs.append(AlignedPair("deletion", i - 1, None))
                    i -= 1
                    order = ("del", "ins", "diag")
                    break
            elif here == dp[i, j - 1] + _EDIT:
                pairs.append(AlignedPair("insertion", None, j - 1))
                j -= 1
                order = ("ins", "del", "diag")
                break
        else:  # pragma: no cover - the DP always has a predecessor
            raise RuntimeError(f"alignment backtrace is stuck at ({i}, {j}); please report this bug")
    pairs.extend(AlignedPair("deletion", k, None) for k in range(i - 1, -1, -1))
    pairs.extend(AlignedPair("insertion", None, k) for k in range(j - 1, -1, -1))
    pairs.reverse()
    return pairs


@dataclass(frozen=True)
class Summary:
    """Count, mean, median, 90th percentile and maximum of a set of values (seconds, counts).

    Percentiles are numpy's default (linear interpolation between closest ranks, Hyndman &
    Fan type 7). With no values, ``count`` is 0 and every statistic is ``nan``.
    """

    count: int
    mean: float
    p50: float
    p90: float
    max: float

    def to_dict(self, prefix: str = "") -> dict[str, float]:
        """Flat dict: ``{prefix + "count": ..., prefix + "mean": ..., ...}``."""
        return {
            f"{prefix}count": self.count,
            f"{prefix}mean": self.mean,
            f"{prefix}p50": self.p50,
            f"{prefix}p90": self.p90,
            f"{prefix}max": self.max,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], prefix: str = "") -> Summary:
        """Inverse of :meth:`to_dict` with the same ``prefix``."""
        return cls(
            count=int(data[f"{prefix}count"]),
            mean=float(data[f"{prefix}mean"]),
            p50=float(data[f"{prefix}p50"]),
            p90=float(data[f"{prefix}p90"]),
            max=float(data[f"{prefix}max"]),
        )


def summarize(values: Sequence[float]) -> Summary:
    """Summary statistics of ``values``.

    Formula: mean = Σv / n; p50, p90 = ``numpy.percentile(v, [50, 90])`` (linear
    interpolation); max = max v. Empty input gives count 0 and ``nan`` statistics (there is
    no meaningful latency of zero words; ``nan`` is skipped by pandas' means).
    """
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan)
    p50, p90 = np.percentile(arr, [50, 90])
    return Summary(int(arr.size), float(arr.mean()), float(p50), float(p90), float(arr.max()))


# --------------------------------------------------------------------------------------
# input checks shared by the metric modules (private)


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a str, got {type(value).__name__} {_show(value)}; "
            "pass the transcript as one string (join a list of words with ' ')"
        )
    return value


def _check_tokens(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        raise TypeError(
            f"{name} must be a sequence of tokens (list of str), got the str {_show(value)}; "
            "split it first, e.g. text.split()"
        )
    try:
        tokens = list(value)
    except TypeError:
        raise TypeError(
            f"{name} must be a sequence of tokens (list of str), got {type(value).__name__} {_show(value)}"
        ) from None
    for k, tok in enumerate(tokens):
        if not isinstance(tok, str):
            raise TypeError(f"{name}[{k}] must be a str token, got {type(tok).__name__} {_show(tok)}")
    return tokens


def _check_time(value: Any, name: str, *, allow_negative: bool = False) -> float:
    """A finite number of seconds (≥ 0 unless ``allow_negative``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"{name} must be a number of seconds, got {type(value).__name__} {_show(value)}; pass a float such as 1.25"
        )
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number of seconds, got {out!r}; drop or repair that entry")
    if out < 0 and not allow_negative:
        raise ValueError(
            f"{name} must be >= 0 seconds (times are measured from the start of the stream), "
            f"got {out!r}; shift the times so the stream starts at 0"
        )
    return out


def _field(obj: Any, key: str, where: str, *, required: bool = True, default: Any = None) -> Any:
    """``obj[key]`` for a mapping, ``obj.key`` otherwise."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
    elif hasattr(obj, key):
        return getattr(obj, key)
    if required:
        kind = "dict" if isinstance(obj, dict) else type(obj).__name__
        raise TypeError(f"{where} has no {key!r} ({kind} {_show(obj)}); give it a {key!r} key or attribute")
    return default
