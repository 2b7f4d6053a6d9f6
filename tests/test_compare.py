"""The comparison runner: tables, corpus aggregation, cache and resume, failures, executors."""

import json
from concurrent.futures import ProcessPoolExecutor

import multiprocessing
import pytest

import asr_lab
from asr_lab.backends import registry
from asr_lab.compare import CACHE_FILE, Results, compare
from asr_lab.testing import TimelineASR, timeline_dataset

SENTENCES = ["the cat sat on the mat", "a dog ran in the park today", "we like green tea and cake"]


def make_dataset():
    return timeline_dataset(SENTENCES)


ALL_WORDS = [w for u in make_dataset() for w in u.timeline]


class TimelineLoader:
    """Stand-in backend: LocalAgreement over an ideal recogniser of the test timeline."""

    def load(self, config):
        drop = (config.model or "") == "drop-last"
        words = [w for w in ALL_WORDS if not (drop and w[2] in ("mat", "today", "cake"))]
        asr = TimelineASR(words, unstable_tail_sec=0.3)
        return asr_lab.OnlineASRProcessor(asr, min_chunk_sec=config.min_chunk_size), {"separator": " "}


class CrashingLoader:
    def load(self, config):
        raise RuntimeError("weights are corrupt")


@pytest.fixture(autouse=True)
def backends():
    asr_lab.register_loader("timeline-test", TimelineLoader())
    asr_lab.register_loader("crash-test", CrashingLoader())
    yield
    registry.unregister_loader("timeline-test")
    registry.unregister_loader("crash-test")


def test_tables_and_corpus_figures(tmp_path):
    # the stand-in audio starts at each utterance's offset; shift the reference words accordingly
    data = make_dataset()
    configs = {"perfect": {"backend": "timeline-test", "min_chunk_size": 0.5},
               "lossy": {"backend": "timeline-test", "model": "drop-last", "min_chunk_size": 0.5}}
    res = compare(configs, data, clock="unaware", progress=False)
    assert res.systems == ["perfect", "lossy"] and not res.failures
    u = res.utterances
    assert len(u) == 6 and set(u.columns) >= {"system", "utterance", "wer", "latency_p50", "normalized_erasure", "rtf"}
    s = res.summary
    assert s.loc["perfect", "wer"] == 0
    n_words = sum(len(x.text.split()) for x in data)
    assert s.loc["lossy", "wer"] == pytest.approx(3 / n_words)  # summed errors / summed words
    assert s.loc["lossy", "deletions"] == 3
    # LocalAgreement over an ideal recogniser whose last 0.3 s are garbled: a word is first
    # heard cleanly within 0.3 s + one chunk after its end and committed one chunk later, so
    # on the unaware clock every latency lies within (0, 0.3 + 2 x 0.5] s
    assert 0 < s.loc["perfect", "latency_p50"] and s.loc["perfect", "latency_max"] <= 1.3 + 1e-9
    assert s.loc["perfect", "matched_words"] == n_words
    out = res.to_files(tmp_path / "out")
    assert (out / "summary.csv").exists() and (out / "utterances.csv").exists()
    assert len(list((out / "traces").glob("*.jsonl"))) == 6
    assert "| perfect |" in (out / "summary.md").read_text()


def test_a_failing_system_is_recorded_and_the_rest_go_on():
    res = compare({"ok": {"backend": "timeline-test"}, "bad": {"backend": "crash-test"}}, make_dataset(), clock="unaware", progress=False)
    assert len(res.failures) == 3 and all("weights are corrupt" in r.error for r in res.failures)
    assert res.summary.loc["bad", "failed"] == 3 and res.summary.loc["ok", "failed"] == 0
    assert "Failures:" in res.markdown()


