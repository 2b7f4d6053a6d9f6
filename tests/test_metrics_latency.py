"""Word latency, policy lag vs compute lag, first word, finish delay, RTF — hand-computed."""

import math
from dataclasses import dataclass

import pandas as pd
import pytest

from asr_lab.metrics import (
    LatencyAccumulator,
    LatencyReport,
    WordLatency,
    finish_delay,
    latency_report,
    real_time_factor,
    word_latencies,
)


def same(a: dict, b: dict) -> bool:
    """Dict equality where nan equals nan (a summary of zero words is all nan)."""
    nan = lambda v: isinstance(v, float) and math.isnan(v)
    return a.keys() == b.keys() and all(a[k] == b[k] or (nan(a[k]) and nan(b[k])) for k in a)


REF = [(0.0, 0.5, "Hello"), (0.5, 1.0, "big"), (1.0, 1.5, "world,"), (2.0, 2.5, "again")]


def emissions():
    return [
        # no engine word timestamps: "hello" spread to [0, 0.5], "big" to [0.5, 1.0]
        {"start": 0.0, "end": 1.0, "text": "Hello big", "emitted_at": 2.0, "compute_sec": 0.3},
        # engine word timestamps; "word" is a substitution for "world"
        {
            "start": 1.0,
            "end": 2.5,
            "text": " word again.",
            "emitted_at": 3.5,
            "compute_sec": 0.5,
            "words": [(1.0, 1.6, " word"), (2.0, 2.4, " again.")],
        },
    ]


@dataclass
class Emission:  # what the replayer's dataclass might look like
    start: float
    end: float
    text: str
    emitted_at: float
    compute_sec: float | None = None
    words: list | None = None


@dataclass
class Utterance:
    text: str
    words: list | None = None


def test_word_latencies_hand_computed():
    words = word_latencies(reference=REF, hypothesis=emissions(), clock="virtual")
    assert [w.word for w in words] == ["hello", "big", "word", "again"]
    assert [w.ref_index for w in words] == [0, 1, None, 3]  # substitution gets no reference latency
    assert [w.hyp_timing for w in words] == ["spread", "spread", "engine", "engine"]
    assert [(w.hyp_start, w.hyp_end) for w in words] == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.6), (2.0, 2.4)]
    assert [w.latency for w in words] == pytest.approx([1.5, 1.0, None, 1.0])
    assert [w.hyp_latency for w in words] == pytest.approx([1.5, 1.0, 1.9, 1.1])
    # fed_until = emitted_at - compute_sec on an aware clock
    assert [w.fed_until for w in words] == pytest.approx([1.7, 1.7, 3.0, 3.0])
    assert [w.policy_latency for w in words] == pytest.approx([1.2, 0.7, None, 0.5])
    assert [w.compute_lag for w in words] == pytest.approx([0.3, 0.3, 0.5, 0.5])
    for w in words:
        if w.latency is not None:
            assert w.latency == pytest.approx(w.policy_latency + w.compute_lag)


def test_latency_report_hand_computed():
    r = latency_report(
        reference=REF, hypothesis=emissions(), audio_duration=3.0, compute_sec=[0.3, 0.1, 0.5, 0.3], clock="virtual"
    )
    assert r.latency.count == 3
    assert r.latency.mean == pytest.approx(3.5 / 3)
    assert r.latency.p50 == pytest.approx(1.0)
    assert r.latency.p90 == pytest.approx(1.4)  # sorted [1.0, 1.0, 1.5], linear at rank 1.8
    assert r.latency.max == pytest.approx(1.5)
    assert r.hyp_latency.count == 4 and r.hyp_latency.mean == pytest.approx(5.5 / 4)
    assert r.policy_latency.mean == pytest.approx(2.4 / 3)
    assert r.compute_lag.count == 3 and r.compute_lag.mean == pytest.approx(1.1 / 3)
    assert r.latency.mean == pytest.approx(r.policy_latency.mean + r.compute_lag.mean)
    assert r.first_word_latency == pytest.approx(1.5)  # 2.0 - end of "hello"
    assert r.finish_delay == pytest.approx(0.5)
    assert r.compute_sec == pytest.approx(1.2) and r.rtf == pytest.approx(0.4)
    assert (r.reference_words, r.hypothesis_words, r.matched_words) == (4, 4, 3)
    assert r.hypothesis_timing == "mixed" and r.reference_timed and r.clock == "virtual"


