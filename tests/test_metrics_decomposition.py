"""Per-word latency decomposition: recognition + policy hold + compute = latency."""

import dataclasses

import pytest

import asr_lab
from asr_lab.metrics import latency_report
from asr_lab.metrics.decomposition import Decomposition, latency_decomposition
from asr_lab.testing import TimelineASR, words_from_text

WORDS = words_from_text("the cat sat on the mat and then it slept all day long", pause_every=4)


def replayed(clock="unaware", unstable=0.3, chunk=0.5, **kw):
    proc = asr_lab.OnlineASRProcessor(TimelineASR(WORDS, unstable_tail_sec=unstable), min_chunk_sec=chunk)
    return asr_lab.replay(proc, TimelineASR.stream_audio(WORDS[-1][1] + 1), clock=clock, chunk_sec=chunk, **kw)


def test_parts_add_up_to_the_latency_of_each_word():
    trace = replayed("virtual", slowdown=500.0)  # stretch the stand-in's tiny compute so it shows
    d = latency_decomposition(trace, WORDS)
    report = latency_report(reference=WORDS, hypothesis=trace.emissions, clock="virtual")
    assert len(d.words) == report.matched_words == 13 and d.has_partials
    by_ref = {w.ref_index: w.latency for w in report.words}
    for w in d.words:
        assert w.recognition + w.policy_hold + w.compute == pytest.approx(w.latency)
        assert w.latency == pytest.approx(by_ref[w.ref_index])
        assert w.policy_hold >= 0 and w.compute > 0
    assert d.latency.mean == pytest.approx(d.recognition.mean + d.policy_hold.mean + d.compute.mean)


def test_localagreement_holds_each_word_one_chunk_after_it_is_heard():
    # an ideal recogniser whose last 0.3 s are garbled: a word is heard correctly once its end
    # is 0.3 s inside the fed audio (recognition < 0.3 s + one chunk); LocalAgreement-2 then
    # needs a second agreeing hypothesis, one chunk later (policy hold = chunk)
    for chunk in (0.5, 1.0):
        d = latency_decomposition(replayed(chunk=chunk), WORDS)
        assert all(w.policy_hold == pytest.approx(chunk) for w in d.words[:-1])
        assert 0 < d.words[-1].policy_hold <= chunk + 1e-9  # the stream's last step may be shorter
        assert all(0.3 - 1e-9 <= w.recognition <= 0.3 + chunk + 1e-9 for w in d.words)
        assert d.compute.max == 0  # unaware clock


def test_without_partials_the_hold_folds_into_recognition():
    trace = replayed()
    bare = dataclasses.replace(trace, partials=[])
    d = latency_decomposition(bare, WORDS)
    assert not d.has_partials and d.policy_hold.max == 0
    full = latency_decomposition(trace, WORDS)
    assert d.recognition.mean == pytest.approx(full.recognition.mean + full.policy_hold.mean)


def test_pool_table_and_errors():
    a, b = latency_decomposition(replayed(), WORDS), latency_decomposition(replayed(chunk=1.0), WORDS)
    pooled = Decomposition.pool([a, b])
    assert len(pooled.words) == 26 and pooled.reference_words == 26
    row = pooled.to_dict()
    assert row["decomposed_words"] == 26 and "policy_hold_p90" in row
    assert list(a.to_dataframe().columns)[:2] == ["ref_index", "word"]
    with pytest.raises(ValueError, match="word timings"):
        latency_decomposition(replayed(), "the cat sat")


def test_plot_of_results(tmp_path):
    from matplotlib.figure import Figure

    from asr_lab import plots
    from asr_lab.compare import compare

    class Utt:
        id, text, words = "u0", " ".join(w for *_, w in WORDS), WORDS

        def load_audio(self):
            return TimelineASR.stream_audio(WORDS[-1][1] + 1)

    def clear_tail():
        return asr_lab.OnlineASRProcessor(TimelineASR(WORDS, unstable_tail_sec=0.1), min_chunk_sec=0.5)

    def garbled_tail():
        return asr_lab.OnlineASRProcessor(TimelineASR(WORDS, unstable_tail_sec=0.9), min_chunk_sec=0.5)

    # unaware clock: the steps do not depend on how long the stand-in computed on a shared machine
    res = compare({"tail 0.1 s": clear_tail, "tail 0.9 s": garbled_tail}, [Utt()], clock="unaware", chunk_sec=0.5,
                  progress=False)
    table = res.latency_decomposition()
    assert list(table.index) == ["tail 0.1 s", "tail 0.9 s"]
    assert table.loc["tail 0.9 s", "recognition_mean"] > table.loc["tail 0.1 s", "recognition_mean"] + 0.5
    assert table.loc["tail 0.9 s", "policy_hold_mean"] == pytest.approx(table.loc["tail 0.1 s", "policy_hold_mean"], abs=0.1)
    fig = res.plot_latency_decomposition()
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 6  # 3 parts x 2 systems
    by_chunk = {f"LA-2, {c} s chunks": latency_decomposition(replayed("virtual", chunk=c, slowdown=300.0), WORDS)
                for c in (0.5, 1.0)}
    fig = plots.latency_decomposition(by_chunk)
    fig.savefig(tmp_path / "decomposition.png")
    if __import__("os").environ.get("ASR_LAB_FIGURES"):
        fig.savefig(__import__("os").environ["ASR_LAB_FIGURES"] + "/decomposition.png", dpi=110)
    empty = plots.latency_decomposition({})
    assert isinstance(empty, Figure)
