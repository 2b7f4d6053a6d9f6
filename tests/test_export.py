"""Exporters (SimulEval, OmniSTEval, CTM, SRT, WebVTT) read by the tools themselves, and the SimulEval importer."""

import json
import math

import pytest

import asr_lab
from asr_lab import export
from asr_lab.metrics.simultaneous import simuleval_metrics, word_delays
from asr_lab.testing import TimelineASR, words_from_text

WORDS = words_from_text("the cat sat on the mat and then it slept all day long", pause_every=4)
TEXT = "the cat sat on the mat and then it slept all day long"
WORDS2 = words_from_text("birds sing in the early morning light", pause_every=3)
TEXT2 = "birds sing in the early morning light"


def replayed(words, clock="virtual"):
    proc = asr_lab.OnlineASRProcessor(TimelineASR(words), min_chunk_sec=0.5)
    return asr_lab.replay(proc, TimelineASR.stream_audio(words[-1][1] + 1), clock=clock, slowdown=200.0)


@pytest.fixture(scope="module")
def traces():
    return {"utt_a": replayed(WORDS), "utt_b": replayed(WORDS2)}


REFS = {"utt_a": TEXT, "utt_b": TEXT2}


def test_simuleval_scores_our_log_as_we_do(traces, tmp_path):
    instance = pytest.importorskip("simuleval.evaluator.instance")
    scorers = pytest.importorskip("simuleval.evaluator.scorers.latency_scorer").LATENCY_SCORERS_DICT
    text = export.to_simuleval_log(traces, tmp_path / "instances.log", references=REFS)
    assert (tmp_path / "instances.log").read_text() == text
    lines = text.splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["prediction"] == TEXT
    for line, (name, trace) in zip(lines, traces.items()):
        ins = instance.LogInstance(line)
        ours = simuleval_metrics(trace, REFS[name])
        for key in ("AL", "LAAL", "DAL", "AP", "ATD", "StartOffset", "EndOffset"):
            for aware, suffix in ((False, ""), (True, "_CA")):
                theirs = scorers[key](computation_aware=aware)({0: ins})
                scale = 1 if key == "AP" else 1000
                assert ours[key + suffix] * scale == pytest.approx(theirs, rel=1e-9), key + suffix


def test_omnisteval_shortform_reads_the_folder(traces, tmp_path):
    omni_io = pytest.importorskip("omnisteval.io")
    omni_scoring = pytest.importorskip("omnisteval.scoring")
    out = export.to_omnisteval(traces, tmp_path / "omni", references=REFS)
    instances = omni_io.load_shortform_instances(str(out / "instances.log"), str(out / "references.txt"), "delays", "elapsed")
    scores, _, _ = omni_scoring.evaluate_instances(instances, compute_quality=False, is_longform=False)
    ours = [simuleval_metrics(t, REFS[n]) for n, t in traces.items()]
    mean = lambda key: sum(o[key] for o in ours) / len(ours)
    assert scores["yaal"] == pytest.approx(mean("YAAL") * 1000, rel=1e-9)
    assert scores["ca_yaal"] == pytest.approx(mean("YAAL_CA") * 1000, rel=1e-9)
    assert scores["laal"] == pytest.approx(mean("LAAL") * 1000, rel=1e-9)
    assert (out / "segmentation.yaml").read_text().count("wav:") == 2
    with pytest.raises(ValueError, match="reference text"):
        export.to_omnisteval(traces, tmp_path / "x")


def test_omnisteval_longform_cli_gives_our_yaal(traces, tmp_path):
    import re
    import shutil
    import subprocess

    exe = shutil.which("omnisteval")
    if exe is None:
        pytest.skip("the omnisteval command is not installed (pip install 'asr-lab[dev]')")
    out = export.to_omnisteval(traces, tmp_path / "omni", references=REFS)
    run = subprocess.run(
        [exe, "longform", "--speech_segmentation", "segmentation.yaml", "--ref_sentences_file", "references.txt",
         "--hypothesis_file", "instances.log", "--lang", "en", "--word_level"],
        cwd=out, capture_output=True, text=True, timeout=120, check=True,
    )
    found = dict(re.findall(r"LongYAAL \((CU|CA)\)\s+([0-9.]+)", run.stdout))
    ours = [simuleval_metrics(t, REFS[n]) for n, t in traces.items()]
    assert float(found["CU"]) == pytest.approx(sum(o["YAAL"] for o in ours) / 2 * 1000, abs=1e-3)
    assert float(found["CA"]) == pytest.approx(sum(o["YAAL_CA"] for o in ours) / 2 * 1000, abs=1e-3)


