"""The backend registry: built-ins, registration, entry-point plugins, clear failures."""

import importlib.metadata as md
import sys

import numpy as np
import pytest

import asr_lab
from asr_lab.backends import registry
from asr_lab.backends.registry import MissingDependencyError, UnknownBackendError


class EchoProcessor:
    """A stand-in processor for registry tests: emits one fixed segment per stream."""

    def __init__(self):
        self.init()

    def init(self, offset=0.0):
        self.offset, self.fed = offset, 0

    def insert_audio_chunk(self, audio):
        self.fed += len(audio)

    def process_iter(self):
        return None

    def finish(self):
        return (self.offset, self.offset + self.fed / 16000, "echo") if self.fed else None


class EchoLoader:
    description = "stand-in echo engine"

    def load(self, config):
        return EchoProcessor(), {"separator": " ", "model": config.model}


@pytest.fixture
def echo():
    asr_lab.register_loader("echo-test", EchoLoader())
    yield "echo-test"
    registry.unregister_loader("echo-test")


def test_builtins_are_listed_with_install_state():
    rows = {b.name: b for b in asr_lab.available_backends()}
    assert {"pocketsphinx", "pocketsphinx-la", "faster-whisper", "mlx-whisper"} <= set(rows)
    for name in ("pocketsphinx", "pocketsphinx-la", "faster-whisper", "mlx-whisper"):
        b = rows[name]
        assert b.description and b.source == "builtin"
        assert b.installed or b.install.startswith("pip install 'asr-lab[")


def test_register_and_load_from_dict_json_and_config(echo):
    for cfg in ({"backend": echo, "model": "m"}, '{"backend": "echo-test", "model": "m"}', asr_lab.ASRConfig(backend=echo, model="m")):
        proc, meta = asr_lab.load_processor(cfg)
        assert isinstance(proc, asr_lab.ASRProcessor)
        assert meta["separator"] == " " and meta["model"] == "m" and meta["backend"] == echo
        assert meta["config"]["model"] == "m"
    assert any(b.name == echo and b.source == "registered" for b in asr_lab.available_backends())


def test_loader_config_class_validates_the_input():
    class StrictConfig(asr_lab.ASRConfig):
        beam: int = 1

    class Loader(EchoLoader):
        config_class = StrictConfig

        def load(self, config):
            assert isinstance(config, StrictConfig)
            return EchoProcessor(), {"separator": " ", "beam": config.beam}

    asr_lab.register_loader("strict-test", Loader)  # a class is instantiated
    try:
        assert asr_lab.load_processor({"backend": "strict-test", "beam": 3})[1]["beam"] == 3
        with pytest.raises(asr_lab.ConfigError, match="beem"):
            asr_lab.load_processor({"backend": "strict-test", "beem": 3})
    finally:
        registry.unregister_loader("strict-test")


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(UnknownBackendError) as err:
        asr_lab.load_processor({"backend": "pocketsfinx"})
    msg = str(err.value)
    assert "'pocketsfinx'" in msg and "pocketsphinx" in msg and "faster-whisper" in msg and "Did you mean" in msg


def test_missing_extra_names_the_pip_command(monkeypatch):
    real = registry.importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda n, *a: None if n == "faster_whisper" else real(n, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install 'asr-lab\[faster-whisper\]'"):
        registry.get_loader("faster-whisper")
    row = next(b for b in asr_lab.available_backends() if b.name == "faster-whisper")
    assert not row.installed and row.install == "pip install 'asr-lab[faster-whisper]'"


def test_not_a_loader_is_refused():
    with pytest.raises(TypeError, match="load\\(config\\)"):
        asr_lab.register_loader("bad", object())
    with pytest.raises(ValueError, match="non-empty"):
        asr_lab.register_loader("", EchoLoader())


def test_loader_returning_a_non_processor_is_named():
    class Broken:
        def load(self, config):
            return object(), {"separator": " "}

    asr_lab.register_loader("broken-test", Broken())
    try:
        with pytest.raises(TypeError, match="lacks init, insert_audio_chunk, process_iter, finish"):
            asr_lab.load_processor({"backend": "broken-test"})
    finally:
        registry.unregister_loader("broken-test")


def test_shadowing_a_builtin_warns():
    with pytest.warns(UserWarning, match="replaces the built-in"):
        asr_lab.register_loader("pocketsphinx", EchoLoader())
    registry.unregister_loader("pocketsphinx")
    assert not any(b.name == "pocketsphinx" and b.source == "registered" for b in asr_lab.available_backends())


class _EP:
    """A stand-in entry point (importlib.metadata.EntryPoint is what real plugins give)."""

    def __init__(self, name, value, obj=None, error=None):
        self.name, self.value, self._obj, self._error = name, value, obj, error

    def load(self):
        if self._error:
            raise self._error
        return self._obj


def test_plugins_join_the_list_and_a_broken_one_only_warns(monkeypatch):
    eps = [_EP("plugin-ok", "pkg:Loader", EchoLoader), _EP("plugin-broken", "bad:Loader", error=ImportError("no module bad"))]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == registry.ENTRY_POINT_GROUP else [])
    registry.refresh_plugins()
    try:
        with pytest.warns(RuntimeWarning, match="plugin-broken"):
            rows = {b.name: b for b in asr_lab.available_backends()}
        assert rows["plugin-ok"].installed and rows["plugin-ok"].source == "plugin"
        assert not rows["plugin-broken"].installed and "no module bad" in rows["plugin-broken"].error
        proc, meta = asr_lab.load_processor({"backend": "plugin-ok"})
        proc.insert_audio_chunk(np.zeros(1600, dtype=np.float32))
        assert proc.finish() == (0.0, 0.1, "echo")
        with pytest.raises(ImportError, match="plugin 'plugin-broken'.*failed to load"):
            asr_lab.load_processor({"backend": "plugin-broken"})
    finally:
        registry.refresh_plugins()


def test_real_entry_point_metadata_is_read():
    # the installed asr-lab distribution declares no plugins of its own: the group is empty, not an error
    assert isinstance(list(md.entry_points(group=registry.ENTRY_POINT_GROUP)), list)


def test_import_is_light():
    import subprocess

    code = (
        "import sys, time; t = time.perf_counter(); import asr_lab; dt = time.perf_counter() - t; "
        "heavy = [m for m in ('librosa', 'matplotlib', 'torch', 'mlx', 'ctranslate2', 'pocketsphinx', "
        "'faster_whisper', 'jiwer', 'pandas', 'soundfile') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
