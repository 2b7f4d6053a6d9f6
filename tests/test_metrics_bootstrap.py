"""Bootstrap intervals and paired significance over utterances."""

import math
import random

import numpy as np
import pytest

from asr_lab.metrics import LatencyAccumulator, score
from asr_lab.metrics.bootstrap import bootstrap_interval, paired_bootstrap
from asr_lab.replay import Emission, Trace

VOCAB = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"]


def scored(rng, error_rate, lag):
    """One synthetic utterance: a timed reference and a hypothesis with ~error_rate substitutions."""
    n = rng.randint(4, 14)
    ref_words = [rng.choice(VOCAB) for _ in range(n)]
    timings = [(0.4 * i, 0.4 * i + 0.3, w) for i, w in enumerate(ref_words)]
    hyp = [("zulu" if rng.random() < error_rate else w) for w in ref_words]
    emissions, at = [], 0.0
    for i, ((s, e, _), w) in enumerate(zip(timings, hyp)):
        at = max(at, e + lag + rng.uniform(0, 0.5))
        emissions.append(Emission(s, e, w, emitted_at=at, compute_sec=0.05, audio_fed=e + lag, step=i))
    trace = Trace(emissions=emissions, meta={"duration": 0.4 * n + 0.5, "clock": "virtual"})
    return score(trace, {"text": " ".join(ref_words), "words": timings})


def systems(seed=1, n=40, err_a=0.1, err_b=0.3, lag_a=0.5, lag_b=0.5):
    rng = random.Random(seed)
    a = {f"u{i}": scored(rng, err_a, lag_a) for i in range(n)}
    b = {f"u{i}": scored(rng, err_b, lag_b) for i in range(n)}
    return a, b


def test_estimate_is_the_corpus_figure_and_interval_brackets_it():
    a, _ = systems()
    lat_acc = LatencyAccumulator()
    for s in a.values():
        lat_acc.add(s.latency)
    corpus_wer = sum(s.wer.errors for s in a.values()) / sum(s.wer.reference_length for s in a.values())
    iv = bootstrap_interval(a, "wer", resamples=500)
    assert iv.estimate == pytest.approx(corpus_wer)
    assert iv.low < iv.estimate < iv.high and iv.utterances == 40 and iv.resamples == 500
    p90 = bootstrap_interval(a, "latency_p90", resamples=300)
    assert p90.estimate == pytest.approx(lat_acc.compute().latency.p90)
    assert p90.low <= p90.estimate <= p90.high
    assert bootstrap_interval(a, "wer", resamples=500) == iv  # seeded: reproducible


def test_wer_interval_matches_scipy_percentile_bootstrap():
    stats = pytest.importorskip("scipy.stats")
    a, _ = systems(n=60)
    errors = np.array([s.wer.errors for s in a.values()], float)
    lengths = np.array([s.wer.reference_length for s in a.values()], float)
    ref = stats.bootstrap(
        (errors, lengths), lambda e, l: e.sum() / l.sum(), paired=True, vectorized=False,
        n_resamples=4000, method="percentile", confidence_level=0.9, random_state=3,
    ).confidence_interval
    ours = bootstrap_interval(a, "wer", resamples=4000, level=0.9, seed=9)
    # two independent Monte Carlo runs of the same procedure: agree to Monte Carlo error
    assert ours.low == pytest.approx(ref.low, abs=0.01) and ours.high == pytest.approx(ref.high, abs=0.01)


def test_paired_difference_detects_a_real_gap_and_not_a_null_one():
    a, b = systems(err_a=0.05, err_b=0.4)
    sig = paired_bootstrap(a, b, "wer", names=("good", "bad"), resamples=500)
    assert sig.difference < 0 and sig.high < 0 and sig.significant and sig.p_value < 0.01
    assert "good" in str(sig) and "significant" in str(sig)
    same = paired_bootstrap(a, a, "latency_p50", resamples=200)
    assert same.difference == 0 and same.low == same.high == 0 and same.p_value == 1.0
    # equal systems drawn from the same distribution: no verdict most of the time
    a2, b2 = systems(seed=4, err_a=0.2, err_b=0.2)
    assert not paired_bootstrap(a2, b2, "wer", resamples=400).significant


def test_latency_gap_found_with_the_same_wer():
    a, b = systems(err_a=0.1, err_b=0.1, lag_a=0.3, lag_b=1.0, seed=2)
    sig = paired_bootstrap(a, b, "latency_p50", resamples=300)
    assert sig.difference == pytest.approx(sig.a_value - sig.b_value) and sig.difference < -0.4
    assert sig.significant


def test_repeats_are_kept_together_and_only_shared_utterances_pair():
    a, b = systems(n=10)
    with_repeats = {u: [s, s] for u, s in a.items()}
    assert bootstrap_interval(with_repeats, "wer", resamples=100).estimate == pytest.approx(
        bootstrap_interval(a, "wer", resamples=100).estimate
    )
    del b["u0"]
    assert paired_bootstrap(a, b, "rtf", resamples=50).utterances == 9


def test_bad_arguments_are_named():
    a, _ = systems(n=3)
    with pytest.raises(ValueError, match="'latency_p99'.*wer"):
        bootstrap_interval(a, "latency_p99")
    with pytest.raises(ValueError, match="resamples=5"):
        bootstrap_interval(a, "wer", resamples=5)
    with pytest.raises(ValueError, match="share no scored utterance"):
        paired_bootstrap({"x": a["u0"]}, {"y": a["u1"]})
    with pytest.raises(TypeError, match="Scores"):
        bootstrap_interval({"u": 3}, "wer")
    assert math.isnan(bootstrap_interval(a, "first_word_latency", resamples=10).estimate) is False
