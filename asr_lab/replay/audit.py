"""Impossible or suspicious events in a replay trace, listed so a number is never trusted blindly.

A latency or WER computed from a broken trace is wrong without looking wrong. :func:`audit`
(also ``Trace.audit()``) checks each emission and step against what a causal streaming
recogniser can do, and returns one :class:`Finding` per problem:

=========================  ====================================================================
kind                       condition (``tol`` = ``tolerance`` seconds)
=========================  ====================================================================
``before_audio``           an emission (or one of its words) ends after the audio fed when it
                           was emitted: ``end > audio_fed + tol`` — text about sound the engine
                           had not received (causality broken, or a timestamp bug)
``emitted_before_fed``     ``emitted_at < audio_fed − tol`` on a computation-aware clock: the
                           answer is stamped before the audio it answered had arrived
``out_of_order``           ``emitted_at`` goes backwards, an emission starts before the previous
                           one started, a word starts before the previous word, or a span ends
                           before it starts
``overlap``                committed audio spans overlap: ``start < previous end − tol``
``past_audio_end``         an emission or word ends after the stream: ``end > duration + tol``
``zero_length``            a committed word with ``end − start ≤ 0`` (a "ghost word" at a buffer cut)
``finish_only``            text was committed only by ``finish()``: nothing was streamed
``latency_spike``          an emission whose latency ``emitted_at − end`` exceeds
                           ``max(spike_factor × median, median + spike_sec)`` of the trace's
                           emissions, or a step whose compute exceeds the same bound on step
                           compute times (a stall: contention, a temperature fallback...)
``error``                  the processor raised (``trace.error``)
=========================  ====================================================================

The first six are impossible for a correct replay of a causal engine; ``finish_only`` and
``latency_spike`` are suspicious, not wrong. ``compare`` counts findings per system
(``audit_findings`` in :attr:`asr_lab.Results.summary`).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["AUDIT_KINDS", "Finding", "audit"]

AUDIT_KINDS = (
    "before_audio",
    "emitted_before_fed",
    "out_of_order",
    "overlap",
    "past_audio_end",
    "zero_length",
    "finish_only",
    "latency_spike",
    "error",
)


@dataclass(frozen=True)
class Finding:
    """One problem in a trace: its ``kind`` (see the module table), what and where.

    ``emission``: index into ``trace.emissions`` (``None`` when not about one emission);
    ``step``: index of the replay step, when known; ``at``: stream time it concerns.
    """

    kind: str
    message: str
    emission: int | None = None
    step: int | None = None
    at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"emission {self.emission}" if self.emission is not None else f"step {self.step}" if self.step is not None else "trace"
        return f"[{self.kind}] {where}: {self.message}"


def audit(trace: Any, *, tolerance: float = 0.05, spike_factor: float = 4.0, spike_sec: float = 2.0) -> list[Finding]:
    """Every impossible or suspicious event of ``trace`` (a :class:`~asr_lab.replay.Trace`).

    ``tolerance``: seconds of slack for time comparisons (timestamp rounding, frame
    quantisation); ``spike_factor``/``spike_sec``: the latency-spike bound (module doc).
    An empty list means nothing was found.
    """
    if not hasattr(trace, "emissions") or not hasattr(trace, "steps"):
        raise TypeError(f"audit() takes an asr_lab Trace, got {type(trace).__name__}")
    for name, value in (("tolerance", tolerance), ("spike_factor", spike_factor), ("spike_sec", spike_sec)):
        if not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name}={value!r} must be a number >= 0")
    out: list[Finding] = []
    aware = trace.meta.get("clock") != "unaware"
    duration = trace.duration if trace.meta.get("duration") is not None else None
    prev = None
    prev_word_start = None
    for k, e in enumerate(trace.emissions):
        where = dict(emission=k, step=e.step, at=e.emitted_at)
        if e.end < e.start:
            out.append(Finding("out_of_order", f"ends before it starts ({e.start:.3f} > {e.end:.3f} s)", **where))
        if e.end > e.audio_fed + tolerance:
            out.append(Finding("before_audio", f"ends at {e.end:.3f} s but only {e.audio_fed:.3f} s of audio had been fed", **where))
        if aware and e.emitted_at < e.audio_fed - tolerance:
            out.append(Finding("emitted_before_fed", f"emitted at {e.emitted_at:.3f} s, before its audio up to {e.audio_fed:.3f} s arrived", **where))
        if duration is not None and e.end > duration + tolerance:
            out.append(Finding("past_audio_end", f"ends at {e.end:.3f} s, after the stream's end at {duration:.3f} s", **where))
        if prev is not None:
            if e.emitted_at < prev.emitted_at:
                out.append(Finding("out_of_order", f"emitted at {e.emitted_at:.3f} s, before emission {k - 1} ({prev.emitted_at:.3f} s)", **where))
            if e.start < prev.start - tolerance:
                out.append(Finding("out_of_order", f"starts at {e.start:.3f} s, before emission {k - 1} started ({prev.start:.3f} s)", **where))
            elif e.start < prev.end - tolerance:
                out.append(Finding("overlap", f"starts at {e.start:.3f} s, inside emission {k - 1} ({prev.start:.3f}–{prev.end:.3f} s)", **where))
        for a, b, w in e.words or ():
            if b - a <= 0:
                out.append(Finding("zero_length", f"word {w!r} has no duration ({a:.3f}–{b:.3f} s)", **where))
            if b > e.audio_fed + tolerance and not e.end > e.audio_fed + tolerance:
                out.append(Finding("before_audio", f"word {w!r} ends at {b:.3f} s but only {e.audio_fed:.3f} s had been fed", **where))
            if duration is not None and b > duration + tolerance and not e.end > duration + tolerance:
                out.append(Finding("past_audio_end", f"word {w!r} ends at {b:.3f} s, after the stream's end", **where))
            if prev_word_start is not None and a < prev_word_start - tolerance:
                out.append(Finding("out_of_order", f"word {w!r} starts at {a:.3f} s, before the previous word ({prev_word_start:.3f} s)", **where))
            prev_word_start = a
        prev = e

    streamed = [e for e in trace.emissions if not e.final and e.text.strip()]
    at_finish = [e for e in trace.emissions if e.final and e.text.strip()]
    if at_finish and not streamed:
        n = sum(len(e.text.split()) for e in at_finish)
        out.append(Finding("finish_only", f"all {n} words were committed by finish(); nothing was streamed", emission=trace.emissions.index(at_finish[0]), at=at_finish[0].emitted_at))

    latencies = [e.emitted_at - e.end for e in trace.emissions]
    if len(latencies) >= 3:
        bound = _spike_bound(latencies, spike_factor, spike_sec)
        for k, (e, lat) in enumerate(zip(trace.emissions, latencies)):
            if lat > bound:
                out.append(Finding("latency_spike", f"latency {lat:.2f} s (bound {bound:.2f} s from the median {statistics.median(latencies):.2f} s)", emission=k, step=e.step, at=e.emitted_at))
    computes = [s.compute_sec for s in trace.steps]
    if len(computes) >= 3:
        bound = _spike_bound(computes, spike_factor, spike_sec)
        for s in trace.steps:
            if s.compute_sec > bound:
                out.append(Finding("latency_spike", f"one call computed {s.compute_sec:.2f} s (bound {bound:.2f} s from the median {statistics.median(computes):.2f} s)", step=s.index, at=s.returned_at))
    if getattr(trace, "error", None) is not None:
        out.append(Finding("error", str(trace.error), step=trace.error.step, at=trace.error.at))
    return out


def _spike_bound(values: list[float], factor: float, extra: float) -> float:
    med = statistics.median(values)
    return max(factor * med, med + extra)
