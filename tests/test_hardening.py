"""Bad input and faults, tried as a hostile user would: each ends in a clear error or a bounded,
documented behaviour, and nothing already computed is lost."""

import json
import math
import time

import numpy as np
import pytest

from asr_lab.replay import replay

SR = 16000


class AnsweringProcessor:
    """Stand-in engine: answers ``answers[k]`` on its k-th process_iter(), then None;
    ``partials`` likewise for partial() when given."""

    def __init__(self, answers, partials=None, hang_at=None):
        self.answers, self.partials, self.hang_at = list(answers), partials, hang_at
        if partials is None:
            self.partial = None  # only processors that have partial() get it called
        self.init()

    def init(self, offset=0.0):
        self.k = self.p = 0

    def insert_audio_chunk(self, audio):
        pass

    def process_iter(self):
        self.k += 1
        if self.hang_at is not None and self.k == self.hang_at:
            time.sleep(30)
        return self.answers[self.k - 1] if self.k <= len(self.answers) else None

    def partial(self):
        self.p += 1
        return self.partials[self.p - 1] if self.p <= len(self.partials) else None

    def finish(self):
        return None


def _run(proc, sec=5.0, **kw):
    kw = dict(clock="unaware", chunk_sec=1.0, warmup_sec=0) | kw
    with pytest.warns(RuntimeWarning, match="replay stopped"):
        return replay(proc, np.zeros(int(sec * SR), dtype=np.float32), **kw)


GOOD = (0.0, 1.0, "hello")
BAD_OUTPUTS = {
    "None as text": ((0.5, 1.5, None), "text must be a str, got NoneType"),
    "bytes as text": ((0.5, 1.5, b"a"), "text must be a str, got bytes"),
    "4-tuple": ((0.5, 1.5, "a", 0.9), "3-tuple"),
    "a bare string": ("hello", "3-tuple"),
    "start after end": ((1.9, 1.2, "a"), "start 1.900 s is after end 1.200 s"),
    "200 s into a 5 s stream": ((200.0, 201.0, "a"), "outside the audio fed so far"),
    "NaN start": ((math.nan, 1.5, "a"), "start must be finite"),
    "text as start": (("0", 1.5, "a"), "start must be a number"),
}


@pytest.mark.parametrize("name", list(BAD_OUTPUTS))
def test_a_malformed_answer_ends_the_run_as_an_error_naming_processor_step_value_and_rule(name):
    bad, rule = BAD_OUTPUTS[name]
    trace = _run(AnsweringProcessor([GOOD, bad, (2.0, 3.0, "never")]))
    assert [e.text for e in trace.emissions] == ["hello"], "what came before is kept"
    err = trace.error
    assert err.type == "InvalidOutputError" and err.step == 1 and err.processor == "AnsweringProcessor"
    assert "AnsweringProcessor.process_iter() at step 1" in err.message
    assert repr(bad)[:20] in err.message and rule in err.message


def test_a_malformed_partial_is_an_error_not_an_index_error():
    trace = _run(AnsweringProcessor([GOOD], partials=[(1.0, 2.0, "par"), ()]))
    assert trace.error.type == "InvalidOutputError" and "partial() at step 1" in trace.error.message
    assert [p.text for p in trace.partials] == ["par"] and trace.text == "hello"


def test_the_references_nothing_and_empty_text_are_not_errors():
    trace = replay(AnsweringProcessor([(None, None, ""), (1.0, 1.0, ""), None, GOOD]), np.zeros(5 * SR, np.float32),
                   clock="unaware", chunk_sec=1.0, warmup_sec=0)
    assert trace.ok and trace.text == "hello"


def test_a_hung_call_ends_the_run_with_a_timeout_naming_the_call():
    t0 = time.perf_counter()
    trace = _run(AnsweringProcessor([GOOD, GOOD], hang_at=2), call_timeout_sec=0.3)
    assert time.perf_counter() - t0 < 5
    assert trace.error.type == "CallTimeoutError" and trace.error.step == 1
    assert "process_iter() at step 1 did not return within 0.3 s" in trace.error.message
    assert trace.text == "hello"


@pytest.mark.parametrize("bad", [0, -1, "10", float("inf"), True])
def test_call_timeout_must_be_positive(bad):
    with pytest.raises(ValueError, match="call_timeout_sec="):
        replay(AnsweringProcessor([]), np.zeros(SR, np.float32), call_timeout_sec=bad)


