"""The new metrics on a real engine and real speech: pocketsphinx on LibriVox (public domain)."""

import json
from pathlib import Path

import pytest

import asr_lab
from asr_lab import export
from asr_lab.metrics import simuleval_metrics
from asr_lab.replay.audit import AUDIT_KINDS

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
UTT = "sense_and_sensibility_01_austen_64kb-0870"

pytest.importorskip("pocketsphinx")
scorers = pytest.importorskip("simuleval.evaluator.scorers.latency_scorer").LATENCY_SCORERS_DICT
instance = pytest.importorskip("simuleval.evaluator.instance")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not LIBRIVOX.is_dir(), reason="apt-get install pocketsphinx-testdata"),
]


def reference_text():
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        if line.endswith(f"({UTT})"):
            return line.split("<s>")[1].split("</s>")[0].strip()
    raise AssertionError(f"{UTT} not in the transcription file")


def test_pocketsphinx_on_librivox_scores_like_simuleval_and_audits():
    proc, meta = asr_lab.load_processor({"backend": "pocketsphinx", "lan": "en"})
    trace = asr_lab.replay(proc, LIBRIVOX / f"{UTT}.wav", clock="virtual", chunk_sec=0.25, separator=meta["separator"])
    ref = reference_text()
    assert trace.ok and trace.emissions and trace.duration > 5
    assert asr_lab.score(trace, ref).wer.rate < 0.5  # a real recogniser on real speech
    ours = simuleval_metrics(trace, ref)
    ins = instance.LogInstance(export.to_simuleval_log(trace, references=ref))
    for key in ("AL", "LAAL", "DAL", "AP", "ATD", "StartOffset", "EndOffset"):
        for aware, suffix in ((False, ""), (True, "_CA")):
            theirs = scorers[key](computation_aware=aware)({0: ins})
            assert ours[key + suffix] * (1 if key == "AP" else 1000) == pytest.approx(theirs, rel=1e-9), key + suffix
    assert ours["EndOffset_CA"] >= ours["EndOffset"]  # emitted no earlier than its audio was fed
    # every audit finding is one of the documented kinds and names where it happened
    for finding in trace.audit():
        assert finding.kind in AUDIT_KINDS and str(finding)
    line = json.loads(export.to_simuleval_log(trace, references=ref))
    assert line["source_length"] == pytest.approx(trace.duration * 1000)
