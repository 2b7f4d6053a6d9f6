"""The server: /load_model, /backends, /health, and the WebSocket stream protocol and its faults."""

import json
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import asr_lab  # noqa: E402
from asr_lab.backends import registry  # noqa: E402
from asr_lab.web.server import ServerSettings, create_app  # noqa: E402

SR = 16000


class CountingProcessor:
    """Stand-in native engine: commits "s<k>" for every full half second it has received,
    shows the rest as partial, and raises on the call numbered ``fail_at``."""

    instances = 0

    def __init__(self, fail_at=None):
        CountingProcessor.instances += 1
        self.fail_at = fail_at
        self.init()

    def init(self, offset=0.0):
        self.offset, self.fed, self.done, self.calls = offset, 0, 0, 0

    def insert_audio_chunk(self, audio):
        self.fed += len(audio)

    def process_iter(self):
        self.calls += 1
        if self.fail_at and self.calls >= self.fail_at:
            raise RuntimeError("engine exploded")
        if self.fed - self.done >= SR // 2:
            start = self.offset + self.done / SR
            self.done += SR // 2
            return (start, start + 0.5, f"s{self.done // (SR // 2)}")
        return None

    def partial(self):
        return (self.offset + self.done / SR, self.offset + self.fed / SR, "...") if self.fed > self.done else None

    def finish(self):
        if self.fed > self.done:
            start, self.done = self.offset + self.done / SR, self.fed
            return (start, self.offset + self.fed / SR, "tail")
        return None


class CountingConfig(asr_lab.ASRConfig):
    fail_at: int = 0


class CountingLoader:
    config_class = CountingConfig
    description = "stand-in counting engine"

    def load(self, config):
        return CountingProcessor(config.fail_at or None), {"separator": " "}


@pytest.fixture(autouse=True)
def counting_backend():
    asr_lab.register_loader("counting", CountingLoader())
    yield
    registry.unregister_loader("counting")


def client(**settings):
    settings.setdefault("allowed_hosts", ("testserver",))  # the Host header Starlette's TestClient sends
    return TestClient(create_app(settings=ServerSettings(**settings)))


def pcm16(seconds):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()


def stream(ws, frames, start=None, stop=True):
    ws.send_text(json.dumps(start or {"type": "start", "format": "int16", "sample_rate": 16000}))
    events = [ws.receive_json()]
    for f in frames:
        ws.send_bytes(f)
    if stop:
        ws.send_text(json.dumps({"type": "stop"}))
    while events[-1]["type"] not in ("done", "error"):
        events.append(ws.receive_json())
    return events


def test_load_model_backends_and_health():
    c = client()
    assert c.get("/health").json() == {"status": "ok", "loaded": None, "connections": 0}
    names = [b["name"] for b in c.get("/backends").json()]
    assert "counting" in names and "pocketsphinx" in names
    r = c.post("/load_model", json={"backend": "counting", "lan": "en", "min_chunk_size": 0.5})
    assert r.status_code == 200 and r.json()["backend"] == "counting" and r.json()["separator"] == " "
    assert c.get("/health").json()["loaded"] == "counting"


