"""Normalized erasure, updates, revisions and time-to-stable — hand-computed."""

import math
from dataclasses import dataclass

import pandas as pd
import pytest

from asr_lab.metrics import (
    StabilityAccumulator,
    StabilityReport,
    display_snapshots,
    displayed_words,
    erased_words,
    stability_report,
)

# (time, committed, partial) -> displayed words
SNAPSHOTS = [
    (0.5, "", "I"),  # [i]
    (1.0, "", "I scream"),  # [i, scream]            erased 0
    (1.5, "", "Ice cream"),  # [ice, cream]           erased 2 (no common prefix)
    (2.0, "Ice", "cream is"),  # [ice, cream, is]     erased 0
    (2.5, "Ice cream", ""),  # [ice, cream]           erased 1 ("is")
    (3.0, "Ice cream is good.", ""),  # final [ice, cream, is, good]
]


def test_erased_words_is_length_minus_common_prefix():
    assert erased_words(previous=["a", "b", "c"], current=["a", "x", "c"]) == 2
    assert erased_words(previous=["a", "b"], current=["a", "b", "c"]) == 0
    assert erased_words(previous=["a", "b"], current=[]) == 2
    assert erased_words(previous=[], current=["a"]) == 0


def test_displayed_words_joins_committed_and_partial():
    out = displayed_words(snapshots=[(0.0, "Hello,", "world"), (1.0, "Hello world", None)])
    assert out == [(0.0, ["hello", "world"]), (1.0, ["hello", "world"])]


def test_report_hand_computed():
    r = stability_report(snapshots=SNAPSHOTS)
    assert r.snapshots == 6 and r.updates == 6
    assert r.final_words == 4 and r.erased_words == 3
    assert r.normalized_erasure == pytest.approx(0.75)
    assert [(w.word, w.revisions, w.first_shown, w.stable_since) for w in r.words] == [
        ("ice", 1, 0.5, 1.5),  # "i" -> "ice"
        ("cream", 1, 1.0, 1.5),  # "scream" -> "cream"
        ("is", 0, 2.0, 3.0),  # vanished at 2.5 and came back: erasure, not a revision; stable from 3.0
        ("good", 0, 3.0, 3.0),
    ]
    assert r.revised_words == 2
    assert (r.revisions.mean, r.revisions.max) == (0.5, 1.0)
    assert [w.time_to_stable for w in r.words] == pytest.approx([1.0, 0.5, 1.0, 0.0])
    assert r.time_to_stable.mean == pytest.approx(0.625)
    assert r.time_to_stable.p50 == pytest.approx(0.75)
    assert r.time_to_stable.p90 == pytest.approx(1.0)


def test_committed_only_engine_is_perfectly_stable():
    snaps = [(1.0, "hello", ""), (1.0, "hello", ""), (2.0, "hello world", "")]
    r = stability_report(snapshots=snaps)
    assert r.erased_words == 0 and r.normalized_erasure == 0.0
    assert r.updates == 2  # the repeated display is not an update
    assert r.revisions.max == 0 and r.time_to_stable.max == 0.0


def test_punctuation_changes_are_not_revisions_unless_normalisation_is_off():
    snaps = [(0.0, "", "hello"), (1.0, "Hello.", "")]
    assert stability_report(snapshots=snaps).revisions.max == 0
    raw = stability_report(snapshots=snaps, normalize=None)
    assert raw.revisions.max == 1 and raw.erased_words == 1


def test_a_word_inserted_in_front_shifts_every_position():
    snaps = [(0.0, "", "cat sat"), (1.0, "", "the cat sat")]
    r = stability_report(snapshots=snaps)
    assert r.erased_words == 2 and r.normalized_erasure == pytest.approx(2 / 3)
    assert [w.revisions for w in r.words] == [1, 1, 0]


def test_empty_inputs():
    r = stability_report(snapshots=[])
    assert r.snapshots == 0 and r.final_words == 0 and math.isnan(r.normalized_erasure)
    gone = stability_report(snapshots=[(0.0, "", "uh huh"), (1.0, "", "")])
    assert gone.erased_words == 2 and gone.normalized_erasure == math.inf


def test_objects_and_dicts():
    @dataclass
    class Snapshot:
        time: float
        committed: str
        partial: str

    a = stability_report(snapshots=SNAPSHOTS)
    b = stability_report(snapshots=[Snapshot(*s) for s in SNAPSHOTS])
    c = stability_report(snapshots=[{"time": t, "committed": c, "partial": p} for t, c, p in SNAPSHOTS])
    assert a == b == c and a.words == b.words


