"""``matching="exact" | "aligned"``: asr_lab's pairing vs ufal/asr_latency's, and the word count."""

import pytest

from asr_lab.metrics import LatencyAccumulator, LatencyReport, latency_report, word_latencies

REF = [(0.0, 0.5, "the"), (0.6, 1.0, "cat"), (1.1, 1.5, "sat"), (1.6, 2.0, "down")]


def em(start, end, text, at):
    return dict(start=start, end=end, text=text, emitted_at=at, fed_until=at)


def ufal_mean(pairs):
    """ufal/asr_latency's ``calculate_latency``: mean of max(0, gen_time − gold_end) over pairs."""
    return sum(max(0.0, at - end) for end, at in pairs) / len(pairs)


def test_error_free_output_gives_the_same_latencies_either_way():
    hyp = [em(0.0, 1.0, "the cat", 1.5), em(1.1, 2.0, "sat down", 2.6)]
    exact = latency_report(reference=REF, hypothesis=hyp)
    aligned = latency_report(reference=REF, hypothesis=hyp, matching="aligned")
    assert exact.latency == aligned.latency and exact.latency.count == 4
    assert exact.matching == "exact" and aligned.matching == "aligned"
    assert exact.latency.mean == pytest.approx(ufal_mean([(0.5, 1.5), (1.0, 1.5), (1.5, 2.6), (2.0, 2.6)]))


def test_substitutions_are_paired_and_clipped_only_when_aligned():
    # "cat" misheard as "hat"; "down" emitted 0.3 s before the reference says it ended
    hyp = [em(0.0, 1.0, "the hat", 1.5), em(1.1, 2.0, "sat down", 1.7)]
    exact = latency_report(reference=REF, hypothesis=hyp)
    aligned = latency_report(reference=REF, hypothesis=hyp, matching="aligned")
    assert exact.latency.count == exact.matched_words == 3
    assert aligned.latency.count == aligned.matched_words == 4
    # exact keeps the raw negative latency of "down"; aligned clips it at 0 as ufal/asr_latency does
    assert exact.latency.mean == pytest.approx(((1.5 - 0.5) + (1.7 - 1.5) + (1.7 - 2.0)) / 3)
    assert aligned.latency.mean == pytest.approx(ufal_mean([(0.5, 1.5), (1.0, 1.5), (1.5, 1.7), (2.0, 1.7)]))
    hat = [w for w in word_latencies(reference=REF, hypothesis=hyp, matching="aligned") if w.word == "hat"][0]
    assert hat.ref_index == 1 and hat.latency == pytest.approx(0.5)
    assert [w for w in word_latencies(reference=REF, hypothesis=hyp) if w.word == "hat"][0].latency is None


def test_round_trip_and_pooling_keep_the_matching():
    hyp = [em(0.0, 1.0, "the hat", 1.5), em(1.1, 2.0, "sat down", 1.7)]
    aligned = latency_report(reference=REF, hypothesis=hyp, matching="aligned")
    back = LatencyReport.from_dict(aligned.to_dict(include_words=True))
    assert back.matching == "aligned" and back.words == aligned.words and back.latency == aligned.latency
    old = aligned.to_dict()
    del old["matching"]  # a row saved before the option existed
    assert LatencyReport.from_dict(old).matching == "exact"
    acc = LatencyAccumulator()
    acc.add(aligned)
    with pytest.raises(ValueError, match="matching='exact'"):
        acc.add(latency_report(reference=REF, hypothesis=hyp))
    assert acc.compute().matching == "aligned" and acc.compute().latency.count == 4


def test_unknown_matching_is_named():
    with pytest.raises(ValueError, match="'fuzzy'.*"):
        latency_report(reference=REF, hypothesis=[], matching="fuzzy")