# -- compare: a bad run is a failed run --------------------------------------------------------

from asr_lab.compare import CACHE_FILE, compare  # noqa: E402
from asr_lab.data import Utterance  # noqa: E402


def _speechless_dataset(n=2):
    # each utterance a different length: identical audio would be run once and shared by both rows
    return [Utterance.from_array(f"u{i}", np.zeros((2 + i) * SR, np.float32), "hello") for i in range(n)]


def good_system():
    return AnsweringProcessor([(0.0, 1.0, "hello")])


def bad_system():
    return AnsweringProcessor([(0.0, 1.0, None)])


def test_one_bad_system_is_a_failed_run_and_the_tables_still_work(tmp_path):
    res = compare({"good": good_system, "bad": bad_system}, _speechless_dataset(), clock="unaware",
                  chunk_sec=1.0, warmup_sec=0, cache_dir=tmp_path, progress=False)
    assert {(r.system, r.ok) for r in res.records} == {("good", True), ("bad", False)}
    assert all("InvalidOutputError" in r.error and "text must be a str" in r.error for r in res.failures)
    table = res.table()
    assert table.loc["good", "wer"] == 0 and table.loc["bad", "failed"] == 2
    assert len(res.utterances) == 4 and res.to_files(tmp_path / "out").exists()
    # resume: the failed runs are not taken from the cache as ok, they run again
    cached = [json.loads(line) for line in (tmp_path / CACHE_FILE).read_text().splitlines()]
    assert sorted(bool(c["error"]) for c in cached) == [False, False, True, True]
    again = compare({"good": good_system, "bad": bad_system}, _speechless_dataset(), clock="unaware",
                    chunk_sec=1.0, warmup_sec=0, cache_dir=tmp_path, progress=False)
    assert len((tmp_path / CACHE_FILE).read_text().splitlines()) == 6  # two re-runs appended, good ones reused
    assert len(again.failures) == 2


def test_a_malformed_trace_in_an_old_cache_is_rerun_and_does_not_break_tables(tmp_path):
    compare({"good": good_system}, _speechless_dataset(1), clock="unaware", chunk_sec=1.0, warmup_sec=0,
            cache_dir=tmp_path, progress=False)
    cache = tmp_path / CACHE_FILE
    rec = json.loads(cache.read_text())
    rec["trace"][1]["end"] = "soon"  # as an older version could have written
    cache.write_text(json.dumps(rec) + "\n")
    with pytest.warns(RuntimeWarning, match=r"runs.jsonl:1: run good / u0 has a malformed trace"):
        res = compare({"good": good_system}, _speechless_dataset(1), clock="unaware", chunk_sec=1.0, warmup_sec=0,
                      cache_dir=tmp_path, progress=False)
    assert res.records[0].ok and res.table().loc["good", "wer"] == 0


def test_a_cache_line_cut_inside_a_utf8_character_does_not_block_resume(tmp_path):
    def run():
        return compare({"good": good_system}, _speechless_dataset(2), clock="unaware", chunk_sec=1.0, warmup_sec=0,
                       cache_dir=tmp_path, progress=False)

    run()
    cache = tmp_path / CACHE_FILE
    data = cache.read_bytes()
    first, second = data.split(b"\n")[:2]
    cache.write_bytes(first + b"\n" + second[:40] + "é".encode()[:1])  # killed mid-character
    with pytest.warns(RuntimeWarning, match=r"runs.jsonl:2: skipping an unreadable run record \(UnicodeDecodeError"):
        res = run()
    assert not res.failures and len(res.records) == 2


def test_a_manifest_pointing_at_dev_zero_is_refused_at_once(tmp_path):
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"id": "z", "audio": "/dev/zero", "text": "x"}) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="'/dev/zero' is not a regular file"):
        compare({"good": good_system}, tmp_path, clock="unaware", progress=False)
    assert time.perf_counter() - t0 < 10


# -- the audio edge ------------------------------------------------------------------------------

import soundfile as sf  # noqa: E402

import asr_lab  # noqa: E402
from asr_lab.core.audio import AudioError, as_chunk, load_audio  # noqa: E402
from asr_lab.testing import sample_speech  # noqa: E402


def test_int64_samples_are_refused_with_the_fix_not_turned_to_silence():
    with pytest.raises(AudioError, match=r"64-bit integer samples .* \.astype\(np\.int16\)"):
        load_audio(np.array([1000, -2000, 3000] * 100))