def test_objects_and_dicts_give_the_same_report():
    objs = [Emission(**e) for e in emissions()]
    utt = Utterance("Hello big world, again", [{"start": s, "end": e, "word": w} for s, e, w in REF])
    a = latency_report(reference=REF, hypothesis=emissions(), clock="virtual")
    b = latency_report(reference=utt, hypothesis=objs, clock="virtual")
    assert a == b


def test_unaware_clock_has_no_compute_lag():
    r = latency_report(reference=REF, hypothesis=emissions(), clock="unaware")
    assert r.compute_lag.max == 0.0
    assert r.policy_latency == r.latency


def test_explicit_fed_until_wins():
    ems = emissions()
    ems[0]["fed_until"] = 1.0
    words = word_latencies(reference=REF, hypothesis=ems, clock="wall")
    assert words[0].fed_until == 1.0 and words[0].compute_lag == pytest.approx(1.0)
    assert words[0].policy_latency == pytest.approx(0.5)


def test_without_compute_information_policy_split_is_empty():
    ems = [{"start": 0.0, "end": 0.5, "text": "hello", "emitted_at": 1.0}]
    r = latency_report(reference=REF, hypothesis=ems)
    assert r.latency.count == 1 and r.policy_latency.count == 0 and math.isnan(r.policy_latency.mean)
    assert r.compute_lag.count == 0 and r.rtf is None and r.finish_delay is None


def test_repeated_words_align_to_the_unbroken_run():
    ref = [(0.0, 0.3, "the"), (0.3, 0.8, "cat"), (2.0, 2.3, "the"), (2.3, 2.9, "dog")]
    ems = [{"start": 2.0, "end": 2.9, "text": "the dog", "emitted_at": 4.0}]
    words = word_latencies(reference=ref, hypothesis=ems)
    assert [w.ref_index for w in words] == [2, 3]
    assert [w.latency for w in words] == pytest.approx([1.7, 1.1])


def test_engine_word_splitting_into_two_tokens_keeps_its_times():
    ems = [{"start": 0.0, "end": 1.0, "text": "well-known", "emitted_at": 1.5, "words": [(0.2, 0.9, "well-known")]}]
    words = word_latencies(reference=None, hypothesis=ems)
    assert [(w.word, w.hyp_end) for w in words] == [("well", 0.9), ("known", 0.9)]


def test_spread_puts_equal_parts_and_the_last_word_at_the_segment_end():
    ems = [{"start": 1.0, "end": 2.0, "text": "one two three", "emitted_at": 2.5}]
    words = word_latencies(reference=None, hypothesis=ems)
    assert [w.hyp_end for w in words] == pytest.approx([1.0 + 1 / 3, 1.0 + 2 / 3, 2.0])
    assert words[-1].hyp_end == 2.0


def test_reference_without_timings_counts_matches_only():
    r = latency_report(reference=Utterance("hello big world again"), hypothesis=emissions())
    assert r.matched_words == 3 and r.reference_words == 4 and not r.reference_timed
    assert r.latency.count == 0 and r.first_word_latency is None
    assert r.hyp_latency.count == 4
    r2 = latency_report(reference="hello big world again", hypothesis=emissions())
    assert same(r2.to_dict(), r.to_dict())


def test_no_reference_at_all():
    r = latency_report(reference=None, hypothesis=emissions(), clock="virtual")
    assert r.matched_words is None and r.reference_words is None
    assert r.compute_lag.count == 4  # every hypothesis word when the reference has no timings
    assert r.hyp_latency.max == pytest.approx(1.9)