def test_typos_fail_before_any_work():
    with pytest.raises(asr_lab.ConfigError, match="min_chunk_sise"):
        compare({"x": {"backend": "timeline-test", "min_chunk_sise": 1}}, make_dataset(), progress=False)
    with pytest.raises(KeyError, match="unknown backend"):
        compare({"x": {"backend": "no-such"}}, make_dataset(), progress=False)
    with pytest.raises(ValueError, match="repeats=0"):
        compare({"x": {"backend": "timeline-test"}}, make_dataset(), repeats=0)


def test_cache_resumes_a_killed_run_and_gives_the_same_table(tmp_path):
    configs = {"a": {"backend": "timeline-test", "min_chunk_size": 0.5}}
    full = compare(configs, make_dataset(), clock="unaware", cache_dir=tmp_path, progress=False)
    lines = (tmp_path / CACHE_FILE).read_text().splitlines()
    assert len(lines) == 3
    # simulate a kill after the first run, with half a line written
    (tmp_path / CACHE_FILE).write_text(lines[0] + "\n" + lines[1][:50])
    with pytest.warns(RuntimeWarning, match="unreadable run record"):
        resumed = compare(configs, make_dataset(), clock="unaware", cache_dir=tmp_path, progress=False)
    # wall-clock measurements differ between any two runs; so do the computation-aware (_CA)
    # simultaneous metrics, which an unaware-clock trace rebuilds from measured compute
    measured = ["rtf", "compute_sec"] + [c for c in full.summary.columns if c.endswith("_CA")]
    diff = [c for c in full.summary.columns if c not in measured and not resumed.summary[c].equals(full.summary[c])]
    assert diff == []
    records = [json.loads(x) for x in (tmp_path / CACHE_FILE).read_text().splitlines()[2:]]
    assert sorted(r["utterance"] for r in records) == ["u1", "u2"]  # only the missing runs ran again
    # a finished cache re-scores without running anything
    again = compare(configs, make_dataset(), clock="unaware", cache_dir=tmp_path, progress=False)
    assert again.utterances["wer"].tolist() == full.utterances["wer"].tolist()
    # a different clock or chunk is a different run
    before = len((tmp_path / CACHE_FILE).read_text().splitlines())
    compare(configs, make_dataset(), clock="unaware", chunk_sec=1.0, cache_dir=tmp_path, progress=False)
    assert len((tmp_path / CACHE_FILE).read_text().splitlines()) == before + 3


def test_repeats_give_run_to_run_spread():
    res = compare({"a": {"backend": "timeline-test", "min_chunk_size": 0.5}}, make_dataset(), clock="virtual", repeats=2, progress=False)
    assert len(res.records) == 6
    assert "latency_p50_spread" in res.summary.columns and res.summary.loc["a", "wer_spread"] == 0


def test_process_pool_gives_the_same_words():
    ctx = multiprocessing.get_context("fork")  # registered stand-in loaders are inherited by forked workers
    configs = {"a": {"backend": "timeline-test", "min_chunk_size": 0.5}}
    local = compare(configs, make_dataset(), clock="unaware", progress=False)
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        pooled = compare(configs, make_dataset(), clock="unaware", executor=pool, progress=False)
    assert pooled.utterances["hypothesis"].tolist() == local.utterances["hypothesis"].tolist()
    assert pooled.summary.loc["a", "latency_p50"] == local.summary.loc["a", "latency_p50"]


def test_factories_are_accepted():
    res = compare({"f": lambda: TimelineLoader().load(asr_lab.ASRConfig(min_chunk_size=0.5))[0]}, make_dataset(), clock="unaware", progress=False)
    assert res.summary.loc["f", "wer"] == 0
    assert isinstance(res, Results) and "Results(1 systems" in repr(res)