def test_load_model_errors_are_field_level_and_list_backends():
    c = client()
    r = c.post("/load_model", json={"backend": "counting", "buffer_trimming": "words", "fail_at": "x"})
    assert r.status_code == 422
    fields = {f["field"] for f in r.json()["fields"]}
    assert fields == {"buffer_trimming", "fail_at"}
    r = c.post("/load_model", json={"backend": "nope"})
    assert r.status_code == 404 and "counting" in r.json()["known"] and "unknown backend 'nope'" in r.json()["message"]
    r = c.post("/load_model", json={"backend": "counting", "lann": "en"})
    assert r.status_code == 422 and "did you mean 'lan'" in r.json()["message"]
    r = c.post("/load_model", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_load_model_never_imports_modules_from_a_request():
    c = client()
    r = c.post("/load_model", json={"backend": "os:system"})
    assert r.status_code == 404
    r = c.post("/load_model", json={"backend": "asr_lab.testing.scripted:ScriptedASR"})
    assert r.status_code == 404


def test_stream_gets_segments_partials_and_done():
    c = client(chunk_sec=0.25)
    c.post("/load_model", json={"backend": "counting"})
    with c.websocket_connect("/asr") as ws:
        events = stream(ws, [pcm16(0.25)] * 8 + [pcm16(0.1)])
    assert events[0]["type"] == "ready" and events[0]["sample_rate"] == 16000
    segments = [e for e in events if e["type"] == "segment"]
    # one "s<k>" per process_iter call: how many calls the 2.1 s get depends on how the frames, sent
    # at once, are batched by the time they reach the engine; finish() commits the rest as "tail"
    k = len(segments) - 1
    assert 1 <= k <= 4 and [s["text"] for s in segments] == [f"s{i}" for i in range(1, k + 1)] + ["tail"]
    assert [s["start"] for s in segments] == pytest.approx([0.5 * i for i in range(k + 1)])
    assert segments[-1]["end"] == pytest.approx(2.1)
    assert segments[-1]["final"] and all("lag" in s and "emitted_at" in s for s in segments)
    assert any(e["type"] == "partial" for e in events)
    assert events[-1]["type"] == "done" and events[-1]["audio_sec"] == pytest.approx(2.1)


def test_float32_frames_are_accepted():
    c = client()
    c.post("/load_model", json={"backend": "counting"})
    with c.websocket_connect("/asr") as ws:
        audio = np.zeros(SR, dtype="<f4").tobytes()
        events = stream(ws, [audio], start={"type": "start", "format": "float32", "sample_rate": 16000})
    assert [e["text"] for e in events if e["type"] == "segment"] == ["s1", "tail"]  # 1 s in one step: one commit, then finish


@pytest.mark.parametrize(
    "start, code, words",
    [
        ({"type": "start", "format": "mp3"}, 1003, "format='mp3' is not supported"),
        ({"type": "start", "sample_rate": 44100}, 1003, "resample to 16000"),
        ({"type": "begin"}, 1002, '"type": "start"'),
    ],
)
def test_bad_start_messages_close_with_a_reason(start, code, words):
    c = client()
    c.post("/load_model", json={"backend": "counting"})
    with c.websocket_connect("/asr") as ws:
        ws.send_text(json.dumps(start))
        event = ws.receive_json()
        assert event["type"] == "error" and words in event["message"]
        with pytest.raises(Exception) as closed:
            ws.receive_json()
        assert getattr(closed.value, "code", None) == code


def test_no_model_loaded_is_a_clear_error():
    with client().websocket_connect("/asr") as ws:
        assert "POST /load_model first" in ws.receive_json()["message"]


@pytest.mark.parametrize(
    "frame, code, words",
    [
        (b"\x00\x01\x02", 1007, "not a whole number of int16 samples"),
        (b"\x00" * (2 * 1024 + 2), 1009, "exceeds the limit"),
    ],
)
def test_bad_frames_keep_what_was_emitted_and_close(frame, code, words):
    c = client(max_message_bytes=2048, chunk_sec=0.25)
    c.post("/load_model", json={"backend": "counting"})
    with c.websocket_connect("/asr") as ws:
        ws.send_text(json.dumps({"type": "start"}))
        assert ws.receive_json()["type"] == "ready"
        for _ in range(16):
            ws.send_bytes(pcm16(0.0625))  # 1 s in frames under the limit
        time.sleep(0.6)
        ws.send_bytes(frame)
        events = []
        while not events or events[-1]["type"] != "error":
            events.append(ws.receive_json())
    assert words in events[-1]["message"]
    assert [e["text"] for e in events if e["type"] == "segment"][:1] == ["s1"]  # emitted before the fault, kept


def test_a_processor_that_raises_reports_and_the_server_goes_on():
    c = client(chunk_sec=0.25)
    # the first process_iter raises: frames sent at once may be batched into as few as one call
    # before finish(), so only the first call is sure to happen (segments kept before a fault: above)
    c.post("/load_model", json={"backend": "counting", "fail_at": 1})
    with c.websocket_connect("/asr") as ws:
        events = stream(ws, [pcm16(0.25)] * 8)
    assert [e for e in events if e["type"] == "segment"] == []
    assert events[-1]["type"] == "error" and "engine exploded" in events[-1]["message"]
    c.post("/load_model", json={"backend": "counting"})
    with c.websocket_connect("/asr") as ws:
        assert stream(ws, [pcm16(1.0)])[-1]["type"] == "done"
    assert c.get("/health").json()["connections"] == 0


def test_each_connection_gets_its_own_processor_and_limits_hold():
    c = client(max_connections=1)
    c.post("/load_model", json={"backend": "counting"})
    before = CountingProcessor.instances
    with c.websocket_connect("/asr") as ws1:
        ws1.send_text(json.dumps({"type": "start"}))
        assert ws1.receive_json()["type"] == "ready"
        with c.websocket_connect("/asr") as ws2:
            err = ws2.receive_json()
            assert err["code"] == "too_many_streams"
        ws1.send_text(json.dumps({"type": "stop"}))
    assert CountingProcessor.instances == before + 1


def test_a_client_that_disconnects_mid_stream_frees_its_slot():
    c = client()
    c.post("/load_model", json={"backend": "counting"})
    with c.websocket_connect("/asr") as ws:
        ws.send_text(json.dumps({"type": "start"}))
        ws.receive_json()
        ws.send_bytes(pcm16(0.5))
    for _ in range(50):
        if c.get("/health").json()["connections"] == 0:
            break
        time.sleep(0.05)
    assert c.get("/health").json()["connections"] == 0


def test_page_is_served():
    html = client().get("/").text
    assert "<title>asr_lab" in html and "asrLabStartCapture" in html and "/*CAPTURE_JS*/" not in html


def test_serve_command_passes_its_limits_to_the_app(monkeypatch, capsys):
    import uvicorn

    from asr_lab.cli import main

    served = {}
    # stand-in for uvicorn.run: only the app the command builds is under test here
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    assert main(["serve", "--port", "8123", "--max-connections", "3", "--max-pending-sec", "5"]) == 0
    settings = served["app"].state.asr.settings
    assert (settings.max_connections, settings.max_pending_sec) == (3, 5.0)
    assert (served["host"], served["port"]) == ("127.0.0.1", 8123)

    assert main(["serve", "--max-connections", "0"]) == 2
    assert "--max-connections 0" in capsys.readouterr().err


# -- who may drive the server (asr_lab.web.access) ---------------------------------------------


def test_a_page_from_another_origin_cannot_load_a_model_or_open_a_stream():
    c = client()
    r = c.post("/load_model", json={"backend": "counting"}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"] == "origin_not_allowed" and "--allow-origin http://evil.example" in r.json()["message"]
    assert c.get("/health").json()["loaded"] is None
    c.post("/load_model", json={"backend": "counting"})
    with pytest.raises(Exception) as refused:
        with c.websocket_connect("/asr", headers={"origin": "http://evil.example"}):
            pass
    assert getattr(refused.value, "code", None) == 1008
    # the server's own page, and loopback pages, are served
    own = c.post("/load_model", json={"backend": "counting"}, headers={"origin": "http://testserver"})
    local = c.post("/load_model", json={"backend": "counting"}, headers={"origin": "http://localhost:5173"})
    assert own.status_code == local.status_code == 200


def test_dns_rebinding_is_refused_by_the_host_check():
    c = TestClient(create_app(settings=ServerSettings()), base_url="http://attacker.example")
    r = c.get("/health")
    assert r.status_code == 403 and r.json()["error"] == "host_not_allowed" and "--allow-host" in r.json()["message"]
    assert TestClient(create_app(settings=ServerSettings()), base_url="http://127.0.0.1:8000").get("/health").status_code == 200


def test_bodies_must_be_json_and_small():
    c = client(max_body_bytes=1000)
    r = c.post("/load_model", content=b'{"backend": "counting"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["message"]
    r = c.post("/load_model", json={"backend": "counting", "pad": "x" * 2000})
    assert r.status_code == 413 and "limit of 1000" in r.json()["message"]


def test_an_optional_token_guards_everything_and_the_page_link_sets_a_cookie():
    c = client(token="s3cret")
    r = c.get("/health")
    assert r.status_code == 401 and r.json()["error"] == "token_required"
    assert c.get("/health", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/load_model", json={"backend": "counting"}, headers={"authorization": "Bearer s3cret"}).status_code == 200
    page = c.get("/?token=s3cret")
    assert page.status_code == 200 and "asr_lab_token=s3cret" in page.headers["set-cookie"]
    with c.websocket_connect("/asr", headers={"cookie": "asr_lab_token=s3cret"}) as ws:
        events = stream(ws, [pcm16(1.0)])
    assert events[-1]["type"] == "done"


def test_a_stream_that_goes_quiet_is_closed_and_frees_its_slot():
    c = client(idle_timeout_sec=0.3, max_connections=1)
    c.post("/load_model", json={"backend": "counting"})
    with c.websocket_connect("/asr") as ws:
        events = stream(ws, [pcm16(1.0)], stop=False)
        assert events[-1]["code"] == "idle_timeout"
    assert c.get("/health").json()["connections"] == 0


def test_a_folder_without_a_model_is_a_422_naming_the_field():
    pytest.importorskip("pocketsphinx")
    r = client().post("/load_model", json={"backend": "pocketsphinx", "model_dir": "/etc"})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "model_dir" and "/etc" in r.json()["message"]


# -- engines in worker processes (asr_lab.web.engines) ----------------------------------------------


class DyingProcessor(CountingProcessor):
    """Stand-in for an engine that crashes in native code: its process ends abruptly after 1 s of audio."""

    def process_iter(self):
        if self.fed >= SR:
            import os

            os._exit(3)
        return super().process_iter()


class DyingLoader:
    config_class = CountingConfig

    def load(self, config):
        return (DyingProcessor() if config.fail_at < 0 else CountingProcessor(config.fail_at or None)), {"separator": " "}


@pytest.mark.slow
def test_engines_in_a_worker_process_stream_report_errors_and_survive_a_crash():
    asr_lab.register_loader("dying", DyingLoader())
    try:
        c = client(engine_processes=1, chunk_sec=0.25)
        assert c.post("/load_model", json={"backend": "dying"}).status_code == 200
        with c.websocket_connect("/asr") as ws:
            events = stream(ws, [pcm16(1.0)])
        texts = [e["text"] for e in events if e["type"] == "segment"]
        assert texts[0] == "s1" and events[-1]["type"] == "done" and events[-1]["text"] == " ".join(texts)
        # the engine's own ConfigError, raised in the worker, is still a 422 naming the field
        if registry.get_loader("pocketsphinx") is not None:
            r = c.post("/load_model", json={"backend": "pocketsphinx", "model_dir": "/etc"})
            assert r.status_code == 422 and r.json()["fields"][0]["field"] == "model_dir"
        assert c.post("/load_model", json={"backend": "dying", "fail_at": -1}).status_code == 200
        with c.websocket_connect("/asr") as ws:
            events = stream(ws, [pcm16(0.5)] * 4)
        assert events[-1]["code"] == "engine_process_died" and "exit code 3" in events[-1]["message"]
        for _ in range(100):  # the worker is replaced: the next stream is served
            with c.websocket_connect("/asr") as ws:
                events = stream(ws, [pcm16(0.5)])
            if events[0]["type"] == "ready":
                break
            time.sleep(0.1)
        assert events[-1]["type"] == "done" and c.get("/health").json()["connections"] == 0
    finally:
        registry.unregister_loader("dying")