def test_no_emissions():
    r = latency_report(reference=REF, hypothesis=[], audio_duration=3.0, compute_sec=0.6)
    assert r.hypothesis_words == 0 and r.matched_words == 0 and r.hypothesis_timing == "none"
    assert r.latency.count == 0 and math.isnan(r.latency.mean)
    assert r.first_word_latency is None and r.finish_delay is None
    assert r.rtf == pytest.approx(0.2)


def test_finish_delay_ignores_blank_emissions_and_can_be_negative():
    ems = [
        {"start": 0, "end": 1, "text": "hi", "emitted_at": 1.5},
        {"start": 1, "end": 2, "text": "  ", "emitted_at": 9.0},
    ]
    assert finish_delay(hypothesis=ems, audio_duration=2.0) == pytest.approx(-0.5)


def test_real_time_factor():
    assert real_time_factor(compute_sec=1.5, audio_duration=3.0) == 0.5
    assert real_time_factor(compute_sec=[0.5, 0.25, 0.25], audio_duration=2.0) == 0.5
    with pytest.raises(ValueError, match="audio_duration must be > 0"):
        real_time_factor(compute_sec=1.0, audio_duration=0)
    with pytest.raises(ValueError, match=r"compute_sec\[1\] must be >= 0"):
        real_time_factor(compute_sec=[0.1, -0.2], audio_duration=1.0)


def test_report_dict_roundtrip_also_through_pandas():
    r = latency_report(reference=REF, hypothesis=emissions(), audio_duration=3.0, compute_sec=1.2, clock="virtual")
    flat = r.to_dict()
    assert flat["latency_mean"] == pytest.approx(3.5 / 3) and "words" not in flat
    assert LatencyReport.from_dict(flat) == r
    row = pd.DataFrame([flat]).iloc[0].to_dict()
    assert LatencyReport.from_dict(row).to_dict()["latency_p90"] == pytest.approx(1.4)
    full = LatencyReport.from_dict(r.to_dict(include_words=True))
    assert full.words == r.words
    no_ref = latency_report(reference=None, hypothesis=emissions())
    back = LatencyReport.from_dict(pd.DataFrame([no_ref.to_dict()]).iloc[0].to_dict())
    assert back.matched_words is None and back.first_word_latency is None


def test_accumulator_pools_words():
    acc = LatencyAccumulator()
    acc.update(reference=REF, hypothesis=emissions(), audio_duration=3.0, compute_sec=1.2, clock="virtual")
    ref2 = [(0.0, 1.0, "yes")]
    acc.update(
        reference=ref2,
        hypothesis=[{"start": 0, "end": 1, "text": "yes", "emitted_at": 4.0, "compute_sec": 0.1}],
        audio_duration=1.0,
        compute_sec=0.2,
        clock="virtual",
    )
    total = acc.compute()
    assert len(acc) == 2
    # pooled: [1.5, 1.0, 1.0] + [3.0] -> mean 6.5 / 4 (a mean of means would be (7/6 + 3) / 2)
    assert total.latency.count == 4 and total.latency.mean == pytest.approx(6.5 / 4)
    assert total.rtf == pytest.approx(1.4 / 4.0)
    assert total.first_word_latency == pytest.approx((1.5 + 3.0) / 2)
    assert total.finish_delay == pytest.approx((0.5 + 3.0) / 2)
    assert (total.reference_words, total.matched_words, total.hypothesis_words) == (5, 4, 5)
    assert len(total.words) == 5 and total.clock == "virtual"


