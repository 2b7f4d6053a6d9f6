"""build_tiny_whisper: random-weight Whisper folders that the real engines load, built offline."""

import json
import time

import pytest

pytest.importorskip("ctranslate2")  # builds CTranslate2 models with the `tokenizers` vocabulary
pytest.importorskip("tokenizers")

from asr_lab.testing import models
from asr_lab.testing.models import build_tiny_whisper, whisper_vocabulary

MB = 1024 * 1024


@pytest.fixture(scope="session")
def tiny_ct2(tmp_path_factory):
    return build_tiny_whisper(tmp_path_factory.getbasetemp() / "tiny-ct2", "ct2")


@pytest.fixture(scope="session")
def tiny_mlx(tmp_path_factory):
    return build_tiny_whisper(tmp_path_factory.getbasetemp() / "tiny-mlx", "mlx")


def folder_size(path):
    return sum(f.stat().st_size for f in path.iterdir())


def test_ct2_folder_has_what_faster_whisper_reads_and_is_small(tiny_ct2):
    for name in ("model.bin", "config.json", "vocabulary.json", "tokenizer.json", "preprocessor_config.json"):
        assert (tiny_ct2 / name).is_file(), name
    assert json.loads((tiny_ct2 / "preprocessor_config.json").read_text())["feature_size"] == 80
    assert folder_size(tiny_ct2) < 20 * MB


def test_ct2_model_loads_in_ctranslate2_as_multilingual(tiny_ct2):
    ctranslate2 = pytest.importorskip("ctranslate2")
    model = ctranslate2.models.Whisper(str(tiny_ct2), device="cpu", compute_type="float32")
    assert model.is_multilingual
    assert model.n_mels == 80
    assert model.num_languages == 99


def test_mlx_folder_loads_in_mlx_whisper(tiny_mlx):
    pytest.importorskip("mlx_whisper")
    from mlx_whisper.load_models import load_model

    config = json.loads((tiny_mlx / "config.json").read_text())
    assert config["model_type"] == "whisper"
    assert config["n_vocab"] == 51865 and config["n_audio_state"] == 64
    assert folder_size(tiny_mlx) < 20 * MB
    model = load_model(str(tiny_mlx))
    assert model.is_multilingual and model.num_languages == 99


def test_building_again_reuses_the_complete_folder(tiny_ct2):
    before = (tiny_ct2 / "model.bin").stat().st_mtime_ns
    t0 = time.perf_counter()
    assert build_tiny_whisper(tiny_ct2, "ct2") == tiny_ct2
    assert time.perf_counter() - t0 < 0.5
    assert (tiny_ct2 / "model.bin").stat().st_mtime_ns == before


def test_other_parameters_rebuild_and_foreign_folders_are_refused(tmp_path):
    path = build_tiny_whisper(tmp_path / "m", "mlx", d_model=32, layers=1)
    assert json.loads((path / "config.json").read_text())["n_audio_state"] == 32
    build_tiny_whisper(path, "mlx", d_model=32, layers=1, seed=1)
    assert json.loads((path / models.MARKER).read_text())["seed"] == 1
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a tiny Whisper model folder"):
        build_tiny_whisper(foreign, "ct2")
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folders left


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"format": "onnx"}, "format='onnx' is not supported"),
        ({"d_model": 0}, "d_model=0 must be a positive integer"),
        ({"d_model": 64, "heads": 3}, "divisible by heads=3"),
        ({"dtype": "int8"}, "dtype='int8' is not supported"),
    ],
)
def test_bad_parameters_say_what_is_allowed(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_tiny_whisper(tmp_path / "x", **kwargs)


def test_vocabulary_has_whisper_ids():
    tokenizer = whisper_vocabulary(multilingual=True)
    assert tokenizer.get_vocab_size() == 51865
    ids = {t: tokenizer.token_to_id(t) for t in ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|de|>",
                                                 "<|transcribe|>", "<|notimestamps|>", "<|0.00|>", "<|30.00|>")}
    assert ids == {"<|endoftext|>": 50257, "<|startoftranscript|>": 50258, "<|en|>": 50259, "<|de|>": 50261,
                   "<|transcribe|>": 50359, "<|notimestamps|>": 50363, "<|0.00|>": 50364, "<|30.00|>": 51864}
    english = whisper_vocabulary(multilingual=False)
    assert english.get_vocab_size() == 51864 and english.token_to_id("<|startoftranscript|>") == 50257


@pytest.mark.skipif(models._tiktoken_source(True) is None, reason="no multilingual.tiktoken (mlx-whisper/openai-whisper) here")
def test_vocabulary_encodes_like_whisper():
    tokenizer = whisper_vocabulary()
    encoded = tokenizer.encode(" Hello world, this is a test.", add_special_tokens=False).ids
    assert encoded == [2425, 1002, 11, 341, 307, 257, 1500, 13]  # Whisper's own ids for this text
    assert tokenizer.decode(encoded) == " Hello world, this is a test."


def test_bytes_only_fallback_keeps_real_special_ids(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_tiktoken_source", lambda multilingual: None)
    tokenizer = whisper_vocabulary(multilingual=True)
    assert tokenizer.get_vocab_size() == 51865 and tokenizer.token_to_id("<|notimestamps|>") == 50363
    assert tokenizer.decode(tokenizer.encode("héllo", add_special_tokens=False).ids) == "héllo"
    assert whisper_vocabulary(multilingual=False).get_vocab_size() == 256 + len(models._special_tokens())
    path = build_tiny_whisper(tmp_path / "bytes", "ct2", multilingual=False)
    assert json.loads((path / models.MARKER).read_text())["text_tokens"] == "bytes"
    ctranslate2 = pytest.importorskip("ctranslate2")
    assert not ctranslate2.models.Whisper(str(path), device="cpu", compute_type="float32").is_multilingual
