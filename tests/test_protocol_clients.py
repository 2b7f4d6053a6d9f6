"""The real clients of each protocol, from PyPI, against `asr-lab serve`'s app on loopback with
a real engine (pocketsphinx, in an engine process as `asr-lab serve` runs it) and real audio.

* ``openai`` (its ``base_url``): the transcript is exactly what the same engine gives in
  process on the same file and clock; word timestamps; errors as the client's exceptions;
* ``deepgram-sdk``: its own socket client and message types (``ListenV1Results`` ...);
* WhisperLiveKit's own headless client (``whisperlivekit.test_client``) on ``/asr``;
* whisper_streaming's TCP protocol with a plain socket (its client is a script, not a package).
"""

import asyncio
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("pocketsphinx")
uvicorn = pytest.importorskip("uvicorn")

import asr_lab  # noqa: E402
from asr_lab.metrics import wer  # noqa: E402
from asr_lab.web.protocols.whisper_streaming import parse_line  # noqa: E402
from asr_lab.web.server import ServerSettings, create_app  # noqa: E402

MINI = asr_lab.load_dataset(Path(__file__).resolve().parent.parent / "datasets" / "mini")
UTT = MINI["slt-000"]
ENGINE = {"backend": "pocketsphinx", "min_chunk_size": 0.25}
TOKEN = "protocol-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(app, port):
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not srv.started:
        assert time.time() < deadline, "uvicorn did not start within 60 s"
        time.sleep(0.05)
    return srv, thread


@pytest.fixture(scope="module")
def server():
    port, tcp_port = free_port(), free_port()
    app = create_app(ENGINE, settings=ServerSettings(engine_processes=1, tcp_port=tcp_port, protocol_sniff_sec=0.5))
    srv, thread = start(app, port)
    yield {"http": f"http://127.0.0.1:{port}", "ws": f"ws://127.0.0.1:{port}", "tcp": ("127.0.0.1", tcp_port)}
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def token_server():
    port = free_port()
    srv, thread = start(create_app(ENGINE, settings=ServerSettings(engine_processes=0, token=TOKEN)), port)
    yield {"http": f"http://127.0.0.1:{port}", "ws": f"ws://127.0.0.1:{port}"}
    srv.should_exit = True
    thread.join(timeout=10)


def in_process_text(utt) -> str:
    proc, _ = asr_lab.load_processor(ENGINE)
    return asr_lab.replay(proc, utt.load_audio(), clock="unaware", warmup_sec=0).text


def test_openai_client_transcribes_through_the_server(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server["http"] + "/v1", api_key="unused", max_retries=0)
    with open(UTT.audio, "rb") as f:
        out = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json",
                                                 timestamp_granularities=["word"])
    assert out.text == in_process_text(UTT)  # the same engine and clock as in process: the same words
    assert wer(reference=UTT.text, hypothesis=out.text).rate <= 0.35, out.text
    words = out.words
    assert [w.word for w in words] == out.text.split()
    assert all(0 <= w.start <= w.end <= UTT.duration + 0.5 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    with open(UTT.audio, "rb") as f:
        assert client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text").strip() == out.text
    assert [m.id for m in client.models.list()][0] == "whisper-1"


def test_openai_client_gets_its_own_errors(server, tmp_path):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server["http"] + "/v1", api_key="unused", max_retries=0)
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"not audio at all, just text")
    with pytest.raises(openai.BadRequestError, match="cannot be decoded as audio"):
        client.audio.transcriptions.create(model="whisper-1", file=bad.open("rb"))
    with pytest.raises(openai.NotFoundError, match="model='gpt-4o-transcribe' is not served here"):
        client.audio.transcriptions.create(model="gpt-4o-transcribe", file=open(UTT.audio, "rb"))


