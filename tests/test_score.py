"""score(trace, reference): the replayer's traces wired to the metrics."""

import pytest

import asr_lab
from asr_lab.replay import Trace
from asr_lab.testing import TimelineASR, words_from_text

WORDS = words_from_text("the cat sat on the mat and then it slept all day long", pause_every=4)
TEXT = "The cat sat on the mat, and then it slept all day long."


def run(clock="unaware", unstable=0.0, words=WORDS):
    proc = asr_lab.OnlineASRProcessor(TimelineASR(words, unstable_tail_sec=unstable), min_chunk_sec=0.5)
    return asr_lab.replay(proc, TimelineASR.stream_audio(WORDS[-1][1] + 1), clock=clock)


def test_perfect_stream_scores_zero_wer_and_latency_from_policy_alone():
    trace = run()
    s = asr_lab.score(trace, {"text": TEXT, "words": WORDS})
    assert s.wer.rate == 0 and s.cer.rate == 0 and s.wer.reference_length == 13
    assert s.latency.hypothesis_timing == "engine"  # OnlineASRProcessor gives its word times
    assert s.latency.matched_words == 13
    # unaware clock: latency = policy lag, compute lag exactly 0
    assert s.latency.compute_lag.max == 0
    for w in s.latency.words:
        assert w.latency == pytest.approx(w.emitted_at - w.ref_end)
    assert s.stability.normalized_erasure == 0  # no partial was ever revised


def test_unstable_partials_show_in_stability_not_in_wer():
    s = asr_lab.score(run(unstable=0.5), TEXT)
    assert s.wer.rate == 0
    assert s.stability.normalized_erasure > 0 and s.stability.revised_words > 0
    assert s.latency.reference_timed is False and s.latency.latency.count == 0
    assert s.latency.hyp_latency.count == 13  # against the engine's own word times


def test_errors_are_counted_and_the_row_is_flat():
    wrong = [(a, b, "hat" if w == "mat" else w) for a, b, w in WORDS[:-1]]  # one substitution, one deletion
    s = asr_lab.score(run(words=wrong), {"text": TEXT, "words": WORDS})
    assert (s.wer.substitutions, s.wer.deletions, s.wer.insertions) == (1, 1, 0)
    assert s.wer.rate == pytest.approx(2 / 13)
    row = s.to_dict()
    assert row["wer"] == pytest.approx(2 / 13) and row["matched_words"] == 11
    assert all(not isinstance(v, (list, dict)) for v in row.values())


def test_virtual_clock_adds_compute_lag_and_scores_survive_jsonl():
    trace = run(clock="virtual")
    again = Trace.from_jsonl(trace.to_jsonl())
    a, b = asr_lab.score(trace, {"text": TEXT, "words": WORDS}), asr_lab.score(again, {"text": TEXT, "words": WORDS})
    assert a.to_dict() == b.to_dict()
    assert a.latency.compute_lag.mean > 0  # virtual clock: compute time is part of the latency


def test_bad_reference_is_named():
    with pytest.raises(TypeError, match="reference must be text"):
        asr_lab.score(run(), {"words": WORDS})
