"""The replay loop — the one place where audio is streamed into a processor.

Every driver in asr_lab goes through :func:`replay`: the CLI, the comparison runner, the
notebooks, the replay panel, the live-microphone panel and the server (a microphone or a
socket is a :class:`~asr_lab.replay.live.LiveAudio` source arriving in real time).

The loop, step by step
----------------------
1. Warm-up (before the clock starts, as the Whisper-Streaming reference does): the first
   ``warmup_sec`` of the audio go through ``init()`` / ``insert_audio_chunk`` /
   ``process_iter()`` / ``finish()`` (or ``processor.warmup(audio)`` when it has one),
   so one-off costs (lazy model loading, kernel compilation) do not count as latency.
2. ``processor.init(offset=start_at)``; the clock starts at stream time ``start_at``.
3. Repeat until the stream is over:
   a. wait until at least ``chunk_sec`` of audio beyond what was fed exists (or the stream
      ends) — real waiting on the wall clock, a jump on the virtual and unaware clocks;
   b. feed *all* audio available now (more than ``chunk_sec`` when the engine fell behind;
      exactly ``chunk_sec`` on the unaware clock) with ``insert_audio_chunk``;
   c. call ``process_iter()`` (and ``partial()`` when the processor has it), measuring the
      time taken;
   d. stamp the answer with the stream time the call returned at (``Clock.after_call``)
      and record it.
4. ``finish()``, stamped the same way. A processor that raises ends the loop: the trace
   keeps everything emitted before and records the error.

Every answer is checked against the contract (:mod:`asr_lab.replay.validate`) before it is
recorded, and every call has a time limit (:mod:`asr_lab.replay.deadline`): a malformed
answer or a hung call ends the loop the same way, as the trace's error.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
import warnings
from typing import Any, Callable, Optional, Union

import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE, ASRProcessor
from asr_lab.replay.clocks import Clock, make_clock
from asr_lab.replay.compute import Meter, background_cpu_rate, queued_between, resolve_compute, runqueue_wait, upgrade_scope, validate_compute
from asr_lab.replay.profile import step_features
from asr_lab.replay.deadline import DEFAULT_CALL_TIMEOUT_SEC, CallDeadline, check_timeout
from asr_lab.replay.live import LiveAudio
from asr_lab.environment import after_run_conditions, run_conditions
from asr_lab.replay.trace import Emission, PartialSnapshot, ReplayError, Step, Trace
from asr_lab.replay.validate import check_segment, check_words

__all__ = ["replay"]

LIVE_POLL_SEC = 0.1
CPU_SHARE_WARN = 0.25
"""A CPU-accounted run warns when its CPU time is below this fraction of the CPU share the load leaves it."""


MAX_WARMUP_SEC = 60.0  # warm-up wakes the engine; more is a mistake (1e9 s asked for 64 TB of zeros)


def check_warmup(warmup_sec: Any) -> float:
    """``warmup_sec`` as seconds in [0, MAX_WARMUP_SEC], or a ValueError naming the value."""
    if (isinstance(warmup_sec, bool) or not isinstance(warmup_sec, (int, float))
            or not math.isfinite(warmup_sec) or not 0 <= warmup_sec <= MAX_WARMUP_SEC):
        raise ValueError(
            f"warmup_sec={warmup_sec!r} must be seconds from 0 to {MAX_WARMUP_SEC:g} (the audio run through the "
            f"engine before the clock starts); e.g. warmup_sec=1.0, or 0 for none"
        )
    return float(warmup_sec)


def replay(
    processor: ASRProcessor,
    audio,
    *,
    clock: Union[str, Clock] = "virtual",
    chunk_sec: Union[float, str, None] = None,
    speed: float = 1.0,
    slowdown: float = 1.0,
    compute: Optional[str] = None,
    start_at: float = 0.0,
    warmup_sec: float = 1.0,
    separator: Optional[str] = None,
    on_emission: Optional[Callable[[Emission], None]] = None,
    on_partial: Optional[Callable[[PartialSnapshot], None]] = None,
    stop: Optional[threading.Event] = None,
    meta: Optional[dict] = None,
    call_timeout_sec: Optional[float] = DEFAULT_CALL_TIMEOUT_SEC,
    profile=None,
) -> Trace:
    """Stream ``audio`` into ``processor`` on ``clock`` and record every emission.

    ``audio``: a path, an array (float32 16 kHz mono, or anything :func:`asr_lab.load_audio`
    takes), a dataset :class:`~asr_lab.Utterance`, or a :class:`LiveAudio` (then the clock
    must be ``"wall"``).
    ``chunk_sec``: new audio to wait for between calls (default: the processor's
    ``min_chunk_sec``, else 1.0); ``"whole"``: all the audio in one chunk, then one
    ``process_iter()`` and ``finish()`` — the engine run offline on the whole utterance
    (with the unaware clock, the streaming penalty's baseline). ``speed``: stream seconds per wall second.
    ``slowdown``: virtual clock only, multiplies measured compute. ``compute``: how a
    call's cost is measured — ``"cpu"`` (default on the virtual clock: CPU time, so a busy
    machine does not move latencies), ``"wall"`` (elapsed time; the wall clock's only
    choice), ``"thread"``/``"process"`` explicitly, or ``"profile"``: the modelled cost of each
    step from ``profile`` (a cost profile's path or :class:`~asr_lab.replay.profile.CostProfile`,
    matched to the processor by its ``cost_identity``), the same on every machine; see
    :mod:`asr_lab.replay.compute` and :mod:`asr_lab.replay.profile`. Every step records all
    three measures and its features (what it did, :func:`~asr_lab.replay.profile.step_features`). ``start_at``: skip
    the audio before this many seconds; the stream (and ``init(offset)``) starts there.
    ``on_emission`` / ``on_partial`` are called as the text appears (exceptions in them
    are warned about, not raised). ``stop`` ends a live stream early (``finish()`` still
    runs). ``call_timeout_sec``: the longest one processor call may take before the run
    ends with a :class:`~asr_lab.replay.deadline.CallTimeoutError` (``None``: no limit).
    See the module docstring for the loop itself.
    """
    clk = make_clock(clock, speed=speed, slowdown=slowdown)
    compute = validate_compute(compute, clk.name)
    live = isinstance(audio, LiveAudio)
    if live and clk.name != "wall":
        raise ValueError(f"live audio arrives in real time: use clock='wall', not {clk.name!r}")
    whole = chunk_sec == "whole"
    if whole and live:
        raise ValueError("chunk_sec='whole' needs the whole audio at once; live audio arrives in chunks")
    if chunk_sec is None:
        chunk_sec = float(getattr(processor, "min_chunk_sec", 1.0) or 1.0)
    if not whole and not (isinstance(chunk_sec, (int, float)) and 0 < chunk_sec <= 60):
        raise ValueError(
            f"chunk_sec={chunk_sec!r} must be a positive number of seconds up to 60, e.g. 1.0, or 'whole' (one chunk)"
        )
    if not (isinstance(start_at, (int, float)) and start_at >= 0):
        raise ValueError(f"start_at={start_at!r} must be a non-negative number of seconds")
    warmup_sec = check_warmup(warmup_sec)
    call_timeout_sec = check_timeout(call_timeout_sec)
    cost_model = None
    if compute == "profile":
        from asr_lab.replay.profile import load_profile

        if profile is None:
            raise ValueError("compute='profile' needs profile=: the path of a cost profile (configs/profiles/*.json, "
                             "made by asr-lab calibrate) or a CostProfile")
        profile = load_profile(profile)
        cost_model = profile.engine_for(processor)
    elif profile is not None:
        raise ValueError(f"profile= is used by compute='profile' only, not compute={compute!r}; pass compute='profile'")
    for method in ("init", "insert_audio_chunk", "process_iter", "finish"):
        if not callable(getattr(processor, method, None)):
            raise TypeError(f"{type(processor).__name__} is not an ASRProcessor: it has no {method}() method")

    if live:
        samples, source_name, first = None, "live", 0
    else:
        from asr_lab.core.audio import load_audio

        source_name = "array" if isinstance(audio, np.ndarray) else str(getattr(audio, "id", None) or audio)
        samples = load_audio(audio)
        first = int(round(start_at * SAMPLE_RATE))
        if first >= len(samples):
            raise ValueError(
                f"start_at={start_at} s is at or past the end of the audio ({len(samples) / SAMPLE_RATE:.2f} s)"
            )
    if whole:
        chunk_sec = max((len(samples) - first) / SAMPLE_RATE, 1 / SAMPLE_RATE)
    partial_fn = getattr(processor, "partial", None) if callable(getattr(processor, "partial", None)) else None
    words_fn = getattr(processor, "last_words", None) if callable(getattr(processor, "last_words", None)) else None
    if separator is None:
        separator = getattr(getattr(processor, "asr", None), "sep", None)
        separator = " " if separator is None or separator == "" else separator
    trace = Trace(
        meta={
            "processor": type(processor).__name__,
            "clock": clk.name,
            "chunk_sec": float(chunk_sec),
            "speed": float(speed),
            "slowdown": float(slowdown),
            "compute_asked": compute,
            "start_at": float(start_at),
            "duration": 0.0 if live else (len(samples) - first) / SAMPLE_RATE,
            "source": source_name,
            "separator": separator,
            "has_partial": partial_fn is not None,
            "call_timeout_sec": call_timeout_sec,
            **({"cost_identity": processor.cost_identity} if isinstance(getattr(processor, "cost_identity", None), str) else {}),
            **({"compute_profile": {**profile.describe(), "engine": cost_model.key, "calibrated_as": cost_model.system}}
               if cost_model is not None else {}),
            **(meta or {}),
        }
    )
    guard = CallDeadline(call_timeout_sec, type(processor).__name__)
    engine_cpu = _EngineThreadCPU(guard)
    call = engine_cpu.call
    recorder = _Recorder(trace, separator, on_emission, on_partial, words_fn, type(processor).__name__, float(start_at), call)

    # 1. warm-up
    warm = None if live else samples[first : first + int(warmup_sec * SAMPLE_RATE)]
    warm_cost = warm_queued = None
    background = 0.0
    if warmup_sec > 0:
        warm = np.zeros(int(warmup_sec * SAMPLE_RATE), dtype=np.float32) if warm is None else warm
        background = background_cpu_rate() if compute == "cpu" else 0.0
        meter = Meter(engine_cpu)
        queued_before = runqueue_wait()
        try:
            if callable(getattr(processor, "warmup", None)):
                # a processor that knows how to run its engine (VAC's steps would not reach it)
                call(processor.warmup, warm, what="warmup", step=-1)
            else:
                call(lambda: processor.init(offset=0.0), what="init", step=-1)
                call(processor.insert_audio_chunk, warm, what="insert_audio_chunk", step=-1)
                call(processor.process_iter, what="process_iter", step=-1)
                call(processor.finish, what="finish", step=-1)
        except Exception as exc:
            recorder.fail(exc, step=-1, at=start_at)
            guard.close()
            return trace
        warm_cost = meter.stop()
        queued_after = runqueue_wait()
        warm_queued = queued_between(queued_before, queued_after)
        trace.meta["warmup_sec"] = len(warm) / SAMPLE_RATE
        trace.meta["warmup_compute_sec"] = warm_cost.wall
    conditions = run_conditions()
    scope, how = resolve_compute(compute, processor, warm_cost, cores=conditions["threads"].get("usable_cores", 1),
                                 load=conditions.get("load_before"), queued=warm_queued, background=background)
    if cost_model is not None:
        how = f"cost profile {profile.name!r} ({profile.digest}), fitted on {profile.measure}"
    trace.meta.update(compute=scope, compute_chosen_by=how, **conditions)
    charge = _Charger(scope, cost_model, trace)

    step_info = _step_info_fn(processor)
    if step_info is not None:
        step_info()  # drop what the warm-up reported
    # engine compute a processor replayed from recorded answers instead of spending it (asr_lab.policies.record_replay)
    replayed_compute = getattr(processor, "replayed_compute", None)
    replayed_compute = replayed_compute if callable(replayed_compute) else (lambda: 0.0)
    replayed_compute()  # the warm-up's share is not part of the stream
    wall_start = time.perf_counter()
    chunk = max(1, int(round(chunk_sec * SAMPLE_RATE)))
    fed = first  # samples of the stream fed so far (absolute index)
    step = 0
    try:
        # 2. a fresh stream
        call(lambda: processor.init(offset=float(start_at)), what="init", step=0)
        if live:
            # stream time is anchored to the first chunk's arrival, not to this moment:
            # audio queued while the engine loaded or warmed up is already late
            _wait_live(audio, 1, stop)
            clk.start(audio.stream_time_now())
        else:
            clk.start(start_at)
        # 3. the loop
        while True:
            if live:
                until = _wait_live(audio, fed + chunk, stop)
                if until <= fed:
                    break
                new = audio.read()
                until = fed + len(new)
            else:
                if fed >= len(samples) or (stop is not None and stop.is_set()):
                    break
                target = min(fed + chunk, len(samples))
                now = clk.advance_to(target / SAMPLE_RATE)
                until = min(max(int(now * SAMPLE_RATE), target), len(samples)) if clk.aware else target
                new = samples[fed:until]
            meter = Meter(engine_cpu)
            call(processor.insert_audio_chunk, new, what="insert_audio_chunk", step=step)
            out = call(processor.process_iter, what="process_iter", step=step)
            part = call(partial_fn, what="partial", step=step) if partial_fn is not None else None
            cost = meter.stop().plus(replayed_compute())
            info = step_info() if step_info is not None else None
            features = step_features((until - fed) / SAMPLE_RATE, info, final=False)
            compute = charge(cost, features, step)
            returned = clk.after_call(compute, until / SAMPLE_RATE)
            trace.steps.append(Step(step, fed / SAMPLE_RATE, until / SAMPLE_RATE, compute, returned, *_costs(cost), info,
                                    features))
            fed = until
            recorder.emit(out, returned, compute, fed / SAMPLE_RATE, step)
            if partial_fn is not None:
                recorder.partial(part, returned, step, fed / SAMPLE_RATE)
            step += 1
        # 4. the end of the stream
        meter = Meter(engine_cpu)
        out = call(processor.finish, what="finish", step=step)
        cost = meter.stop().plus(replayed_compute())
        info = step_info() if step_info is not None else None
        features = step_features(0.0, info, final=True)
        compute = charge(cost, features, step)
        returned = clk.after_call(compute, fed / SAMPLE_RATE)
        trace.steps.append(Step(step, fed / SAMPLE_RATE, fed / SAMPLE_RATE, compute, returned, *_costs(cost), info,
                                features))
        recorder.emit(out, returned, compute, fed / SAMPLE_RATE, step, final=True)
        if partial_fn is not None:
            recorder.partial(None, returned, step)
    except KeyboardInterrupt:
        recorder.fail(KeyboardInterrupt("interrupted by the user"), step, fed / SAMPLE_RATE)
    except Exception as exc:
        recorder.fail(exc, step, fed / SAMPLE_RATE)
    guard.close()
    if live:
        trace.meta["duration"] = (fed - first) / SAMPLE_RATE
        trace.meta["dropped_chunks"] = audio.dropped_chunks
        trace.meta["dropped_sec"] = audio.dropped_sec
    trace.meta["wall_sec"] = time.perf_counter() - wall_start
    trace.meta.update(after_run_conditions())
    _check_cpu_share(trace, charge.scope)
    return trace


class _Charger:
    """What the clock counts for a step: the profile's modelled cost, or the run's measure — a
    ``"thread"`` measure turning into ``"process"`` from the first step with CPU work in other
    threads (:func:`~asr_lab.replay.compute.upgrade_scope`), recorded in the trace's meta."""

    def __init__(self, scope: str, cost_model, trace: Trace) -> None:
        self.scope, self.model, self.trace = scope, cost_model, trace

    def __call__(self, cost, features: dict, step: int) -> float:
        if self.model is not None:
            return self.model.cost(features)
        if self.trace.meta.get("compute_asked") == "cpu":
            scope = upgrade_scope(self.scope, cost)
            if scope != self.scope:
                self.scope = scope
                self.trace.meta.update(compute=scope, compute_switched_at_step=step)
        return cost.get(self.scope)


