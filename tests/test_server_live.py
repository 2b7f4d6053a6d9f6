"""The server for real: uvicorn on loopback, pocketsphinx, concurrent WebSocket clients in real time."""

import json
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("pocketsphinx")
uvicorn = pytest.importorskip("uvicorn")
from websockets.sync.client import connect  # noqa: E402

import asr_lab  # noqa: E402
from asr_lab.metrics import wer  # noqa: E402
from asr_lab.web.server import ServerSettings, create_app  # noqa: E402

MINI = asr_lab.load_dataset(__import__("pathlib").Path(__file__).resolve().parent.parent / "datasets" / "mini")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    # engines in worker processes, as `asr-lab serve` runs them by default
    app = create_app({"backend": "pocketsphinx", "min_chunk_size": 0.25}, settings=ServerSettings(engine_processes=2))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        assert time.time() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def stream_utterance(address, audio, results, key, realtime=True, chunk_sec=0.1):
    """A client: send int16 chunks at real-time pace, collect every event."""
    events = []
    with connect(f"ws://{address}/asr", open_timeout=10, close_timeout=5) as ws:
        ws.send(json.dumps({"type": "start", "format": "int16", "sample_rate": 16000}))
        events.append(json.loads(ws.recv(timeout=10)))
        step = int(chunk_sec * 16000)
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm), step)):
            ws.send(pcm[i : i + step].tobytes())
            if realtime:
                time.sleep(max(0.0, t0 + (k + 1) * chunk_sec - time.perf_counter()))
        ws.send(json.dumps({"type": "stop"}))
        while events[-1]["type"] not in ("done", "error"):
            events.append(json.loads(ws.recv(timeout=30)))
    results[key] = events


def test_concurrent_real_time_streams_each_get_their_own_transcript(server):
    utts = [MINI["slt-000"], MINI["rms-001"], MINI["awb-002"]]
    results: dict = {}
    threads = [threading.Thread(target=stream_utterance, args=(server, u.load_audio(), results, u.id)) for u in utts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert set(results) == {u.id for u in utts}
    for u in utts:
        events = results[u.id]
        assert events[0]["type"] == "ready" and events[-1]["type"] == "done", events[-1]
        text = " ".join(e["text"] for e in events if e["type"] == "segment")
        assert wer(reference=u.text, hypothesis=text).rate <= 0.35, (u.text, text)
        lags = [e["lag"] for e in events if e["type"] == "segment"]
        assert max(lags) < 5.0 and events[-1]["dropped_chunks"] == 0


def test_server_health_and_a_client_that_vanishes(server):
    import urllib.request

    audio = MINI["kal16-003"].load_audio()
    with connect(f"ws://{server}/asr", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "start"}))
        json.loads(ws.recv(timeout=10))
        ws.send((audio[:8000] * 32767).astype("<i2").tobytes())
        ws.socket.close()  # gone without a close handshake
    deadline = time.time() + 10
    while True:
        health = json.loads(urllib.request.urlopen(f"http://{server}/health", timeout=5).read())
        if health["connections"] == 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert health == {"status": "ok", "loaded": "pocketsphinx", "connections": 0}
    results: dict = {}
    stream_utterance(server, audio, results, "after", realtime=False)  # the server still serves
    assert results["after"][-1]["type"] == "done"