def test_plots_render_from_results(tmp_path):
    from matplotlib.figure import Figure

    from asr_lab import plots

    configs = {"fast": {"backend": "timeline-test", "min_chunk_size": 0.3},
               "slow": {"backend": "timeline-test", "min_chunk_size": 1.0},
               "lossy": {"backend": "timeline-test", "model": "drop-last", "min_chunk_size": 1.0}}
    res = compare(configs, make_dataset(), clock="unaware", progress=False)
    assert res.summary.loc["fast", "wer"] == 0 and res.summary.loc["lossy", "wer"] > 0
    for fig in (res.plot_waterfall(), res.plot_latency(against="engine"), res.plot_wer_vs_latency(), res.plot_stability("u1")):
        assert isinstance(fig, Figure) and fig.axes
    ax = res.plot_waterfall("u0").axes[0]
    assert ax.get_xlabel().startswith("audio time") and len(ax.collections) >= 3
    paths = plots.save_all(res, tmp_path)
    assert all(p.stat().st_size > 5000 for p in paths)
    # slow and lossy have the same latency; lossy has worse WER: the front is fast and slow only if slow wins on WER
    front = plots.pareto_front([(1.0, 0.1), (0.5, 0.3), (2.0, 0.05), (1.5, 0.2)])
    assert front == [1, 0, 2]
    with pytest.raises(KeyError, match="known: u0"):
        res.plot_waterfall("nope")


def test_waterfall_and_stability_take_plain_traces():
    from asr_lab import plots

    u = make_dataset()[0]
    proc = TimelineLoader().load(asr_lab.ASRConfig(min_chunk_size=0.5))[0]
    trace = asr_lab.replay(proc, u.load_audio(), clock="unaware", meta={"backend": "timeline"})
    fig = plots.waterfall(trace, reference_words=u.words)
    assert "timeline" in fig.axes[0].get_legend_handles_labels()[1][0]
    assert plots.stability_over_time({"a": trace, "b": trace}).axes[0].get_legend_handles_labels()[1][0] == "a committed"


@pytest.mark.slow
def test_dask_local_cluster_runs_a_real_engine():
    pytest.importorskip("pocketsphinx")
    distributed = pytest.importorskip("dask.distributed")
    from pathlib import Path

    mini = asr_lab.load_dataset(Path(__file__).resolve().parent.parent / "datasets" / "mini")
    data = mini[:3]
    configs = {"sphinx": {"backend": "pocketsphinx", "min_chunk_size": 0.5}}
    local = compare(configs, data, clock="unaware", progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            remote = compare(configs, data, clock="unaware", executor=client.get_executor(), progress=False)
    assert not remote.failures
    assert remote.utterances["hypothesis"].tolist() == local.utterances["hypothesis"].tolist()
    assert remote.summary.loc["sphinx", "wer"] == local.summary.loc["sphinx", "wer"] < 0.3


def test_default_step_is_the_backends_own_min_chunk_size():
    class QuickConfig(asr_lab.ASRConfig):
        min_chunk_size: float = 0.25

    class QuickLoader(TimelineLoader):
        config_class = QuickConfig

    asr_lab.register_loader("quick-test", QuickLoader())
    try:
        res = compare({"q": {"backend": "quick-test"}}, make_dataset()[:1], clock="unaware", progress=False)
    finally:
        registry.unregister_loader("quick-test")
    assert res.traces[("q", "u0", 0)].meta["chunk_sec"] == 0.25


class CountingFactory:
    """A factory object (not a function): writes a line to ``log`` each time it builds a processor."""

    def __init__(self, log):
        self.log = str(log)

    def __call__(self):
        import os

        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return asr_lab.OnlineASRProcessor(TimelineASR(ALL_WORDS, unstable_tail_sec=0.3), min_chunk_sec=0.5)


def test_a_factory_object_builds_one_engine_per_worker_process_not_one_per_utterance(tmp_path):
    log = tmp_path / "built.txt"
    data = make_dataset() * 1
    res = compare({"counted": CountingFactory(log)}, data, clock="unaware", repeats=3, workers=2, progress=False)
    assert not res.failures and len(res.records) == 9
    pids = log.read_text().split()
    assert len(pids) == len(set(pids)) <= 2  # each worker built it once, then reused it
    log.unlink()
    compare({"counted": CountingFactory(log)}, data, clock="unaware", repeats=2, progress=False)  # in this process
    assert len(log.read_text().split()) == 1
