"""Config and API edges: each bad value gets a clear error naming it (no bare TypeError,
no silent reading of ``true`` as 1.0 s, no handler crash without a close frame)."""

import json
from pathlib import Path

import numpy as np
import pytest

import asr_lab
from asr_lab.backends import registry
from asr_lab.core.config import ASRConfig, ConfigError, parse_config

SR = 16000
UTTERANCES = [asr_lab.Utterance.from_array("u1", np.zeros(SR, dtype=np.float32), "")]


class SilentStandIn:
    """Stand-in processor: commits nothing (the edges, not decoding, are under test)."""

    def init(self, offset=0.0):
        pass

    def insert_audio_chunk(self, audio):
        pass

    def process_iter(self):
        return None

    def finish(self):
        return None


class StandInConfig(ASRConfig):
    batch_size: int = 1
    gain: float = 0.5
    verbose: bool = False


class StandInLoader:
    config_class = StandInConfig

    def load(self, config):
        return SilentStandIn(), {"separator": " "}


class BareProcessorLoader:
    """A loader that slips: it returns the processor alone, not (processor, metadata)."""

    def load(self, config):
        return SilentStandIn()


@pytest.fixture(autouse=True)
def stand_in_backends():
    asr_lab.register_loader("edge-stand-in", StandInLoader())
    asr_lab.register_loader("edge-bare", BareProcessorLoader())
    yield
    registry.unregister_loader("edge-stand-in")
    registry.unregister_loader("edge-bare")


# -- strict numbers -------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [("min_chunk_size", True), ("buffer_trimming_sec", False), ("vac_chunk_size", True)])
def test_a_boolean_is_not_a_number_of_seconds(field, value):
    with pytest.raises(ConfigError) as refused:
        parse_config({field: value})
    assert f"{field}={value!r} is a boolean, not a number" in str(refused.value)
    config = ASRConfig()
    with pytest.raises(ValueError, match=f"{field}={value!r} is a boolean"):
        setattr(config, field, value)  # assignment is validated too


def test_subclass_number_fields_are_strict_too_and_booleans_stay_booleans():
    for field in ("batch_size", "gain"):
        with pytest.raises(ConfigError, match=f"{field}=True is a boolean"):
            parse_config({"backend": "edge-stand-in", field: True}, StandInConfig)
    ok = parse_config({"backend": "edge-stand-in", "verbose": True, "vac": False, "batch_size": 4, "gain": 1}, StandInConfig)
    assert (ok.verbose, ok.vac, ok.batch_size, ok.gain) == (True, False, 4, 1.0)
    # the seed's JSON body path: load_processor
    with pytest.raises(ConfigError, match="min_chunk_size=True"):
        asr_lab.load_processor('{"backend": "edge-stand-in", "min_chunk_size": true}')


# -- loaders and engines that break the contract --------------------------------------------


def test_a_loader_returning_a_bare_processor_is_named():
    with pytest.raises(TypeError) as refused:
        asr_lab.load_processor({"backend": "edge-bare"})
    message = str(refused.value)
    assert "'edge-bare'" in message and "bare SilentStandIn" in message and "(processor, metadata)" in message


class NoneWordsASR:
    """Stand-in ASRBase whose ts_words breaks the contract by returning None."""

    sep = " "

    def transcribe(self, audio, init_prompt=""):
        return object()

    def ts_words(self, result):
        return None

    def segments_end_ts(self, result):
        return []


def test_ts_words_returning_none_is_named():
    processor = asr_lab.OnlineASRProcessor(NoneWordsASR())
    processor.insert_audio_chunk(np.zeros(SR, dtype=np.float32))
    with pytest.raises(TypeError) as refused:
        processor.process_iter()
    assert "NoneWordsASR.ts_words() returned None" in str(refused.value) and "return []" in str(refused.value)


class BadWordASR(NoneWordsASR):
    def ts_words(self, result):
        return [(0.0, 0.5, "fine"), (0.5, "1.0", "bad")]


def test_a_malformed_word_is_named_with_its_index():
    processor = asr_lab.OnlineASRProcessor(BadWordASR())
    processor.insert_audio_chunk(np.zeros(SR, dtype=np.float32))
    with pytest.raises(TypeError, match=r"word 1 is \(0.5, '1.0', 'bad'\)"):
        processor.process_iter()


# -- warm-up and compare configs -------------------------------------------------------------


