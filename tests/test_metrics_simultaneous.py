"""The SimulEval / OmniSTEval latency family, checked against both packages on the same delays."""

import json
import math
import random

import pytest

import asr_lab
from asr_lab.metrics import simultaneous as sim
from asr_lab.testing import TimelineASR, words_from_text

simuleval_scorers = pytest.importorskip("simuleval.evaluator.scorers.latency_scorer")
simuleval_instance = pytest.importorskip("simuleval.evaluator.instance")
omni_scoring = pytest.importorskip("omnisteval.scoring")
omni_data = pytest.importorskip("omnisteval.data")

KEYS = ("AL", "LAAL", "DAL", "AP", "ATD", "StartOffset", "EndOffset")


def simuleval_scores(delays_ms, elapsed_ms, source_ms, reference):
    """SimulEval's own scorers on one LogInstance (ms in, ms out; AP a ratio)."""
    info = {"index": 0, "delays": delays_ms, "elapsed": elapsed_ms, "source_length": source_ms, "reference": reference}
    ins = simuleval_instance.LogInstance(json.dumps(info))
    out = {}
    for key in KEYS:
        for aware, suffix in ((False, ""), (True, "_CA")):
            out[key + suffix] = simuleval_scorers.LATENCY_SCORERS_DICT[key](computation_aware=aware)({0: ins})
    return out


def omni_instance(delays_ms, elapsed_ms, source_ms, reference, **kw):
    return omni_data.Instance(
        prediction=" ".join(f"w{i}" for i in range(len(delays_ms))), reference=reference, index=0,
        source_length=source_ms, emission_cu=delays_ms, emission_ca=elapsed_ms, **kw,
    )


def random_case(rng):
    source = rng.uniform(0.5, 12.0)
    n = rng.randint(1, 25)
    delays = sorted(round(rng.uniform(0, source * 1.3), 3) for _ in range(n))
    elapsed = [d + rng.uniform(0, 2.0) for d in delays]
    elapsed = [max(elapsed[: i + 1]) for i in range(n)]
    ref = " ".join(f"r{i}" for i in range(rng.randint(1, 30)))
    return delays, elapsed, source, ref


def ours(delays, elapsed, source, ref_len):
    out = {}
    for suffix, d in (("", delays), ("_CA", elapsed)):
        out["AL" + suffix] = sim.average_lagging(d, source_length=source, reference_length=ref_len)
        out["LAAL" + suffix] = sim.length_adaptive_average_lagging(d, source_length=source, reference_length=ref_len)
        out["DAL" + suffix] = sim.differentiable_average_lagging(d, source_length=source)
        out["AP" + suffix] = sim.average_proportion(d, source_length=source, reference_length=ref_len)
        out["ATD" + suffix] = sim.average_token_delay(delays, elapsed=elapsed if suffix else None)
        out["StartOffset" + suffix] = sim.start_offset(d)
        out["EndOffset" + suffix] = sim.end_offset(d, source_length=source)
    return out


def test_each_metric_equals_simuleval_on_random_delays():
    rng = random.Random(7)
    for _ in range(60):
        delays, elapsed, source, ref = random_case(rng)
        theirs = simuleval_scores([d * 1000 for d in delays], [e * 1000 for e in elapsed], source * 1000, ref)
        mine = ours(delays, elapsed, source, len(ref.split(" ")))
        for key, value in theirs.items():
            scale = 1 if key.startswith("AP") else 1000  # SimulEval works in ms; AP is a ratio
            assert mine[key] * scale == pytest.approx(value, rel=1e-9, abs=1e-6), key


def test_atd_equals_simuleval_on_random_delays():
    rng = random.Random(13)
    for _ in range(40):
        delays, elapsed, source, ref = random_case(rng)
        # SimulEval's speech input: chunks of whole milliseconds, several words per chunk
        delays = sorted(float(round(rng.choice(delays) * 1000)) / 1000 for _ in delays)
        ms = [d * 1000 for d in delays]
        info = {"index": 0, "delays": ms, "elapsed": [e * 1000 for e in elapsed], "source_length": source * 1000, "reference": ref}
        ins = simuleval_instance.LogInstance(json.dumps(info))
        for aware in (False, True):
            theirs = simuleval_scorers.LATENCY_SCORERS_DICT["ATD"](computation_aware=aware)({0: ins})
            mine = sim.average_token_delay(delays, elapsed=elapsed if aware else None)
            assert mine * 1000 == pytest.approx(theirs, rel=1e-9, abs=1e-6), aware


def test_first_delay_past_the_source_is_al_and_laal():
    theirs = simuleval_scores([3000, 3500], [3100, 3600], 2000, "a b")
    mine = ours([3.0, 3.5], [3.1, 3.6], 2.0, 2)
    assert mine["AL"] * 1000 == pytest.approx(theirs["AL"]) == 3000
    assert mine["LAAL_CA"] * 1000 == pytest.approx(theirs["LAAL_CA"]) == 3100


