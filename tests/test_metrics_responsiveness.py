"""First visible / committed text, finalization and source lag, on traces computed by hand."""

from __future__ import annotations

import math

import pytest

from asr_lab.metrics.responsiveness import responsiveness
from asr_lab.replay.trace import Emission, PartialSnapshot, Step, Trace


def _trace(emissions, partials, returns, duration):
    steps = [Step(index=k, fed_from=0.0, fed_until=min(t, duration), compute_sec=0.1, returned_at=t) for k, t in enumerate(returns)]
    return Trace(emissions=emissions, partials=partials, steps=steps, meta={"duration": duration, "clock": "virtual"})


def _emission(start, end, text, at, step, final=False):
    return Emission(start, end, text, emitted_at=at, compute_sec=0.1, audio_fed=min(at, 4.0), step=step, final=final)


def test_hand_computed_trace():
    # 4 s of audio; steps return at 1.1, 2.1, 3.1, 4.1 (finish); a partial shows at 1.1, text commits at 2.1 and 3.1
    emissions = [_emission(0.2, 1.0, "hello there", 2.1, 1), _emission(1.0, 2.5, "general kenobi", 3.1, 2),
                 _emission(2.5, 3.8, "you are", 4.1, 3, final=True)]
    partials = [PartialSnapshot(at=1.1, text="hello", committed="", start=0.2, end=0.6, step=0)]
    trace = _trace(emissions, partials, [1.1, 2.1, 3.1, 4.1], 4.0)
    reference = {"text": "hello there general kenobi you are", "words": [(0.2, 0.6, "hello"), (0.6, 1.0, "there")]}
    r = responsiveness(trace, reference)
    assert r.first_visible_at == 1.1 and r.first_committed_at == 2.1
    assert r.first_visible_latency == pytest.approx(0.5) and r.first_committed_latency == pytest.approx(1.5)
    assert r.finalization_sec == pytest.approx(0.1)  # the finish() step returned at 4.1
    # lags at 1.1, 2.1, 3.1 (4.1 is after the source ended): 1.1 - 0, 2.1 - 1.0, 3.1 - 2.5
    assert r.source_lag.count == 3
    assert r.source_lag.mean == pytest.approx((1.1 + 1.1 + 0.6) / 3) and r.source_lag.max == pytest.approx(1.1)
    # least squares through (1.1, 1.1), (2.1, 1.1), (3.1, 0.6): slope = -0.25
    assert r.source_lag_slope == pytest.approx(-0.25)
    row = r.to_dict()
    assert row["source_lag_p90"] == pytest.approx(1.1) and row["first_visible_at"] == 1.1


def test_a_falling_behind_engine_has_a_growing_lag():
    # each call returns later than the last; committed text covers only half of the audio heard so far
    returns = [1.0, 2.5, 4.5, 7.0, 10.0]
    emissions = [_emission(0.0, t / 2, f"w{k}", t, k) for k, t in enumerate(returns)]
    r = responsiveness(_trace(emissions, [], returns, 10.0))
    assert r.source_lag_slope == pytest.approx(0.5) and r.first_visible_latency is None
    assert r.first_visible_at == r.first_committed_at == 1.0 and r.finalization_sec == 0.0


def test_nothing_shown():
    r = responsiveness(_trace([], [PartialSnapshot(at=0.5, text=" ", committed="", start=None, end=None, step=0)], [1.0], 2.0))
    assert r.first_visible_at is None and r.first_committed_at is None and r.source_lag_slope is None
    assert r.source_lag.count == 1 and r.source_lag.mean == 1.0 and r.finalization_sec == -1.0
    assert math.isnan(responsiveness(_trace([], [], [], 2.0)).source_lag.mean)