class _EngineThreadCPU:
    """CPU time of the thread that runs the processor's calls, summed over calls.

    The calls run on :class:`CallDeadline`'s worker thread (or in this one without a time
    limit); it reports each call's ``time.thread_time``, which this adds up so that a
    :class:`~asr_lab.replay.compute.Meter` can read the engine thread's CPU like a clock.
    """

    def __init__(self, guard: CallDeadline) -> None:
        self.guard, self.total = guard, 0.0

    def call(self, fn, *args, **kwargs):
        try:
            return self.guard.call(fn, *args, **kwargs)
        finally:
            self.total += self.guard.cpu_sec

    def __call__(self) -> float:
        return self.total


def _costs(cost) -> tuple[float, float, float]:
    return cost.wall, cost.thread, cost.process


def _check_cpu_share(trace: Trace, scope: str) -> None:
    """Warn when CPU accounting saw far less CPU than the load explains: the engine probably waits
    on a GPU, a server or a sleep, which CPU time does not count.

    On a machine with load L and c usable cores a CPU-bound engine gets about min(1, c / L) of
    a core; warn below :data:`CPU_SHARE_WARN` of that share.
    """
    if scope in ("wall", "profile") or not trace.steps:
        return
    wall = sum(s.wall_sec or 0.0 for s in trace.steps)
    cpu = sum(s.compute_sec for s in trace.steps)
    cores = trace.meta.get("threads", {}).get("usable_cores", 1)
    load = max(x for x in (trace.meta.get("load_before"), trace.meta.get("load_after"), 1.0) if x is not None and x == x)
    fair = min(1.0, cores / load)
    if wall > 0.05 and cpu < CPU_SHARE_WARN * fair * wall:
        warnings.warn(
            f"compute={trace.meta.get('compute_asked')!r} counted {cpu:.3f} s of {scope} CPU time against {wall:.3f} s "
            f"elapsed in the engine ({100 * cpu / wall:.1f} %, far below the {100 * fair:.0f} % of a core that a load "
            f"of {load:.1f} on {cores} core(s) leaves): the engine seems to wait on a GPU, a server or a sleep, which "
            f"CPU time does not count; for such engines use compute='wall'",
            RuntimeWarning, stacklevel=3,
        )