def test_yaal_and_longyaal_equal_omnisteval():
    rng = random.Random(11)
    checked = 0
    for _ in range(60):
        delays, elapsed, source, ref = random_case(rng)
        for longform in (False, True):
            end = source * rng.uniform(1.0, 1.5) if longform else None
            kw = {"longform": longform, "time_to_recording_end": None if end is None else end * 1000}
            ins = omni_instance([d * 1000 for d in delays], [e * 1000 for e in elapsed], source * 1000, ref, **kw)
            for aware, d in ((False, delays), (True, elapsed)):
                theirs = omni_scoring.YAALScorer(computation_aware=aware, is_longform=longform)([ins])
                mine = sim.yaal(d, source_length=source, reference_length=len(ref.split(" ")),
                                longform=longform, time_to_recording_end=end)
                if math.isnan(theirs):
                    assert math.isnan(mine)
                else:
                    assert mine * 1000 == pytest.approx(theirs, rel=1e-9)
                    checked += 1
    assert checked > 100  # most cases have words before the cut-off


def test_omnisteval_al_laal_ap_dal_agree_too():
    rng = random.Random(3)
    for _ in range(30):
        delays, elapsed, source, ref = random_case(rng)
        ins = omni_instance([d * 1000 for d in delays], [e * 1000 for e in elapsed], source * 1000, ref)
        mine = ours(delays, elapsed, source, len(ref.split(" ")))
        for key, cls in (("AL", "ALScorer"), ("LAAL", "LAALScorer"), ("DAL", "DALScorer"), ("AP", "APScorer")):
            for aware, suffix in ((False, ""), (True, "_CA")):
                theirs = getattr(omni_scoring, cls)(computation_aware=aware)([ins])
                scale = 1 if key == "AP" else 1000
                assert mine[key + suffix] * scale == pytest.approx(theirs, rel=1e-9), key + suffix


def test_corrected_elapsed_equals_omnisteval_fix():
    rng = random.Random(5)
    for _ in range(30):
        delays, _, _, _ = random_case(rng)
        compute = [rng.uniform(0.0, 0.8) for _ in delays]
        elapsed = [d + sum(compute[: i + 1]) for i, d in enumerate(delays)]  # SimulEval's delay + total runtime
        words = [omni_data.Word(f"w{i}", emission_cu=d * 1000, emission_ca=e * 1000) for i, (d, e) in enumerate(zip(delays, elapsed))]
        theirs = [w.emission_ca / 1000 for w in omni_data.fix_emission_ca(words)]
        assert sim.corrected_elapsed(delays, elapsed) == pytest.approx(theirs, rel=1e-9)
    with pytest.raises(ValueError, match="one value per word"):
        sim.corrected_elapsed([1.0], [1.0, 2.0])


WORDS = words_from_text("the cat sat on the mat and then it slept all day long", pause_every=4)
TEXT = "the cat sat on the mat and then it slept all day long"


def replayed(clock):
    proc = asr_lab.OnlineASRProcessor(TimelineASR(WORDS), min_chunk_sec=0.5)
    return asr_lab.replay(proc, TimelineASR.stream_audio(WORDS[-1][1] + 1), clock=clock)


def test_simuleval_metrics_of_a_trace_equal_simuleval_on_its_delays():
    trace = replayed("virtual")
    wd = sim.word_delays(trace)
    assert list(wd.words) == TEXT.split() and not wd.elapsed_rebuilt
    assert all(e >= d for d, e in zip(wd.delays, wd.elapsed))  # emitted after its audio was fed
    m = sim.simuleval_metrics(trace, TEXT)
    assert set(m) == {k + s for k in sim.SIMULEVAL_KEYS for s in ("", "_CA")}
    theirs = simuleval_scores([d * 1000 for d in wd.delays], [e * 1000 for e in wd.elapsed], trace.duration * 1000, TEXT)
    for key, value in theirs.items():
        scale = 1 if key.startswith("AP") else 1000
        assert m[key] * scale == pytest.approx(value, rel=1e-9), key
    # a perfect policy on word timings: first word committed after its audio, last word by the end
    assert WORDS[0][1] <= m["StartOffset"] < trace.duration
    assert m["AL"] > 0 and m["AL_CA"] >= m["AL"]


def test_unaware_trace_rebuilds_computation_aware_times():
    trace = replayed("unaware")
    wd = sim.word_delays(trace)
    assert wd.elapsed_rebuilt
    assert all(e >= d for d, e in zip(wd.delays, wd.elapsed))
    assert any(e > d for d, e in zip(wd.delays, wd.elapsed))  # compute time shows
    assert [e.emitted_at for e in trace.emissions] == [e.audio_fed for e in trace.emissions]


def test_empty_trace_gives_nan_and_bad_input_is_named():
    from asr_lab.replay import Trace

    m = sim.simuleval_metrics(Trace(meta={"duration": 2.0}), "a b")
    assert all(math.isnan(v) for v in m.values())
    with pytest.raises(ValueError, match="source length"):
        sim.simuleval_metrics(Trace(), "a")
    with pytest.raises(ValueError, match=r"delays\[1\]"):
        sim.average_lagging([0.1, -2.0], source_length=1.0)
    with pytest.raises(TypeError, match="Trace"):
        sim.simuleval_metrics("not a trace", "a")