def test_dict_roundtrip_also_through_pandas():
    r = stability_report(snapshots=SNAPSHOTS)
    flat = r.to_dict()
    assert flat["normalized_erasure"] == pytest.approx(0.75) and flat["revisions_mean"] == 0.5
    assert StabilityReport.from_dict(flat) == r
    assert StabilityReport.from_dict(pd.DataFrame([flat]).iloc[0].to_dict()) == r
    assert StabilityReport.from_dict(r.to_dict(include_words=True)).words == r.words


def test_accumulator_sums_erasures():
    acc = StabilityAccumulator()
    acc.update(snapshots=SNAPSHOTS)  # 3 erased / 4 final words
    acc.update(snapshots=[(0.0, "", "a b c d e f"), (1.0, "a b c d e f", "")])  # 0 / 6, one update
    total = acc.compute()
    assert len(acc) == 2
    assert total.normalized_erasure == pytest.approx(3 / 10)  # not mean(0.75, 0) = 0.375
    assert total.final_words == 10 and total.updates == 7 and total.revised_words == 2
    assert total.revisions.count == 10 and total.revisions.mean == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no per-word records"):
        acc.add(StabilityReport.from_dict(stability_report(snapshots=SNAPSHOTS).to_dict()))
    with pytest.raises(TypeError, match="takes a StabilityReport"):
        acc.add(0.75)
    acc.reset()
    assert len(acc) == 0 and acc.compute().final_words == 0


@pytest.mark.parametrize(
    "snapshots, error, message",
    [
        ([(1.0, "a", ""), (0.5, "a b", "")], ValueError, r"snapshots\[1\] time 0\.5 is before.*sort them by time"),
        ([(0.0, "a")], ValueError, r"snapshots\[0\] must be \(time, committed_text, partial_text\), got 2 items"),
        ([(-1.0, "a", "")], ValueError, r"snapshots\[0\] time must be >= 0"),
        ([(float("nan"), "a", "")], ValueError, r"snapshots\[0\] time must be a finite number"),
        ([(0.0, "a", 5)], TypeError, r"snapshots\[0\] partial text must be a str, got int 5"),
        ([(0.0, None, "")], TypeError, r"snapshots\[0\] committed text must be a str"),
        (["hello"], TypeError, r"snapshots\[0\] must be \(time, committed_text, partial_text\), got the str"),
        ([{"committed": "a"}], TypeError, r"snapshots\[0\] has no 'time'"),
        ("hello", TypeError, r"snapshots must be a sequence"),
    ],
)
def test_bad_snapshots_are_named(snapshots, error, message):
    with pytest.raises(error, match=message):
        stability_report(snapshots=snapshots)


def test_display_snapshots_from_emissions_and_partials():
    ems = [
        {"start": 0.0, "end": 1.0, "text": "ice cream", "emitted_at": 2.0},
        {"start": 1.0, "end": 2.0, "text": "is good", "emitted_at": 3.0},
    ]
    partials = [(1.0, "I scream"), (2.0, "is"), (2.5, "is goo"), (3.0, "")]
    snaps = display_snapshots(emissions=ems, partials=partials)
    assert snaps == [
        (1.0, "", "I scream"),
        (2.0, "ice cream", "is"),  # emission and new partial at the same time: one snapshot
        (2.5, "ice cream", "is goo"),
        (3.0, "ice cream is good", ""),
    ]
    r = stability_report(snapshots=snaps)
    # [i scream] -> [ice cream is]: 2 erased; [ice cream is goo] -> [ice cream is good]: 1 erased
    assert r.erased_words == 3 and r.final_words == 4
    assert [w.revisions for w in r.words] == [1, 1, 0, 1]


def test_display_snapshots_closes_with_the_committed_text_and_uses_the_separator():
    ems = [{"emitted_at": 1.0, "text": " Hello"}, {"emitted_at": 2.0, "text": " world"}]
    snaps = display_snapshots(emissions=ems, partials=[(2.0, " wor")], separator="")
    assert snaps == [(1.0, " Hello", ""), (2.0, " Hello world", " wor"), (2.0, " Hello world", "")]
    with pytest.raises(ValueError, match=r"partials\[0\] must be \(time, partial_text\)"):
        display_snapshots(emissions=[], partials=[(1.0, "a", "b")])
    with pytest.raises(ValueError, match=r"emissions\[0\]\.emitted_at must be >= 0"):
        display_snapshots(emissions=[{"emitted_at": -1.0, "text": "a"}])


def test_replay_style_records_are_accepted():
    @dataclass
    class PartialSnapshot:  # the field names asr_lab.replay uses
        at: float
        text: str
        committed: str

    snaps = [PartialSnapshot(t, p, c) for t, c, p in SNAPSHOTS]
    assert stability_report(snapshots=snaps) == stability_report(snapshots=SNAPSHOTS)
    assert display_snapshots(emissions=[], partials=snaps[:2]) == [(0.5, "", "I"), (1.0, "", "I scream"), (1.0, "", "")]