def test_import_round_trip_scores_the_same(traces, tmp_path):
    export.to_simuleval_log(traces, tmp_path / "instances.log", references=REFS)
    back = export.read_simuleval_log(tmp_path / "instances.log")
    assert list(back) == ["utt_a", "utt_b"]
    for name, (trace, ref) in back.items():
        assert ref == REFS[name] and trace.text == traces[name].text
        assert trace.duration == pytest.approx(traces[name].duration)
        mine, orig = simuleval_metrics(trace, ref), simuleval_metrics(traces[name], ref)
        for key, value in orig.items():
            assert mine[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        assert asr_lab.score(trace, ref).wer.rate == 0


def test_import_a_simuleval_written_log_with_the_correction():
    line = json.dumps({"index": 0, "prediction": "a b c", "delays": [500, 500, 1500], "elapsed": [700, 700, 2600],
                       "source_length": 2000, "reference": "a b c", "source": ["x.wav"]})
    (trace, ref), = export.read_simuleval_log([line]).values()
    assert [e.text for e in trace.emissions] == ["a b", "c"] and trace.duration == 2.0
    assert word_delays(trace).elapsed == (0.7, 0.7, 2.6)
    (fixed, _), = export.read_simuleval_log([line], fix_elapsed=True).values()
    # OmniSTEval: e'_3 = 2.6 − 0.7 + 0.5 = 2.4 (compute between words, from the previous word's audio)
    assert word_delays(fixed).elapsed == pytest.approx((0.7, 0.7, 2.4))
    with pytest.raises(ValueError, match="3 predicted words but 2 delays"):
        export.read_simuleval_log([line.replace("[500, 500, 1500]", "[500, 500]")])


def test_ctm_lists_committed_words_with_engine_times(traces):
    ctm = export.to_ctm(traces["utt_a"], utterance="utt_a")
    rows = [line.split() for line in ctm.splitlines()]
    assert [r[4] for r in rows] == TEXT.split()
    for (utt, ch, start, dur, _), (a, b, _) in zip(rows, WORDS):
        assert utt == "utt_a" and ch == "1"
        assert float(start) == pytest.approx(a, abs=2e-3) and float(dur) == pytest.approx(b - a, abs=2e-3)
    with pytest.raises(ValueError, match="white space"):
        export.to_ctm(traces["utt_a"], utterance="two words")


def test_srt_and_webvtt_parse_with_their_libraries(traces, tmp_path):
    srt = pytest.importorskip("srt")
    webvtt = pytest.importorskip("webvtt")
    trace = traces["utt_a"]
    subs = list(srt.parse(export.to_srt(trace)))
    assert [s.content for s in subs] == [" ".join(e.text.split()) for e in trace.emissions]
    assert subs[0].start.total_seconds() == pytest.approx(trace.emissions[0].start, abs=1e-3)
    live = list(srt.parse(export.to_srt(trace, show="emitted")))
    assert live[0].start.total_seconds() == pytest.approx(trace.emissions[0].emitted_at, abs=1e-3)
    assert all(a.end <= b.start for a, b in zip(live, live[1:]))  # a live caption stays until the next one
    export.to_webvtt(trace, tmp_path / "t.vtt")
    cues = webvtt.read(str(tmp_path / "t.vtt"))
    assert [c.text for c in cues] == [s.content for s in subs]
    h, m, sec = cues[-1].end.split(":")  # the library's own parse of the stamp (end_in_seconds drops the ms)
    assert math.isclose(int(h) * 3600 + int(m) * 60 + float(sec), trace.emissions[-1].end, abs_tol=1e-3)
    with pytest.raises(ValueError, match="show='later'"):
        export.to_srt(trace, show="later")


def test_results_export_one_system(tmp_path):
    from asr_lab.compare import compare

    class Utt:
        id, text, words = "u0", TEXT, WORDS

        def load_audio(self):
            return TimelineASR.stream_audio(WORDS[-1][1] + 1)

    def engine():
        return asr_lab.OnlineASRProcessor(TimelineASR(WORDS), min_chunk_sec=0.5)

    res = compare({"la2": engine}, [Utt()], clock="virtual", chunk_sec=0.5, progress=False)
    rec = json.loads(export.to_simuleval_log(res))
    assert rec["source"] == ["u0"] and rec["reference"] == TEXT
    export.to_omnisteval(res, tmp_path / "o", system="la2")
    with pytest.raises(ValueError, match="unknown system 'zz'"):
        export.to_simuleval_log(res, system="zz")


LONG_TEXT = "The cat sat on the mat. Then it slept all day long. Birds sang in the early morning light."


def test_long_yaal_equals_omnisteval_longform_on_sentence_segments(tmp_path):
    import re
    import shutil
    import subprocess

    from asr_lab.metrics.simultaneous import long_yaal, sentence_segments

    exe = shutil.which("omnisteval")
    if exe is None:
        pytest.skip("the omnisteval command is not installed (pip install 'asr-lab[dev]')")
    words = words_from_text(LONG_TEXT.lower().replace(".", ""), pause_every=3)
    trace = replayed(words)
    segs = sentence_segments(words, LONG_TEXT)
    assert [s[2] for s in segs][1] == "Then it slept all day long." and len(segs) == 3
    ours = long_yaal(trace, segs)
    assert 0 < ours["LongYAAL"] <= ours["LongYAAL_CA"]
    out = export.to_omnisteval({"long": trace}, tmp_path / "omni", references={"long": LONG_TEXT}, segments={"long": segs})
    run = subprocess.run(
        [exe, "longform", "--speech_segmentation", "segmentation.yaml", "--ref_sentences_file", "references.txt",
         "--hypothesis_file", "instances.log", "--lang", "en", "--word_level"],
        cwd=out, capture_output=True, text=True, timeout=120, check=True,
    )
    found = dict(re.findall(r"LongYAAL \((CU|CA)\)\s+([0-9.]+)", run.stdout))
    assert float(found["CU"]) == pytest.approx(ours["LongYAAL"] * 1000, abs=1e-3)
    assert float(found["CA"]) == pytest.approx(ours["LongYAAL_CA"] * 1000, abs=1e-3)
    with pytest.raises(ValueError, match="19 words but 3 word timings"):
        sentence_segments(words[:3], LONG_TEXT)
