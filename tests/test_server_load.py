"""The server under load: concurrent model loads are serialised (identical ones shared), and a
stream whose engine falls behind real time sheds audio visibly instead of lagging without bound."""

import json
import os
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
from fastapi.testclient import TestClient  # noqa: E402

import asr_lab  # noqa: E402
from asr_lab.backends import registry  # noqa: E402
from asr_lab.web.server import ServerSettings, create_app  # noqa: E402

SR = 16000


class QuietProcessor:
    """Stand-in engine that says nothing; ``call_sec`` > 0 makes every call that slow (an engine
    slower than real time, as on an overloaded machine)."""

    def __init__(self, call_sec=0.0):
        self.call_sec = call_sec

    def init(self, offset=0.0):
        pass

    def insert_audio_chunk(self, audio):
        pass

    def process_iter(self):
        if self.call_sec:
            time.sleep(self.call_sec)
        return None

    def finish(self):
        return None


class LoadLogConfig(asr_lab.ASRConfig):
    log: str = ""  # where each load writes its start and end
    tag: int = 0  # a field to make configurations differ
    call_sec: float = 0.0


class LoggingLoader:
    """Stand-in loader: a load takes 0.4 s and logs "start"/"end" lines with the time, so the
    test can see how many loads ran and whether two overlapped (in any process)."""

    config_class = LoadLogConfig

    def load(self, config):
        if config.log:
            with open(config.log, "a") as f:
                f.write(f"start {time.time():.6f} {os.getpid()}\n")
            time.sleep(0.4)
            with open(config.log, "a") as f:
                f.write(f"end {time.time():.6f} {os.getpid()}\n")
        return QuietProcessor(config.call_sec), {"separator": " "}


@pytest.fixture(autouse=True)
def logging_backend():
    asr_lab.register_loader("load-log", LoggingLoader())
    yield
    registry.unregister_loader("load-log")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server():
    """A real uvicorn on loopback with engines in a worker process, as `asr-lab serve` runs them."""
    port = _free_port()
    app = create_app(settings=ServerSettings(engine_processes=1))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    srv.should_exit = True
    thread.join(timeout=20)


def _post_all(url: str, bodies: list) -> list:
    """POST every body at once, each from its own thread (real concurrent requests)."""
    answers: list = [None] * len(bodies)
    go = threading.Barrier(len(bodies))

    def post(i):
        request = urllib.request.Request(f"{url}/load_model", data=json.dumps(bodies[i]).encode(),
                                         headers={"content-type": "application/json"})
        go.wait()
        with urllib.request.urlopen(request, timeout=120) as r:
            answers[i] = (r.status, json.loads(r.read()))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    return answers


def _loads(log) -> list[tuple[float, float]]:
    lines = [line.split() for line in log.read_text().splitlines()]
    starts = [float(t) for kind, t, _ in lines if kind == "start"]
    ends = [float(t) for kind, t, _ in lines if kind == "end"]
    assert len(starts) == len(ends)
    return list(zip(starts, ends))


def test_concurrent_loads_run_one_at_a_time_and_identical_ones_are_shared(live_server, tmp_path):
    url, app = live_server
    log = tmp_path / "loads.log"
    same = {"backend": "load-log", "log": str(log)}
    answers = _post_all(url, [same] * 6)
    assert [a[0] for a in answers] == [200] * 6
    assert sorted(a[1]["reused"] for a in answers) == [False] + [True] * 5
    assert len(_loads(log)) == 1  # one engine process loaded one model, not six
    log.write_text("")
    answers = _post_all(url, [{**same, "tag": k} for k in range(1, 4)])
    assert [a[0] for a in answers] == [200] * 3 and not any(a[1]["reused"] for a in answers)
    loads = sorted(_loads(log))
    assert len(loads) == 3
    for (_, end), (start, _) in zip(loads, loads[1:]):
        assert start >= end, f"two loads overlapped: {loads}"


def test_live_audio_drops_while_the_engine_is_behind_real_time_and_counts_drops_as_skipped():
    from asr_lab.replay import LiveAudio

    live = LiveAudio(max_pending_sec=30, max_behind_sec=1.0)
    assert live.push(np.zeros(1600, dtype=np.float32))
    live.first_arrival -= 5.0  # as if the first chunk came 5 s ago and the engine has finished nothing
    assert live.behind_sec() > 4.0
    assert not live.push(np.zeros(1600, dtype=np.float32)) and live.dropped_chunks == 1
    live.read()  # the engine takes what was queued (0.1 s) ...
    live.read()  # ... and has finished it when it comes back
    # still behind: stream time ~5.1 s, finished 0.1 s + dropped 0.1 s
    assert live.behind_sec() > 4.0 and not live.push(np.zeros(1600, dtype=np.float32))
    with pytest.raises(ValueError, match="max_behind_sec=0"):
        LiveAudio(max_behind_sec=0)


def _pcm(seconds: float) -> bytes:
    return np.zeros(int(seconds * SR), dtype="<i2").tobytes()


@pytest.mark.parametrize("engine_processes", [0, 1])
def test_a_stream_whose_engine_falls_behind_sheds_audio_visibly_and_new_streams_wait(engine_processes):
    settings = ServerSettings(engine_processes=engine_processes, max_lag_sec=0.5, allowed_hosts=("testserver",))
    c = TestClient(create_app(settings=settings))
    # every call takes 1.5 s, for 0.1 s steps: the engine falls behind real time at once
    assert c.post("/load_model", json={"backend": "load-log", "call_sec": 1.5, "min_chunk_size": 0.1}).status_code == 200
    events = []
    with c.websocket_connect("/asr") as ws:
        ws.send_text(json.dumps({"type": "start", "format": "int16", "sample_rate": 16000}))
        assert ws.receive_json()["type"] == "ready"
        for _ in range(30):  # 3 s of audio at real-time pace
            ws.send_bytes(_pcm(0.1))
            time.sleep(0.1)
        # the client is told while it streams, not only at the end
        events.append(ws.receive_json())
        assert events[0]["type"] == "overload" and events[0]["code"] == "engine_behind"
        assert events[0]["dropped_chunks"] >= 1 and "behind real time" in events[0]["message"]
        assert events[0]["max_lag_sec"] == 0.5 and events[0]["behind_sec"] > 0.5 and "behind real time" in events[0]["message"]
        # while it sheds, a new stream is refused (try again later), not slowed down with it
        with c.websocket_connect("/asr") as other:
            refused = other.receive_json()
            assert refused["type"] == "error" and refused["code"] == "overloaded" and "dropping audio" in refused["message"]
            with pytest.raises(Exception) as closed:
                other.receive_json()
            assert getattr(closed.value, "code", None) == 1013
        ws.send_text(json.dumps({"type": "stop"}))
        while events[-1]["type"] not in ("done", "error"):
            events.append(ws.receive_json())
    done = events[-1]
    assert done["type"] == "done", done
    overloads = [e for e in events if e["type"] == "overload"]
    assert done["dropped_chunks"] >= overloads[-1]["dropped_chunks"] >= 1 and done["dropped_sec"] > 0
    # reported per second of dropped audio, not per chunk
    assert len(overloads) <= 1 + done["dropped_sec"] / 1.0
    # once the shedding stream has gone, streams are admitted again
    with c.websocket_connect("/asr") as ws:
        ws.send_text(json.dumps({"type": "start", "format": "int16", "sample_rate": 16000}))
        assert ws.receive_json()["type"] == "ready"
        ws.send_text(json.dumps({"type": "stop"}))
        assert ws.receive_json()["type"] == "done"
