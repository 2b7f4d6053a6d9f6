"""The streaming penalty: each system run offline on each whole utterance, the WER difference with its paired bootstrap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import asr_lab
from asr_lab.compare import compare
from asr_lab.metrics import paired_bootstrap

ROOT = Path(__file__).resolve().parent.parent


def test_whole_chunk_replay_is_one_call_then_finish():
    pytest.importorskip("pocketsphinx")
    utt = asr_lab.load_dataset(ROOT / "datasets" / "librivox")["librivox-0880"]
    proc, _ = asr_lab.load_processor({"backend": "pocketsphinx"})
    trace = asr_lab.replay(proc, utt, clock="unaware", chunk_sec="whole")
    assert len(trace.steps) == 2 and trace.steps[0].fed_until == pytest.approx(utt.duration, abs=1e-3)
    assert trace.meta["chunk_sec"] == pytest.approx(utt.duration, abs=1e-3)
    with pytest.raises(ValueError, match="or 'whole'"):
        asr_lab.replay(proc, utt, chunk_sec="all")


@pytest.mark.slow
def test_offline_twins_and_the_penalty_table(tmp_path):
    pytest.importorskip("pocketsphinx")
    ds = asr_lab.load_dataset(ROOT / "datasets" / "librivox").filter(kind="utterance")
    res = compare({"ps-la": {"backend": "pocketsphinx-la"}}, ds, offline=True, cache_dir=tmp_path, progress=False)
    assert res.systems == ["ps-la", "ps-la (offline)"] and not res.failures
    for (system, _, _), trace in res.traces.items():
        if system.endswith("(offline)"):
            assert trace.meta["clock"] == "unaware" and len(trace.steps) == 2
    table = res.streaming_penalty()
    row = table.loc["ps-la"]
    wer = res.summary["wer"]
    assert row["wer_streaming"] == pytest.approx(wer["ps-la"]) and row["wer_offline"] == pytest.approx(wer["ps-la (offline)"])
    assert row["penalty"] == pytest.approx(wer["ps-la"] - wer["ps-la (offline)"])
    reference = paired_bootstrap(res._per_utterance("ps-la"), res._per_utterance("ps-la (offline)"), "wer", seed=0)
    assert (row["penalty_low"], row["penalty_high"], row["p_value"]) == (reference.low, reference.high, reference.p_value)
    assert row["utterances"] == len(ds) and np.isfinite(row["penalty_low"])
    md = res.markdown()
    assert "Streaming penalty" in md and "normalised with 'whisper-english'" in md
    assert res.summary.loc["ps-la", "normalizer"] == "whisper-english"
    with pytest.raises(ValueError, match="no system has an offline run"):
        compare({"ps": {"backend": "pocketsphinx"}}, ds[:1], cache_dir=tmp_path / "b", progress=False).streaming_penalty()