@pytest.mark.parametrize("sr", [1, 100, 10**9])
def test_implausible_sample_rates_are_refused(sr):
    with pytest.raises(AudioError, match=rf"sr={sr} Hz is outside the plausible range 4000-384000 Hz"):
        load_audio(np.zeros(1000, np.float32), sr=sr)


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_a_cut_file_is_refused_not_silently_shortened(tmp_path, ext):
    whole = tmp_path / f"whole.{ext}"
    sf.write(whole, sample_speech().audio, SR, subtype="PCM_16")
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert len(load_audio(whole)) == len(sample_speech().audio)
    with pytest.raises(AudioError, match=r"cut\.(wav|flac).*(cut short|damaged or cut short)"):
        load_audio(cut)


def test_a_text_file_named_flac_is_named_as_not_audio(tmp_path):
    fake = tmp_path / "notes.flac"
    fake.write_text("this is a shopping list, not audio\n" * 20)
    with pytest.raises(AudioError, match=r"notes\.flac' holds no audio"):
        load_audio(fake)


def test_dev_zero_is_not_read():
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio("/dev/zero")


def test_online_processor_scales_int16_chunks_and_averages_stereo():
    from asr_lab.testing import ScriptedASR

    proc = asr_lab.OnlineASRProcessor(ScriptedASR([]))
    proc.init()
    proc.insert_audio_chunk(np.array([16384, -16384], np.int16))
    proc.insert_audio_chunk(np.array([[0.5, 0.0], [0.5, 0.0], [0.5, 0.0]], np.float32))  # (n, 2): left only
    proc.insert_audio_chunk(np.zeros((2, 0), np.float32))
    np.testing.assert_allclose(proc.audio_buffer, [0.5, -0.5, 0.25, 0.25, 0.25])
    assert as_chunk(np.zeros(3, np.float32)).dtype == np.float32


# -- files name themselves -------------------------------------------------------------------------

from asr_lab.metrics import score  # noqa: E402
from asr_lab.replay import Trace  # noqa: E402
from asr_lab.replay.trace import TraceFileError  # noqa: E402


def _saved_trace(tmp_path):
    trace = replay(AnsweringProcessor([(0.0, 1.0, "hello"), (1.0, 2.0, "world")]), np.zeros(3 * SR, np.float32),
                   clock="unaware", chunk_sec=1.0, warmup_sec=0)
    path = tmp_path / "t.jsonl"
    trace.to_jsonl(path)
    return trace, path


def test_a_corrupt_trace_line_is_named_by_file_and_real_line(tmp_path):
    _, path = _saved_trace(tmp_path)
    lines = path.read_text().splitlines()
    lines.insert(1, "")  # a blank line must not shift the count
    lines[3] = lines[3][:25]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceFileError, match=rf"{path}:4: not valid JSON"):
        Trace.from_jsonl(path)


