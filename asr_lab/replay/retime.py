"""Re-timing a recorded run: "the same run on a 2× slower machine" without running the engine.

A virtual-clock trace records, for every step, what audio was fed and what the call cost
(elapsed, calling-thread CPU and process CPU; :class:`~asr_lab.replay.Step`). Given a
new ``slowdown`` (or another cost measure), :func:`retime` runs the virtual clock again
over those recorded costs and restamps every emission and partial with the time its step
now returns at.

When it is exact
----------------
The engine's answers depend on the audio it was fed at each step, not on time. On the
virtual clock, though, the *feed schedule* depends on compute: when a call ends after the
next chunk is due, the next step is fed everything that arrived meanwhile (more than
``chunk_sec``), and the engine then sees different chunks. So re-timing is exact exactly
when every step is fed the same samples as in the recorded run — in particular whenever the
engine keeps up at every step in both runs (each call returns before the next chunk
arrives). :func:`retime` simulates the schedule and raises :class:`RetimeError`, naming the
step, as soon as a step would be fed differently; then only a re-run
(``replay(..., slowdown=...)``) is faithful. Engines whose output does not depend on how the
audio was chunked could be re-timed beyond that point, but asr_lab cannot know that, so it
does not. It also assumes each call's cost scales by ``slowdown`` (a uniformly slower CPU).

Beyond that point :func:`retime` can re-run instead: given ``processor=`` (and ``audio=`` when
the trace's source is not a file), a run whose schedule would change is replayed again with the
recorded settings at the new ``slowdown`` (``meta["retimed_by"] == "re-run"``). Under a cost
profile (``compute="profile"``) that re-run is exact and the same on every machine; and a
profile trace can be re-timed with *another* machine's profile (``profile=``): each step's
recorded features give its cost there (:mod:`asr_lab.replay.profile`).

Unaware-clock traces do not depend on compute at all (returned unchanged); wall-clock
traces were timed by real waiting and cannot be re-timed (raise).

``asr_lab.replay.retime(trace, slowdown=2)`` and ``from asr_lab.replay import retime`` are the same function.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from asr_lab.core.protocols import SAMPLE_RATE
from asr_lab.replay.trace import Trace

__all__ = ["retime", "retime_results", "RetimeError"]


class RetimeError(ValueError):
    """The recorded run cannot be re-timed exactly (its feed schedule would change)."""


def retime(trace: Trace, slowdown: float = 1.0, *, compute: Optional[str] = None, profile: Any = None,
           processor: Any = None, audio: Any = None) -> Trace:
    """A copy of ``trace`` re-timed as if each call cost ``slowdown`` × its recorded cost.

    ``compute``: the cost measure to re-time with (``"wall"``, ``"thread"``, ``"process"``,
    ``"profile"``; default: the one the run used, ``meta["compute"]``). ``profile``: with
    ``compute="profile"``, the cost profile (path or :class:`~asr_lab.replay.profile.CostProfile`)
    whose model prices each recorded step's features (default: the costs the run was charged).
    ``slowdown`` is relative to the measured costs, whatever ``slowdown`` the recorded run used.
    When a step would be fed different audio (see the module docstring) it raises
    :class:`RetimeError`, or, given ``processor`` (the engine that made the trace; ``audio``
    when the trace's source is not a file), replays it again at this ``slowdown``.
    """
    if not (isinstance(slowdown, (int, float)) and slowdown > 0):
        raise ValueError(f"slowdown={slowdown!r} must be a positive number (2.0 = a machine half as fast)")
    try:
        return _retime(trace, slowdown, compute, profile)
    except RetimeError:
        if processor is None:
            raise
        return _rerun(trace, slowdown, compute, profile, processor, audio)


def _rerun(trace: Trace, slowdown: float, compute: Optional[str], profile: Any, processor: Any, audio: Any) -> Trace:
    """The recorded run replayed again at ``slowdown`` with its recorded settings."""
    from pathlib import Path

    from asr_lab.replay.replayer import replay

    meta = trace.meta
    if audio is None:
        source = meta.get("source")
        if not (isinstance(source, str) and Path(source).is_file()):
            raise RetimeError(f"re-timing needs a re-run, and the trace's source {source!r} is not a file: pass audio=")
        audio = source
    scope = compute or meta.get("compute_asked") or meta.get("compute")
    if scope == "profile" and profile is None:
        src = (meta.get("compute_profile") or {}).get("source")
        if not src:
            raise RetimeError("re-timing a profile run needs its profile: pass profile= (the .json it ran with)")
        profile = src
    kept = {k: meta[k] for k in ("system", "utterance", "repeat") if k in meta}
    out = replay(processor, audio, clock="virtual", chunk_sec=meta["chunk_sec"], speed=float(meta.get("speed", 1.0)),
                 slowdown=float(slowdown) * float(meta.get("slowdown", 1.0)), compute=scope,
                 start_at=float(meta.get("start_at", 0.0)), separator=meta.get("separator"),
                 profile=profile if scope == "profile" else None, meta=kept)
    out.meta.update(retimed_by="re-run", retimed_from={"slowdown": meta.get("slowdown", 1.0), "compute": meta.get("compute")})
    return out


def _retime(trace: Trace, slowdown: float, compute: Optional[str], profile: Any) -> Trace:
    clock = trace.meta.get("clock")
    if clock == "unaware":
        return copy.deepcopy(trace)
    if clock != "virtual":
        raise RetimeError(
            f"only virtual-clock traces can be re-timed; this one ran on clock={clock!r}, where time passed "
            f"for real. Re-run it with clock='virtual' to get a re-timable trace"
        )
    if trace.error is not None:
        raise RetimeError(f"the recorded run stopped with an error ({trace.error}); re-timing would miss its end")
    speed = float(trace.meta.get("speed", 1.0))
    scope = compute or trace.meta.get("compute", "wall")
    if profile is not None:
        if scope != "profile":
            raise ValueError(f"profile= prices steps under compute='profile', not compute={scope!r}")
        from asr_lab.replay.profile import load_profile

        profile = load_profile(profile)
        identity = trace.meta.get("cost_identity")
        model = profile.engine_for(identity=identity) if identity else None
        if model is None:
            raise RetimeError("this trace records no cost_identity, so no profile entry can price it; re-run it")
        if any(s.features is None for s in trace.steps):
            raise RetimeError("this trace's steps record no features (made by an older asr_lab); re-run it")
        costs = [model.cost(s.features) for s in trace.steps]
    else:
        costs = [_cost(s, scope, trace) for s in trace.steps]  # measured, before speed × slowdown

    chunk = max(1, int(round(float(trace.meta["chunk_sec"]) * SAMPLE_RATE)))
    first = int(round(float(trace.meta.get("start_at", 0.0)) * SAMPLE_RATE))
    end = first + int(round(trace.duration * SAMPLE_RATE))
    t = first / SAMPLE_RATE
    returned = []
    for step, cost in zip(trace.steps, costs):
        fed = int(round(step.fed_from * SAMPLE_RATE))
        recorded_until = int(round(step.fed_until * SAMPLE_RATE))
        if step is not trace.steps[-1]:  # the loop's steps; the last one is finish()
            target = min(fed + chunk, end)
            t = max(t, target / SAMPLE_RATE)
            until = min(max(int(t * SAMPLE_RATE), target), end)
            if until != recorded_until:
                raise RetimeError(
                    f"re-timing at slowdown={slowdown} is not exact: step {step.index} would be fed audio up to "
                    f"{until / SAMPLE_RATE:.3f} s instead of the recorded {step.fed_until:.3f} s (the engine "
                    f"{'falls behind' if until > recorded_until else 'catches up'} at this speed), so its answers "
                    f"could differ; re-run with replay(..., clock='virtual', slowdown={slowdown}) instead"
                )
        t += cost * speed * slowdown
        returned.append(t)

    out = copy.deepcopy(trace)
    for step, cost, at in zip(out.steps, costs, returned):
        step.compute_sec, step.returned_at = cost, at
    by_step = {s.index: s for s in out.steps}
    for e in out.emissions:
        e.emitted_at, e.compute_sec = by_step[e.step].returned_at, by_step[e.step].compute_sec
    for p in out.partials:
        p.at = by_step[p.step].returned_at
    out.meta.update(slowdown=float(slowdown), compute=scope, retimed_from={
        "slowdown": trace.meta.get("slowdown", 1.0), "compute": trace.meta.get("compute")})
    if profile is not None:
        out.meta["compute_profile"] = {**profile.describe(), "engine": model.key, "calibrated_as": model.system}
    return out


def _cost(step, scope: str, trace: Trace) -> float:
    """The step's measured cost under ``scope`` (steps record costs before speed × slowdown)."""
    if scope == "cpu":
        raise ValueError("give the measure itself: compute='thread' or 'process' ('cpu' is chosen per run)")
    if scope == "profile":
        if trace.meta.get("compute") != "profile":
            raise ValueError("compute='profile' re-prices recorded steps with profile=PATH; give the profile")
        return float(step.compute_sec)  # the modelled cost the run was charged
    if scope not in ("wall", "thread", "process"):
        raise ValueError(f"compute={scope!r} is not one of 'wall', 'thread', 'process', 'profile'")
    value = getattr(step, f"{scope}_sec")
    if value is None:
        raise RetimeError(f"this trace has no {scope!r} cost per step (recorded before asr_lab stored them); re-run it")
    return float(value)


def retime_results(results, slowdown: float, *, compute: Optional[str] = None):
    """A comparison's :class:`~asr_lab.compare.Results` re-timed run by run with :func:`retime`.

    Runs that cannot be re-timed exactly become failures whose error says why (re-run those
    with ``compare(..., slowdown=...)``); nothing is re-run here.
    """
    from dataclasses import replace

    records = []
    for r in results.records:
        if r.trace is None or not r.ok:
            records.append(r)
            continue
        try:
            records.append(replace(r, trace=retime(r.trace, slowdown, compute=compute)))
        except RetimeError as exc:
            records.append(replace(r, trace=None, error=f"RetimeError: {exc}"))
    # the same class as the input (replay sits below compare, so it does not import Results)
    return type(results)(records, results.references, normalize=results.normalize,
                   environment=getattr(results, "environment", None))
