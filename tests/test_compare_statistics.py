"""Results.table(ci=True), Results.significance and the audit column of compare()."""

import pytest

import asr_lab
from asr_lab.compare import compare
from asr_lab.testing import TimelineASR, timeline_dataset

SENTENCES = [
    "the cat sat on the mat", "a dog ran in the park today", "we like green tea and cake",
    "birds sing in the early morning", "rain fell on the old roof", "she reads a book every night",
    "the train left the station late", "my friend plays the piano well",
]


def dataset():
    return timeline_dataset(SENTENCES)


ALL = [w for u in dataset() for w in u.timeline]


def perfect():
    return asr_lab.OnlineASRProcessor(TimelineASR(ALL), min_chunk_sec=0.5)


def lossy():  # misses every 'the' and 'a': a real WER gap on every utterance
    return asr_lab.OnlineASRProcessor(TimelineASR([w for w in ALL if w[2] not in ("the", "a")]), min_chunk_sec=0.5)


@pytest.fixture(scope="module")
def results():
    return compare({"perfect": perfect, "lossy": lossy}, dataset(), clock="virtual", chunk_sec=0.5, repeats=2, progress=False)


def test_table_with_intervals_spread_word_count_and_audits(results):
    t = results.table(ci=True, resamples=200)
    for col in ("wer", "latency_p50", "latency_p90"):
        assert {f"{col}_low", f"{col}_high"} <= set(t.columns)
        assert (t[f"{col}_low"] <= t[col] + 1e-12).all() and (t[col] <= t[f"{col}_high"] + 1e-12).all()
    cols = list(t.columns)
    assert cols.index("wer_low") == cols.index("wer") + 1 and cols.index("wer_spread") == cols.index("wer") + 3
    assert t.loc["perfect", "wer_high"] == 0 and t.loc["lossy", "wer_low"] > 0
    n_words = sum(len(s.split()) for s in SENTENCES)
    assert t.loc["perfect", "latency_count"] == 2 * n_words  # every word, both repeats
    findings = {s: [f for (sys_, _, _), tr in results.traces.items() if sys_ == s for f in tr.audit()] for s in t.index}
    assert all(f.kind == "latency_spike" for fs in findings.values() for f in fs)  # only contention, if anything
    assert [t.loc[s, "audit_findings"] for s in t.index] == [len(findings[s]) for s in t.index]
    assert "wer_low" not in results.table().columns  # plain table unchanged


def test_significance_of_a_real_gap(results):
    sig = results.significance("perfect", "lossy", "wer", resamples=300)
    s = results.summary
    assert sig.difference == pytest.approx(s.loc["perfect", "wer"] - s.loc["lossy", "wer"])
    assert sig.significant and sig.high < 0 and sig.utterances == len(SENTENCES)
    assert sig.a_spread == 0 and sig.b_spread == 0  # a deterministic recogniser: WER does not move between runs
    with pytest.raises(ValueError, match="unknown system 'nope'.*perfect"):
        results.significance("perfect", "nope")


def test_audit_findings_are_counted_per_system():
    class LateStamps:
        """Stand-in engine whose segments claim audio the replay had not fed yet."""

        def init(self, offset=0.0):
            self.t = offset

        def insert_audio_chunk(self, audio):
            self.t += len(audio) / 16000

        def process_iter(self):
            return (self.t, self.t + 1.0, "future")

        def finish(self):
            return None

    res = compare({"bad": LateStamps}, dataset()[:2], clock="virtual", chunk_sec=0.5, progress=False)
    assert res.summary.loc["bad", "audit_findings"] > 0
    assert res.table().loc["bad", "audit_findings"] == res.summary.loc["bad", "audit_findings"]


def test_simultaneous_family_in_tables_and_files(results, tmp_path):
    from asr_lab.metrics import simuleval_metrics

    t = results.table("simultaneous")
    assert {"AL", "LAAL_CA", "YAAL", "EndOffset_CA"} <= set(t.columns)
    per_utt = [simuleval_metrics(tr, results.references[u].text)["LAAL"]
               for (s, u, _), tr in results.traces.items() if s == "perfect"]
    assert t.loc["perfect", "LAAL"] == pytest.approx(sum(per_utt) / len(per_utt))  # SimulEval: mean of instances
    assert (t["LAAL_CA"] >= t["LAAL"]).all()
    assert "AL_CA" in results.utterances.columns
    out = results.to_files(tmp_path / "out")
    log = (out / "simuleval" / "perfect.instances.log").read_text().splitlines()
    assert len(log) == len(SENTENCES)


def test_simultaneous_family_gets_intervals_and_significance(results):
    t = results.table("simultaneous", ci=True, resamples=200)
    assert (t["LAAL_low"] <= t["LAAL"] + 1e-12).all() and (t["LAAL"] <= t["LAAL_high"] + 1e-12).all()
    sig = results.significance("perfect", "lossy", "LAAL_CA", resamples=200)
    s = results.summary
    assert sig.difference == pytest.approx(s.loc["perfect", "LAAL_CA"] - s.loc["lossy", "LAAL_CA"])
