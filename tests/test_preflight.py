"""A run that cannot start is found before any run starts: check_config validates a system
without loading its model (backend installed, config valid, model files found, policy runnable)."""

import pytest

import asr_lab
from asr_lab.backends import registry
from asr_lab.backends.registry import check_config
from asr_lab.core.config import ConfigError


class CheckedLoader:
    """Stand-in backend whose check refuses model 'missing' (and counts its calls); load is never needed."""

    def __init__(self):
        self.checked, self.loaded = [], 0

    def check(self, config):
        self.checked.append(config.model)
        if config.model == "missing":
            raise ConfigError(f"model={config.model!r} is not installed here")

    def load(self, config):
        self.loaded += 1
        raise AssertionError("check_config must not load a model")


@pytest.fixture
def checked():
    loader = CheckedLoader()
    asr_lab.register_loader("checked-test", loader)
    yield loader
    registry.unregister_loader("checked-test")


def test_check_config_calls_the_loaders_check_and_never_loads(checked):
    cfg = check_config({"backend": "checked-test", "model": "fine"})
    assert cfg.model == "fine" and checked.checked == ["fine"] and checked.loaded == 0
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