def test_openai_client_api_key_is_the_servers_token(token_server):
    openai = pytest.importorskip("openai")
    good = openai.OpenAI(base_url=token_server["http"] + "/v1", api_key=TOKEN, max_retries=0)
    with open(UTT.audio, "rb") as f:
        assert good.audio.transcriptions.create(model="whisper-1", file=f).text
    wrong = openai.OpenAI(base_url=token_server["http"] + "/v1", api_key="guess", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.audio.transcriptions.create(model="whisper-1", file=open(UTT.audio, "rb"))


def deepgram_stream(base_ws: str, api_key: str, audio: np.ndarray):
    pytest.importorskip("deepgram")
    from deepgram import DeepgramClient
    from deepgram.environment import DeepgramClientEnvironment

    env = DeepgramClientEnvironment(base=base_ws.replace("ws", "http", 1), production=base_ws, agent=base_ws, agent_rest=base_ws)
    client = DeepgramClient(api_key=api_key, environment=env)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    messages = []
    with client.listen.v1.connect(model="nova-3", encoding="linear16", sample_rate="16000", channels="1",
                                  interim_results="true", utterance_end_ms="1000") as conn:
        step = 4000  # 250 ms
        for i in range(0, len(pcm), step):
            conn.send_media(pcm[i:i + step].tobytes())
            time.sleep(0.05)
        conn.send_close_stream()
        for msg in conn:
            messages.append(msg)
            if type(msg).__name__ == "ListenV1Metadata":
                break
    return messages


def test_deepgram_sdk_streams_and_gets_results_and_metadata(server):
    messages = deepgram_stream(server["ws"], "unused", UTT.load_audio())
    kinds = [type(m).__name__ for m in messages]
    assert kinds[-1] == "ListenV1Metadata" and "ListenV1Results" in kinds, kinds
    finals = [m for m in messages if type(m).__name__ == "ListenV1Results" and m.is_final]
    text = " ".join(m.channel.alternatives[0].transcript for m in finals)
    assert wer(reference=UTT.text, hypothesis=text).rate <= 0.35, text
    assert finals[-1].speech_final
    words = [w for m in finals for w in m.channel.alternatives[0].words]
    assert [w.word for w in words] == text.split() and all(w.start <= w.end for w in words)


def test_deepgram_sdk_token_is_the_servers_token(token_server):
    messages = deepgram_stream(token_server["ws"], TOKEN, UTT.load_audio()[:16000])
    assert type(messages[-1]).__name__ == "ListenV1Metadata"
    with pytest.raises(Exception) as refused:
        deepgram_stream(token_server["ws"], "guess", UTT.load_audio()[:16000])
    assert "403" in str(refused.value) or "1008" in str(refused.value) or "rejected" in str(refused.value).lower()


def test_whisperlivekits_own_client_streams_to_asr(server):
    test_client = pytest.importorskip("whisperlivekit.test_client")
    result = asyncio.run(test_client.transcribe_audio(str(UTT.audio), url=server["ws"] + "/asr", speed=4.0, timeout=60))
    assert result.responses and result.committed_text == result.text  # everything committed by the end
    assert wer(reference=UTT.text, hypothesis=result.text).rate <= 0.35, result.text
    assert all(line["start"].count(":") == 2 for line in result.lines)


def test_whisper_streaming_tcp_lines(server):
    pcm = (np.clip(UTT.load_audio(), -1, 1) * 32767).astype("<i2").tobytes()
    with socket.create_connection(server["tcp"], timeout=30) as sock:
        for i in range(0, len(pcm), 8000):
            sock.sendall(pcm[i:i + 8000])
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    lines = [parse_line(line) for line in data.decode().splitlines() if line.strip()]
    assert lines and all(b <= e for b, e, _ in lines)
    assert all(lines[k][0] >= lines[k - 1][1] for k in range(1, len(lines)))  # never overlapping
    text = " ".join(t for _, _, t in lines)
    assert wer(reference=UTT.text, hypothesis=text).rate <= 0.35, text


def test_a_web_page_posting_to_the_tcp_port_is_refused(server):
    with socket.create_connection(server["tcp"], timeout=30) as sock:
        sock.sendall(b"POST /load_model HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = sock.recv(4096)
    assert data.startswith(b"ERROR http_on_raw_port")


def test_dropped_connections_on_every_route_free_their_slots(server):
    from websockets.sync.client import connect

    for path in ("/asr", "/v1/listen?encoding=linear16&sample_rate=16000"):
        ws = connect(server["ws"] + path, open_timeout=10)
        ws.send(b"\x00\x00" * 4000)
        ws.close()  # gone mid-stream
    with socket.create_connection(server["tcp"], timeout=10) as sock:
        sock.sendall(b"\x00\x00" * 4000)  # and closed without finishing
    import json
    import urllib.request

    deadline = time.time() + 30
    while True:
        health = json.load(urllib.request.urlopen(server["http"] + "/health", timeout=10))
        if health["connections"] == 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert health["connections"] == 0
    messages = deepgram_stream(server["ws"], "unused", UTT.load_audio()[:16000])  # others still served
    assert type(messages[-1]).__name__ == "ListenV1Metadata"


def test_cli_compare_scores_the_running_server_beside_the_in_process_engine(server, tmp_path, capsys):
    import json

    import pandas as pd

    from asr_lab.cli import main

    systems = {"served": {"backend": "remote", "url": server["ws"] + "/v1/listen", "protocol": "deepgram"},
               "in-process": ENGINE}
    (tmp_path / "systems.json").write_text(json.dumps(systems))
    rc = main(["compare", "--dataset", str(Path(__file__).resolve().parent.parent / "datasets" / "mini"), "--limit", "2",
               "--config", str(tmp_path / "systems.json"), "--clock", "wall", "--out", str(tmp_path / "out")])
    assert rc == 0, capsys.readouterr().err
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("system")
    assert summary.loc["served", "failed"] == 0 and summary.loc["served", "wer"] <= 0.35
    assert summary.loc["served", "latency_count"] > 0 and summary.loc["in-process", "latency_count"] > 0