def test_a_non_utf8_trace_and_an_empty_trace_are_errors(tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"record": "meta", "source": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(TraceFileError, match=r"latin1.jsonl:1: not UTF-8 text \(byte 0xe9"):
        Trace.from_jsonl(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(TraceFileError, match="empty"):
        score(empty, "hello world")


def test_score_takes_a_trace_path_or_says_what_to_pass(tmp_path):
    trace, path = _saved_trace(tmp_path)
    assert score(str(path), "hello world").wer.rate == 0 == score(trace, "hello world").wer.rate
    with pytest.raises(TypeError, match="must be a Trace .* or the path of a trace .jsonl file, not int"):
        score(42, "hello")


# -- the CLI checks before it runs ------------------------------------------------------------------

from asr_lab.backends import registry  # noqa: E402
from asr_lab.cli import main  # noqa: E402


class AnsweringLoader:
    """Stand-in backend counting how often an engine was loaded (a load means work would start)."""

    loads = 0

    def load(self, config):
        AnsweringLoader.loads += 1
        return AnsweringProcessor([(0.0, 1.0, "hello")]), {"separator": " "}


@pytest.fixture
def answering_backend():
    AnsweringLoader.loads = 0
    asr_lab.register_loader("answer-test", AnsweringLoader())
    yield
    registry.unregister_loader("answer-test")


def test_cli_refuses_a_bad_port(capsys):
    assert main(["serve", "--port", "99999"]) == 2
    assert "--port 99999 is not a TCP port; give a number from 1 to 65535" in capsys.readouterr().err


def test_cli_refuses_a_trace_folder_before_loading_the_engine(tmp_path, capsys, answering_backend):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(2 * SR, np.float32), SR)
    assert main(["replay", str(wav), "--backend", "answer-test", "--trace", str(tmp_path)]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err and AnsweringLoader.loads == 0
    assert main(["replay", str(wav), "--backend", "answer-test", "--trace", str(tmp_path / "t.jsonl"), "--clock", "unaware"]) == 0
    assert Trace.from_jsonl(tmp_path / "t.jsonl").text == "hello"


def test_cli_refuses_an_out_folder_under_a_file_before_any_run(tmp_path, capsys, answering_backend):
    _speechless = [Utterance.from_array("u0", np.zeros(2 * SR, np.float32), "hello")]
    from asr_lab.data import Dataset

    Dataset(_speechless, "d").to_manifest(tmp_path / "data")
    (tmp_path / "file.txt").write_text("x")
    rc = main(["compare", "--dataset", str(tmp_path / "data"), "--backend", "answer-test", "--out", str(tmp_path / "file.txt" / "out")])
    assert rc == 2 and "is a file, not a folder" in capsys.readouterr().err and AnsweringLoader.loads == 0


def test_a_non_utf8_manifest_names_its_file_and_line(tmp_path):
    from asr_lab.data import DatasetError, load_dataset

    (tmp_path / "manifest.jsonl").write_bytes(b'\n{"id": "a", "audio": null, "text": "caf\xe9"}\n')
    with pytest.raises(DatasetError, match=r"manifest.jsonl, line 2: not UTF-8 text \(byte 0xe9"):
        load_dataset(tmp_path)


# -- the live panel --------------------------------------------------------------------------------


class QuietProcessor:
    """Stand-in engine that never says anything."""

    def init(self, offset=0.0): ...
    def insert_audio_chunk(self, audio): ...
    def process_iter(self):
        return None

    def finish(self):
        return None


def test_live_panel_drops_and_counts_late_and_repeated_chunks():
    pytest.importorskip("anywidget")
    from asr_lab.widgets.live import LiveMicPanel, encode_audio_message

    panel = LiveMicPanel(QuietProcessor(), chunk_sec=0.1, warmup_sec=0)
    panel.handle_message({"type": "start", "rate": SR})
    accepted = [panel.handle_message(*encode_audio_message(np.zeros(1600), seq)) for seq in (0, 1, 4, 2, 4, 1, 5)]
    assert accepted == [True, True, True, False, False, False, True]
    panel.handle_message({"type": "stop", "seq": 6})
    trace = panel.wait(timeout=20)
    assert (trace.meta["missing_chunks"], trace.meta["late_chunks"], trace.meta["duplicate_chunks"]) == (1, 1, 2)
    assert trace.duration == pytest.approx(0.4)  # 0, 1, 4, 5: the late and repeated audio is not spliced in


@pytest.mark.parametrize("rate", [1, 10**9])
def test_live_panel_refuses_implausible_sample_rates(rate):
    pytest.importorskip("anywidget")
    from asr_lab.widgets.live import LiveMicPanel, encode_audio_message

    panel = LiveMicPanel(QuietProcessor(), chunk_sec=0.1, warmup_sec=0)
    panel.handle_message({"type": "start", "rate": rate})
    assert panel.status == "error" and "plausible range" in panel.error
    panel.handle_message({"type": "start", "rate": SR})
    t0 = time.perf_counter()
    with pytest.raises(AudioError, match=f"sr={rate} Hz is outside the plausible range"):
        panel.handle_message(*encode_audio_message(np.zeros(1600), 0, rate=rate))
    assert time.perf_counter() - t0 < 1
    panel.handle_message({"type": "stop", "seq": 1})
    panel.wait(timeout=20)


def test_call_deadline_measures_cpu_on_the_thread_that_runs_the_call():
    import threading as th

    from asr_lab.replay.deadline import CallDeadline

    class ThreadMeter:  # records which thread it was started and stopped on
        def __init__(self):
            self.start = th.get_ident()

        def stop(self):
            return (self.start, th.get_ident())

    def busy():
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.05:
            pass
        return th.get_ident()

    for timeout in (5.0, None):
        with CallDeadline(timeout, "Busy", meter=ThreadMeter) as guard:
            ran_on = guard.call(busy, what="busy")
            assert guard.last_cost == (ran_on, ran_on) and guard.cpu_sec >= 0.04
            assert (ran_on != th.get_ident()) == (timeout is not None)
