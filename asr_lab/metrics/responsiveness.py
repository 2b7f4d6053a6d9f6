"""What a user watching the live transcript sees: first visible text, finalization, lag behind the source.

WhisperLiveKit's newer benchmark (schema 3.1) feeds audio at absolute deadlines and reports,
per stream, when the first *visible* text appeared (partial or committed), when the first
*committed* text appeared, how long after the end of the audio the final result came
(finalization), and how far the transcript lags behind the end of the source. asr_lab had
the committed first-word latency and ``finish_delay`` (last text after the audio end); this
module adds the rest, from a trace alone (times on the trace's clock, stream seconds).

Definitions (``D`` = audio duration; a step ``k`` returns at ``returned_at[k]``)
    ``first_visible_at``  = min(emitted_at of a committed text, ``at`` of a non-blank partial)
    ``first_committed_at`` = min emitted_at over committed emissions with text
    ``first_visible_latency`` / ``first_committed_latency`` = those − end of the first
        reference word (when the reference is timed), as ``first_word_latency`` is
    ``finalization_sec`` = returned_at of the last step (``finish()`` included) − D: how long
        after the speaker stopped everything is final, even when the last call returned
        nothing (unlike ``finish_delay``, which looks at the last text only)
    ``source_lag`` at step k (only steps with returned_at ≤ D, while the source still plays):
        ``min(returned_at[k], D) − committed_end(returned_at[k])``, where committed_end(t) is
        the largest ``end`` of the committed emissions that appeared by t (0 before any).
        Silence in the source counts as lag until text after it is committed; compare
        systems on the same audio.
    ``source_lag_slope`` = least-squares slope of source_lag against returned_at (seconds
        of lag per second of stream): about 0 for an engine that keeps up, > 0 when the lag
        grows along the stream (an engine slower than real time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from asr_lab.metrics.word_alignment import Summary, summarize

__all__ = ["Responsiveness", "responsiveness"]


@dataclass(frozen=True)
class Responsiveness:
    """The display timings of one stream (seconds; ``None`` when not computable). Formulas: module doc."""

    first_visible_at: float | None
    first_committed_at: float | None
    first_visible_latency: float | None
    first_committed_latency: float | None
    finalization_sec: float | None
    source_lag: Summary
    source_lag_slope: float | None

    def to_dict(self) -> dict[str, Any]:
        """One flat row: the scalars, and ``source_lag_mean``, ``source_lag_p50``, ``source_lag_p90``, ``source_lag_max``..."""
        row = {
            "first_visible_at": self.first_visible_at,
            "first_committed_at": self.first_committed_at,
            "first_visible_latency": self.first_visible_latency,
            "first_committed_latency": self.first_committed_latency,
            "finalization_sec": self.finalization_sec,
            "source_lag_slope": self.source_lag_slope,
        }
        row.update(self.source_lag.to_dict(prefix="source_lag_"))
        return row


def _first_reference_end(reference: Any) -> float | None:
    words = reference.get("words") if isinstance(reference, dict) else getattr(reference, "words", None)
    if not words:
        return None
    first = words[0]
    end = first.get("end") if isinstance(first, dict) else first[1]
    return float(end)


def responsiveness(trace: Any, reference: Any = None) -> Responsiveness:
    """Display timings of ``trace`` (a :class:`~asr_lab.replay.Trace`); ``reference`` (an
    utterance-like object or dict with ``words``) gives the latencies of the first texts."""
    duration = float(trace.duration)
    committed = [e for e in trace.emissions if e.text.strip()]
    first_committed = min((e.emitted_at for e in committed), default=None)
    partial_times = [p.at for p in trace.partials if p.text.strip()]
    first_visible = min([t for t in [first_committed, *partial_times] if t is not None], default=None)
    ref_end = None if reference is None else _first_reference_end(reference)

    def after_first_word(t: float | None) -> float | None:
        return None if t is None or ref_end is None else t - ref_end

    steps = list(trace.steps)
    finalization = steps[-1].returned_at - duration if steps and duration > 0 else None
    by_time = sorted(committed, key=lambda e: e.emitted_at)
    times, lags = [], []
    for step in steps:
        t = step.returned_at
        if t > duration:
            continue
        covered = max((e.end for e in by_time if e.emitted_at <= t), default=0.0)
        times.append(t)
        lags.append(min(t, duration) - covered)
    slope = float(np.polyfit(times, lags, 1)[0]) if len(set(times)) >= 2 else None
    return Responsiveness(
        first_visible_at=first_visible,
        first_committed_at=first_committed,
        first_visible_latency=after_first_word(first_visible),
        first_committed_latency=after_first_word(first_committed),
        finalization_sec=finalization,
        source_lag=summarize(lags),
        source_lag_slope=slope,
    )
