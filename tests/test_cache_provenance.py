"""A cache that cannot lie: editing a processor, its model files or its engine's code reruns the run."""

import importlib
import sys
import textwrap
import types
from pathlib import Path

import pytest

import asr_lab
from asr_lab.backends import registry
from asr_lab.compare import compare, step_for
from asr_lab.provenance import code_fingerprint, run_provenance

MINI = Path(__file__).resolve().parent.parent / "datasets" / "mini"

PROCESSOR = '''
TEXT = {text!r}


class Proto:
    """Prototype under development: says TEXT at the end of the stream."""

    min_chunk_sec = 0.5

    def init(self, offset=0.0):
        self.offset, self.samples = offset, 0

    def insert_audio_chunk(self, audio):
        self.samples += len(audio)

    def process_iter(self):
        return None

    def finish(self):
        return (self.offset, self.offset + self.samples / 16000, TEXT)


class ProtoLoader:
    def load(self, config):
        proc = Proto()
        proc.init()
        return proc, {{"separator": " "}}
'''


@pytest.fixture
def proto(tmp_path, monkeypatch):
    """Write (and rewrite) a processor module in tmp_path, imported as a user's own file."""
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "my_proto.py"

    def write(text):
        path.write_text(PROCESSOR.format(text=text))
        sys.modules.pop("my_proto", None)
        importlib.invalidate_caches()
        module = importlib.import_module("my_proto")
        asr_lab.register_loader("proto-test", module.ProtoLoader)
        return module

    yield write
    sys.modules.pop("my_proto", None)
    registry.unregister_loader("proto-test")


def _one_utterance():
    ds = asr_lab.load_dataset(MINI)
    return ds[:1], ds[0].text


def test_editing_the_processor_reruns_it(proto, tmp_path, capsys):
    dataset, reference = _one_utterance()
    proto(reference)
    first = compare({"p": {"backend": "proto-test"}}, dataset, cache_dir=tmp_path / "cache")
    assert first.from_cache == 0 and first.summary.loc["p", "wer"] == 0.0
    assert "0 of 1 runs from cache" in capsys.readouterr().err
    again = compare({"p": {"backend": "proto-test"}}, dataset, cache_dir=tmp_path / "cache")
    assert again.from_cache == 1 and "1 of 1 runs from cache" in capsys.readouterr().err and "1 of 1 from cache" in repr(again)

    proto("a completely different sentence")  # same backend name, same cache folder, new code
    edited = compare({"p": {"backend": "proto-test"}}, dataset, cache_dir=tmp_path / "cache")
    assert edited.from_cache == 0, "an edited processor was answered from the cache"
    assert edited.summary.loc["p", "wer"] == 1.0

    module = proto(reference)  # the class given directly (a factory) is keyed by its code too
    direct = compare({"p": module.Proto}, dataset, cache_dir=tmp_path / "cache", progress=False)
    proto(reference + " again")
    assert compare({"p": sys.modules["my_proto"].Proto}, dataset, cache_dir=tmp_path / "cache", progress=False).from_cache == 0
    assert direct.summary.loc["p", "wer"] == 0.0


def test_model_files_are_part_of_the_key(proto, tmp_path):
    dataset, reference = _one_utterance()
    proto(reference)
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\0" * 100)
    config = {"p": {"backend": "proto-test", "model_dir": str(model)}}
    assert compare(config, dataset, cache_dir=tmp_path / "c", progress=False).from_cache == 0
    assert compare(config, dataset, cache_dir=tmp_path / "c", progress=False).from_cache == 1
    (model / "weights.bin").write_bytes(b"\1" * 101)  # new weights in the same folder
    assert compare(config, dataset, cache_dir=tmp_path / "c", progress=False).from_cache == 0


def test_provenance_of_builtins_names_engine_versions_and_code():
    prov = run_provenance({"backend": "pocketsphinx"})
    assert prov["asr_lab"]
    if registry.importlib.util.find_spec("pocketsphinx"):
        from importlib.metadata import version

        assert prov["code"].startswith("source:")
        assert prov["packages"]["pocketsphinx"] == version("pocketsphinx")
    else:  # after `pip install -e '.[dev]'` alone: the key says the engine is missing
        assert prov["code"].startswith("unavailable:")


def test_code_typed_in_a_notebook_is_hashed_by_its_bytecode():
    def define(body):
        module = types.ModuleType("__nb_stand_in__")  # like a kernel's __main__: no source file
        sys.modules[module.__name__] = module
        exec(compile(textwrap.dedent(body), "<cell>", "exec"), vars(module))
        return module.Proc

    try:
        a = code_fingerprint(define("class Proc:\n    def finish(self):\n        return (0, 1, 'a')\n"))
        same = code_fingerprint(define("class Proc:\n    def finish(self):\n        return (0, 1, 'a')\n"))
        b = code_fingerprint(define("class Proc:\n    def finish(self):\n        return (0, 1, 'b')\n"))
        declared = code_fingerprint(define("class Proc:\n    version = '2.1'\n"))
    finally:
        sys.modules.pop("__nb_stand_in__", None)
    assert a.startswith("bytecode:") and a == same and a != b
    assert declared == "declared:2.1"


def test_step_is_the_processors_own_first():
    class Own:
        min_chunk_sec = 0.2

    assert step_for(Own(), None, 1.0) == 0.2  # a registered loader's processor, a class, an instance alike
    assert step_for(Own(), 0.5, 1.0) == 0.5  # an explicit chunk_sec wins
    assert step_for(object(), None, 2.0) == 2.0  # no attribute: the config's min_chunk_size
    assert step_for(object(), None, None) == 1.0


def test_chunk_size_is_the_same_however_the_processor_is_given(proto, tmp_path):
    dataset, reference = _one_utterance()
    module = proto(reference)
    proc = module.Proto()
    by_loader = compare({"p": {"backend": "proto-test"}}, dataset, progress=False)
    by_class = compare({"p": module.Proto}, dataset, progress=False)
    by_instance = compare({"p": proc}, dataset, progress=False)
    steps = {r.trace.meta["chunk_sec"] for res in (by_loader, by_class, by_instance) for r in res.records}
    assert steps == {0.5}


def test_bad_chunk_sec_is_refused_before_any_run(proto):
    dataset, reference = _one_utterance()
    proto(reference)
    for bad in (0, -1, 61):
        with pytest.raises(ValueError, match=r"chunk_sec=.*\(0, 60\]"):
            compare({"p": {"backend": "proto-test"}}, dataset, chunk_sec=bad, progress=False)