def test_accumulator_refuses_mixed_clocks_and_wordless_reports():
    acc = LatencyAccumulator()
    acc.update(reference=REF, hypothesis=emissions(), clock="virtual")
    with pytest.raises(ValueError, match="one LatencyAccumulator per clock"):
        acc.update(reference=REF, hypothesis=emissions(), clock="unaware")
    stripped = LatencyReport.from_dict(latency_report(reference=REF, hypothesis=emissions()).to_dict())
    with pytest.raises(ValueError, match="no per-word records"):
        LatencyAccumulator().add(stripped)
    with pytest.raises(TypeError, match="takes a LatencyReport"):
        acc.add({"latency_mean": 1.0})


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (
            {"start": 0.0, "end": 1.0, "text": "a", "emitted_at": -1.0},
            ValueError,
            r"emissions\[0\]\.emitted_at must be >= 0",
        ),
        (
            {"start": float("nan"), "end": 1.0, "text": "a", "emitted_at": 1.0},
            ValueError,
            r"emissions\[0\].start must be a finite number",
        ),
        ({"start": 2.0, "end": 1.0, "text": "a", "emitted_at": 3.0}, ValueError, r"ends before it starts"),
        (
            {"start": 0.0, "end": 1.0, "text": ["a"], "emitted_at": 1.0},
            TypeError,
            r"emissions\[0\]\.text must be a str",
        ),
        ({"start": 0.0, "end": 1.0, "text": "a"}, TypeError, r"emissions\[0\] has no 'emitted_at'"),
        (
            {"start": 0.0, "end": 1.0, "text": "a", "emitted_at": "1"},
            TypeError,
            r"emitted_at must be a number of seconds",
        ),
        ((0.0, 1.0, "a"), TypeError, r"must be an object or dict.*e\.g\. dict\("),
        (
            {"start": 0.0, "end": 1.0, "text": "a", "emitted_at": 0.1, "compute_sec": 0.5},
            ValueError,
            r"clock='unaware'",
        ),
        (
            {"start": 0.0, "end": 1.0, "text": "a", "emitted_at": 1.0, "words": [(0.0, 0.5)]},
            ValueError,
            r"words\[0\] must be a \(start, end, word\) triple",
        ),
    ],
)
def test_bad_emissions_are_named(bad, error, message):
    with pytest.raises(error, match=message):
        word_latencies(reference=None, hypothesis=[bad])


def test_other_bad_input():
    with pytest.raises(ValueError, match=r"in the order they appeared.*sort them by emitted_at"):
        word_latencies(
            reference=None,
            hypothesis=[
                {"start": 0, "end": 1, "text": "a", "emitted_at": 2.0},
                {"start": 1, "end": 2, "text": "b", "emitted_at": 1.0},
            ],
        )
    with pytest.raises(ValueError, match="clock must be one of"):
        word_latencies(reference=None, hypothesis=[], clock="aware")
    with pytest.raises(TypeError, match="pass trace.emissions"):
        latency_report(reference=REF, hypothesis="hello")
    with pytest.raises(ValueError, match=r"reference\[0\] end must be a finite number"):
        word_latencies(reference=[(0.0, math.inf, "a")], hypothesis=[])
    with pytest.raises(TypeError, match=r"reference\[0\] has no 'start'"):
        word_latencies(reference=["hello"], hypothesis=[])
    with pytest.raises(TypeError, match="neither word timings"):
        word_latencies(reference={"words": None}, hypothesis=[])


def test_replay_style_audio_fed_is_fed_until():
    ems = emissions()
    ems[0]["audio_fed"] = 1.0
    words = word_latencies(reference=REF, hypothesis=ems, clock="virtual")
    assert words[0].fed_until == 1.0 and words[2].fed_until == pytest.approx(3.0)


def test_generators_and_dataframe_word_rows():
    r = latency_report(reference=iter(REF), hypothesis=(e for e in emissions()), audio_duration=3.0)
    assert r.hypothesis_words == 4 and r.finish_delay == pytest.approx(0.5)
    rows = pd.DataFrame([w.to_dict() for w in word_latencies(reference=REF, hypothesis=emissions())])
    back = [WordLatency.from_dict(row) for row in rows.to_dict("records")]
    assert back[2].ref_index is None and back[2].latency is None and back[0].ref_index == 0
    assert [w.latency for w in back] == pytest.approx([1.5, 1.0, None, 1.0])
