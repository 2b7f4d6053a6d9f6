"""A run that cannot start is found before any run starts: check_config validates a system
without loading its model (backend installed, config valid, model files found, policy runnable)."""

import pytest

import asr_lab
from asr_lab.backends import registry
from asr_lab.backends.registry import check_config
from asr_lab.core.config import ConfigError


class SayAtEnd:
    """Stand-in processor: says its word when the stream ends."""

    def __init__(self, word):
        self.word = word
        self.init()

    def init(self, offset=0.0):
        self.offset, self.samples = offset, 0

    def insert_audio_chunk(self, audio):
        self.samples += len(audio)

    def process_iter(self):
        return None

    def finish(self):
        return (self.offset, self.offset + self.samples / 16000, self.word)


class CheckedLoader:
    """Stand-in backend whose check refuses model 'missing'; it counts checks and loads."""

    def __init__(self):
        self.checked, self.loaded = [], []

    def check(self, config):
        self.checked.append(config.model)
        if config.model == "missing":
            raise ConfigError(f"model={config.model!r} is not installed here")

    def load(self, config):
        self.loaded.append(config.model)
        if config.model == "missing":
            raise ConfigError(f"model={config.model!r} is not installed here")
        return SayAtEnd(config.model or "word"), {"separator": " "}


@pytest.fixture
def checked():
    loader = CheckedLoader()
    asr_lab.register_loader("checked-test", loader)
    yield loader
    registry.unregister_loader("checked-test")


def test_check_config_calls_the_loaders_check_and_never_loads(checked):
    cfg = check_config({"backend": "checked-test", "model": "fine"})
    assert cfg.model == "fine" and checked.checked == ["fine"] and checked.loaded == []
    with pytest.raises(ConfigError, match="model='missing' is not installed"):
        check_config({"backend": "checked-test", "model": "missing"})


def test_check_config_refuses_unknown_backends_and_bad_fields_like_a_run_would():
    with pytest.raises(registry.UnknownBackendError, match="unknown backend 'nope'"):
        check_config({"backend": "nope"})
    pytest.importorskip("pocketsphinx")
    with pytest.raises(ConfigError, match="min_chunk_size"):
        check_config({"backend": "pocketsphinx", "min_chunk_size": -1})


@pytest.mark.parametrize("backend", ["faster-whisper", "pocketsphinx-la"])
def test_alignatt_on_an_engine_without_a_steppable_decoder_is_refused_before_loading(backend):
    pytest.importorskip("faster_whisper" if backend == "faster-whisper" else "pocketsphinx")
    with pytest.raises(ConfigError, match="policy='alignatt'.*openai-whisper"):
        check_config({"backend": backend, "policy": "alignatt"})


def test_a_whisper_model_that_is_not_here_is_found_before_loading(monkeypatch):
    pytest.importorskip("faster_whisper")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from asr_lab.backends.models import ModelNotFoundError

    with pytest.raises((ModelNotFoundError, ConfigError), match="large-v1"):
        check_config({"backend": "faster-whisper", "model": "large-v1"})


def test_pocketsphinx_model_folder_is_checked(tmp_path):
    pytest.importorskip("pocketsphinx")
    with pytest.raises(ConfigError, match="model_dir="):
        check_config({"backend": "pocketsphinx", "model_dir": str(tmp_path / "absent")})
    assert check_config({"backend": "pocketsphinx"}).backend == "pocketsphinx"


MINI = str(__import__("pathlib").Path(__file__).resolve().parent.parent / "datasets" / "mini")


def test_compare_checks_each_system_once_and_never_tries_one_that_cannot_start(checked, tmp_path):
    from asr_lab.compare.runner import NOT_STARTED

    utts = list(asr_lab.load_dataset(MINI))[:3]
    systems = {"broken": {"backend": "checked-test", "model": "missing"}, "fine": {"backend": "checked-test", "model": "fine"}}
    with pytest.warns(RuntimeWarning, match="'broken' cannot start, so none of its 3 runs is tried") as caught:
        res = asr_lab.compare(systems, utts, clock="unaware", cache_dir=tmp_path, progress=False)
    assert len([w for w in caught if "cannot start" in str(w.message)]) == 1  # once, not once per utterance
    assert checked.checked.count("missing") == 1 and "missing" not in checked.loaded  # checked, never loaded
    broken = [r for r in res.records if r.system == "broken"]
    assert len(broken) == 3 and all(r.error == f"{NOT_STARTED}ConfigError: model='missing' is not installed here" for r in broken)
    fine = [r for r in res.records if r.system == "fine"]
    assert all(r.ok for r in fine) and [r.trace.text for r in fine] == ["fine"] * 3
    # nothing of the broken system was cached: once its model is there, its runs run
    checked.check = lambda config: None
    again = asr_lab.compare(systems, utts, clock="unaware", cache_dir=tmp_path, progress=False)
    assert again.from_cache == 3 and all(r.error and NOT_STARTED not in r.error for r in again.records if r.system == "broken")


def test_the_cli_says_a_system_that_cannot_start_once(checked, tmp_path, capsys):
    from asr_lab.cli import main

    code = main(["compare", "--dataset", MINI, "--config", str(_write(tmp_path, {"broken": {"backend": "checked-test", "model": "missing"},
                                                                                "fine": {"backend": "checked-test", "model": "fine"}})),
                 "--limit", "4", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1  # a system failed
    lines = [x for x in err.splitlines() if x.startswith("failed:")]
    assert lines == ["failed: broken (none of its 4 runs started): ConfigError: model='missing' is not installed here"]
    assert "RuntimeWarning" not in err


def _write(folder, configs):
    import json

    path = folder / "systems.json"
    path.write_text(json.dumps(configs))
    return path