def _wait_live(audio: LiveAudio, target: int, stop: Optional[threading.Event]) -> int:
    """Block until ``target`` samples arrived, the source closed, or ``stop`` is set."""
    while True:
        received = audio.wait_for(target, timeout=LIVE_POLL_SEC)
        if received >= target or audio.closed or (stop is not None and stop.is_set()):
            return received


class _Recorder:
    """Appends to the trace and calls the user's callbacks without letting them break the run."""

    def __init__(self, trace: Trace, separator: str, on_emission, on_partial, words_fn, name, offset, call) -> None:
        self.trace, self.sep, self.words_fn = trace, separator, words_fn
        self.name, self.offset, self.call = name, offset, call
        self.on_emission, self.on_partial = on_emission, on_partial
        self.committed: list[str] = []
        self.last_partial: Optional[str] = None

    def emit(self, out, returned, compute, fed_sec, step, final=False) -> None:
        seg = check_segment(out, processor=self.name, call="finish" if final else "process_iter", step=step,
                            offset=self.offset, fed_sec=fed_sec)
        if seg is None:
            return
        start, end, text = seg
        words = None
        if self.words_fn:
            words = check_words(self.call(self.words_fn, what="last_words", step=step), processor=self.name,
                                step=step, offset=self.offset, fed_sec=fed_sec)
        emission = Emission(start, end, text, float(returned), float(compute), float(fed_sec), step, final, words)
        self.trace.emissions.append(emission)
        self.committed.append(emission.text)
        self._call(self.on_emission, emission)

    def partial(self, out, returned, step, fed_sec=float("inf")) -> None:
        seg = check_segment(out, processor=self.name, call="partial", step=step, offset=self.offset, fed_sec=fed_sec)
        text = "" if seg is None else seg[2]
        if text == self.last_partial:
            return
        self.last_partial = text
        start, end = (None, None) if seg is None else seg[:2]
        snap = PartialSnapshot(float(returned), text, self.sep.join(self.committed).strip(), start, end, step)
        self.trace.partials.append(snap)
        self._call(self.on_partial, snap)

    def fail(self, exc: BaseException, step: int, at: float) -> None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.trace.error = ReplayError(type(exc).__name__, str(exc), step, float(at), tb, self.name)
        warnings.warn(f"replay stopped: the processor raised {self.trace.error}", RuntimeWarning, stacklevel=3)

    @staticmethod
    def _call(callback, item) -> None:
        if callback is None:
            return
        try:
            callback(item)
        except Exception as exc:  # a display bug must not lose the run
            warnings.warn(f"callback {getattr(callback, '__name__', callback)!r} raised {type(exc).__name__}: {exc}", RuntimeWarning)


def _step_info_fn(processor: Any):
    """``step_info()`` of the processor, or of the ASR it wraps (``.asr``, two levels at most), if any."""
    obj = processor
    for _ in range(3):
        fn = getattr(obj, "step_info", None)
        if callable(fn):
            return fn
        obj = getattr(obj, "asr", None)
        if obj is None:
            return None
    return None