@pytest.mark.parametrize("warmup", [float("nan"), float("inf"), -1.0, 1e9, True, "1"])
def test_warmup_sec_must_be_sane_seconds(warmup):
    with pytest.raises(ValueError, match=r"warmup_sec=.* must be seconds from 0 to 60"):
        asr_lab.replay(SilentStandIn(), np.zeros(SR, dtype=np.float32), warmup_sec=warmup)
    with pytest.raises(ValueError, match=r"warmup_sec=.* must be seconds"):  # before any run
        asr_lab.compare({"s": {"backend": "edge-stand-in"}}, UTTERANCES, warmup_sec=warmup, progress=False)


@pytest.mark.parametrize("config, words", [
    ('{"backend": "edge-stand-in",', "system 's': config is not valid JSON"),
    ("[1, 2]", "system 's': config must be a JSON object"),
    (["edge-stand-in"], "system 's': a config must be a dict"),
])
def test_a_compare_config_that_is_not_an_object_is_named(config, words, tmp_path):
    with pytest.raises(ConfigError) as refused:
        asr_lab.compare({"s": config}, UTTERANCES, progress=False, cache_dir=tmp_path)
    assert words in str(refused.value)
    assert not (tmp_path / "runs.jsonl").exists() or (tmp_path / "runs.jsonl").read_text() == ""


# -- the CLI's --config ------------------------------------------------------------------------


def test_a_config_file_that_is_not_utf8_is_named(tmp_path, capsys):
    from asr_lab.cli import main

    bad = tmp_path / "latin1.json"
    bad.write_bytes('{"backend": "pocketsphinx", "lan": "fr", "model": "caf\xe9"}'.encode("latin-1"))
    audio = next((Path(__file__).resolve().parent.parent / "datasets" / "mini" / "audio").glob("*.flac"))
    assert main(["replay", "--config", str(bad), str(audio)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not UTF-8" in err and "0xe9" in err and "Traceback" not in err


# -- the server -----------------------------------------------------------------------------


fastapi = pytest.importorskip("fastapi")


def _client():
    from fastapi.testclient import TestClient

    from asr_lab.web.server import create_app

    return TestClient(create_app())


def test_the_server_names_a_non_utf8_body_a_boolean_number_and_a_bare_loader():
    c = _client()
    r = c.post("/load_model", content=b'{"backend": "edge-stand-in", "lan": "\xff"}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not UTF-8" in r.json()["message"] and "0xff at offset" in r.json()["message"]
    r = c.post("/load_model", json={"backend": "edge-stand-in", "min_chunk_size": True})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "min_chunk_size" and "boolean" in r.json()["message"]
    r = c.post("/load_model", content=b'{"backend": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["message"]
    r = c.post("/load_model", json={"backend": "edge-bare"})
    assert r.status_code == 500 and "(processor, metadata)" in r.json()["message"]
    assert c.get("/health").json()["loaded"] is None


@pytest.mark.parametrize("start, words", [
    ({"type": "start", "format": ["int16"]}, "format=['int16'] is not supported"),
    ({"type": "start", "format": {"x": 1}}, "format={'x': 1} is not supported"),
    ({"type": "start", "sample_rate": [16000]}, "sample_rate=[16000] is not supported"),
    ({"type": "start", "sample_rate": True}, "sample_rate=True is not supported"),
])
def test_a_start_message_with_an_odd_type_gets_an_error_and_a_close_frame(start, words):
    c = _client()
    assert c.post("/load_model", json={"backend": "edge-stand-in"}).status_code == 200
    with c.websocket_connect("/asr") as ws:
        ws.send_text(json.dumps(start))
        event = ws.receive_json()
        assert event["type"] == "error" and event["code"] == "bad_start" and words in event["message"]
        with pytest.raises(Exception) as closed:
            ws.receive_json()
        assert getattr(closed.value, "code", None) == 1003
    assert c.get("/health").json()["connections"] == 0


# -- the live panel ---------------------------------------------------------------------------


def test_an_impossible_sequence_number_is_refused_not_counted_as_missing():
    pytest.importorskip("anywidget")
    from asr_lab.widgets import LiveMicPanel, encode_audio_message

    panel = LiveMicPanel(SilentStandIn(), chunk_sec=0.1, warmup_sec=0)
    panel.handle_message({"type": "start", "rate": SR})
    assert panel.handle_message(*encode_audio_message(np.zeros(1600), 0)) is not False
    assert panel.handle_message(*encode_audio_message(np.zeros(1600), 10**9)) is False
    assert "seq=1000000000" in panel.error and "restart the capture" in panel.error
    assert panel.handle_message(*encode_audio_message(np.zeros(1600), 3)) is not False  # a real gap: 1 and 2
    panel.handle_message({"type": "stop", "seq": 10**9})
    trace = panel.wait(timeout=20)
    assert trace.meta["missing_chunks"] == 2 and trace.meta["rejected_chunks"] == 2
