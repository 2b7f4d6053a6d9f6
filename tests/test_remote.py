"""The remote backend: a running server as an engine, through each protocol, on loopback.

The server is asr_lab's own (uvicorn in a thread, engines in threads) serving the stand-in
:class:`ScriptedProcessor` of ``test_protocols``, so what the remote processor records can
be checked exactly against what the engine committed; a real third-party server
(WhisperLiveKit) is in ``test_remote_wlk.py``."""

import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("websockets")
uvicorn = pytest.importorskip("uvicorn")

import asr_lab  # noqa: E402
from asr_lab.backends import registry  # noqa: E402
from asr_lab.backends.remote import RemoteError  # noqa: E402
from asr_lab.web.server import ServerSettings, create_app  # noqa: E402

from test_protocols import SCRIPT, ScriptedLoader  # noqa: E402

SR = 16000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    asr_lab.register_loader("scripted", ScriptedLoader())
    port, tcp_port = free_port(), free_port()
    app = create_app({"backend": "scripted"}, settings=ServerSettings(chunk_sec=0.25, tcp_port=tcp_port, protocol_sniff_sec=0.3))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        assert time.time() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.05)
    yield {"ws": f"ws://127.0.0.1:{port}", "tcp": f"tcp://127.0.0.1:{tcp_port}"}
    srv.should_exit = True
    thread.join(timeout=10)
    registry.unregister_loader("scripted")


def audio(seconds=3.2):
    t = np.arange(int(seconds * SR)) / SR
    return (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


ROUTES = {"asr_lab": "/asr", "whisperlivekit": "/asr", "deepgram": "/v1/listen"}


@pytest.mark.parametrize("protocol", ["asr_lab", "whisperlivekit", "deepgram", "tcp"])
def test_each_protocol_records_what_the_server_committed(server, protocol):
    url = server["tcp"] if protocol == "tcp" else server["ws"] + ROUTES[protocol]
    proc, meta = asr_lab.load_processor({"backend": "remote", "url": url, "protocol": protocol})
    assert meta["compute"] == "elapsed"
    trace = asr_lab.replay(proc, audio(), clock="wall", chunk_sec=0.25)
    assert trace.error is None
    assert trace.text == "one two three"
    # every segment is stamped after its audio was sent, and no later than a generous bound
    for e in trace.emissions:
        assert e.emitted_at >= e.end - 0.01 and e.emitted_at - e.end < 5
    starts = [e.start for e in trace.emissions]
    assert starts == sorted(starts) and trace.emissions[0].start == pytest.approx(0.0)
    assert trace.emissions[-1].end == pytest.approx(SCRIPT[-1][1], abs=0.01)
    assert trace.meta["clock"] == "wall"


def test_the_virtual_clock_is_refused_with_the_fix(server):
    proc, _ = asr_lab.load_processor({"backend": "remote", "url": server["ws"] + "/asr_lab", "protocol": "asr_lab"})
    trace = asr_lab.replay(proc, audio(), clock="virtual", chunk_sec=0.25)
    assert "wall clock" in str(trace.error) and "ahead of real time" in str(trace.error)


def test_a_server_that_is_not_there_is_a_failed_run_naming_it():
    url = f"ws://127.0.0.1:{free_port()}/asr"
    proc, _ = asr_lab.load_processor({"backend": "remote", "url": url, "protocol": "asr_lab", "connect_timeout_sec": 2})
    trace = asr_lab.replay(proc, audio(1.0), clock="wall")
    assert trace.emissions == [] and "cannot reach" in str(trace.error) and url in str(trace.error)
    assert trace.error.type == RemoteError.__name__


def test_a_server_error_is_a_failed_run_naming_it(server):
    # a Deepgram stream whose server refuses an option: the error, not an empty transcript
    proc, _ = asr_lab.load_processor({"backend": "remote", "url": server["ws"] + "/v1/listen?utterance_end_ms=soon",
                                      "protocol": "deepgram"})
    trace = asr_lab.replay(proc, audio(1.0), clock="wall")
    assert trace.error is not None and "utterance_end_ms='soon'" in str(trace.error)


def test_a_silent_server_times_out_with_a_clear_error():
    # a TCP listener that accepts and never answers (a hung server)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
    try:
        proc, _ = asr_lab.load_processor({"backend": "remote", "url": f"tcp://127.0.0.1:{port}", "protocol": "tcp",
                                          "answer_timeout_sec": 1})
        trace = asr_lab.replay(proc, audio(0.5), clock="wall", warmup_sec=0)
    finally:
        listener.close()
    assert trace.error is not None and "no final answer within 1 s" in str(trace.error)


@pytest.mark.parametrize("config, words", [
    ({"url": "http://127.0.0.1:1/asr"}, "does not fit protocol='asr_lab'"),
    ({"url": "ws://127.0.0.1:1/asr", "protocol": "tcp"}, "tcp://HOST:PORT"),
    ({"url": "ws://127.0.0.1:1/asr", "protocol": "whisper"}, "protocol"),
])
def test_bad_configs_name_the_value(config, words):
    with pytest.raises(Exception, match=words):
        asr_lab.load_processor({"backend": "remote", **config})


def test_compare_scores_a_remote_server_beside_an_in_process_engine(server, tmp_path):
    from asr_lab.data.dataset import Dataset, Utterance

    dataset = Dataset([Utterance.from_array("u1", audio(), "one two three")])
    results = asr_lab.compare({"remote": {"backend": "remote", "url": server["ws"] + "/asr_lab", "protocol": "asr_lab"},
                               "local": {"backend": "scripted"}}, dataset, clock="wall", progress=False,
                              cache_dir=str(tmp_path / "cache"))
    table = results.summary
    assert table.loc["remote", "failed"] == 0 and table.loc["local", "failed"] == 0
    assert table.loc["remote", "wer"] == table.loc["local", "wer"] == 0.0  # the same engine, in process and served
    # the remote run's latencies are measured like the local one's (no reference timings here: hypothesis side)
    assert table.loc["remote", "hyp_latency_count"] == 3 and 0 <= table.loc["remote", "hyp_latency_p50"] < 5
    assert table.loc["remote", "clock"] == "wall"
