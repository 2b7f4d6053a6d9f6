"""Lag behind the source: does an engine keep up with live audio, or fall further behind?

At loop step ``i`` the engine has been given audio up to stream time ``f_i`` and returns at
stream time ``t_i`` (both on the replay's clock). Its *lag* is ``l_i = t_i − f_i``: how long
after the newest audio it was given the answer came. An engine that keeps up has a bounded
lag (about one call's cost, whatever the stream's length); one that cannot (RTF > 1, or
re-decoding a growing buffer) is fed ever bigger chunks and its lag grows along the stream.
The *lag slope* is the least-squares slope of ``l_i`` on ``f_i`` over every loop step of the
runs given (``finish()`` excluded)::

    slope = Σ (f_i − f̄)(l_i − l̄) / Σ (f_i − f̄)²        (seconds of lag per second of audio)

A stream on which it is above :data:`FALLS_BEHIND_SLOPE` falls behind: a median latency
alone hides that the latency of the last words grows with the stream's length. Only
computation-aware clocks (wall, virtual) have a lag; on the unaware clock it is 0.
"""

from __future__ import annotations

import math
from typing import Iterable

__all__ = ["FALLS_BEHIND_SLOPE", "lag_points", "lag_slope", "falls_behind"]

FALLS_BEHIND_SLOPE = 0.05
"""Lag growing by more than 50 ms per second of audio (3 s a minute) counts as falling behind."""


def lag_points(trace) -> list[tuple[float, float]]:
    """``(f_i, l_i)`` of every loop step of ``trace`` (the last step, ``finish()``, left out)."""
    return [(s.fed_until, s.returned_at - s.fed_until) for s in trace.steps[:-1]]


def lag_slope(traces: Iterable) -> float:
    """Pooled least-squares slope of lag on stream position over ``traces`` (NaN with fewer than
    3 steps or no spread in position)."""
    pts = [p for t in traces if t is not None for p in lag_points(t)]
    if len(pts) < 3:
        return float("nan")
    fm = sum(f for f, _ in pts) / len(pts)
    lm = sum(l for _, l in pts) / len(pts)
    sxx = sum((f - fm) ** 2 for f, _ in pts)
    if sxx <= 0:
        return float("nan")
    return sum((f - fm) * (l - lm) for f, l in pts) / sxx


def falls_behind(slope: float, rtf: float = float("nan")) -> bool:
    """Whether an engine with this lag slope (and real-time factor) cannot keep up: slope above
    :data:`FALLS_BEHIND_SLOPE`, or an RTF above 1 (more compute than audio cannot keep up)."""
    return (not math.isnan(slope) and slope > FALLS_BEHIND_SLOPE) or (not math.isnan(rtf) and rtf > 1.0)
