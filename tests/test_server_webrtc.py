"""The WebRTC transport: offers checked with clear errors, and real Opus audio from a real aiortc
peer (and a real headless Chromium's fake microphone) transcribed by pocketsphinx on loopback.

The end-to-end tests compare the transcript with the text the audio was made from (a dataset
reference or the sentence flite spoke), never with another run of the engine.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("aiortc")
uvicorn = pytest.importorskip("uvicorn")
from fastapi.testclient import TestClient  # noqa: E402

import asr_lab  # noqa: E402
from asr_lab.metrics import wer  # noqa: E402
from asr_lab.web.server import ServerSettings, create_app  # noqa: E402

MINI = asr_lab.load_dataset(Path(__file__).resolve().parent.parent / "datasets" / "mini")
CHROMIUM = "/usr/bin/chromium"
SENTENCE = "please call stella ask her to bring these things with her from the store"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offer_sdp(audio=True, channel=True) -> str:
    """A real SDP offer made by aiortc (with or without an audio track / a data channel)."""
    import asyncio

    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack

    async def make():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if channel:
            pc.createDataChannel("asr")
        if audio:
            pc.addTrack(AudioStreamTrack())  # aiortc's silence track: only the SDP is used here
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(make())


@pytest.fixture
def client():
    with TestClient(create_app(settings=ServerSettings()), base_url="http://127.0.0.1:8000") as c:
        yield c


def post(client, body):
    return client.post("/webrtc/offer", content=json.dumps(body), headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "body, says",
    [
        ([1, 2], "JSON object"),
        ({"type": "answer", "sdp": "v=0"}, "type='answer' is not allowed"),
        ({"type": "offer", "sdp": "hello"}, "sdp='hello' is not an SDP offer"),
        ({"type": "offer"}, "sdp=None"),
    ],
)
def test_a_body_that_is_not_an_offer_is_refused_naming_the_bad_value(client, body, says):
    r = post(client, body)
    assert r.status_code == 422 and r.json()["error"] == "bad_offer"
    assert says in r.json()["message"] and "RTCPeerConnection" in r.json()["message"]  # the value and the fix


def test_an_offer_without_a_microphone_track_or_a_data_channel_is_refused_with_the_fix(client):
    no_audio = post(client, {"type": "offer", "sdp": offer_sdp(audio=False)})
    assert no_audio.status_code == 422 and "no audio track" in no_audio.json()["message"] and "addTrack" in no_audio.json()["message"]
    no_channel = post(client, {"type": "offer", "sdp": offer_sdp(channel=False)})
    assert no_channel.status_code == 422 and "createDataChannel" in no_channel.json()["message"]


def test_a_good_offer_without_a_loaded_model_says_to_load_one(client):
    r = post(client, {"type": "offer", "sdp": offer_sdp()})
    assert r.status_code == 409 and "POST /load_model" in r.json()["message"]
    assert client.app.state.asr.connections == 0


def test_the_offer_route_keeps_the_access_rules(client):
    foreign = client.post("/webrtc/offer", content=json.dumps({"type": "offer", "sdp": offer_sdp()}),
                          headers={"content-type": "application/json", "origin": "http://evil.test"})
    assert foreign.status_code == 403 and foreign.json()["error"] == "origin_not_allowed"
    plain = client.post("/webrtc/offer", content="v=0", headers={"content-type": "text/plain"})
    assert plain.status_code == 415


@pytest.fixture(scope="module")
def live_server(request):
    """uvicorn on loopback with pocketsphinx, engines in worker processes as `asr-lab serve` runs them."""
    pytest.importorskip("pocketsphinx")
    port = free_port()
    app = create_app({"backend": "pocketsphinx", "min_chunk_size": 0.25}, settings=ServerSettings(engine_processes=1))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    yield f"127.0.0.1:{port}", app.state.asr
    srv.should_exit = True
    thread.join(timeout=10)


def wait_for_no_streams(state, timeout=15.0):
    deadline = time.time() + timeout
    while state.connections and time.time() < deadline:
        time.sleep(0.1)
    return state.connections


@pytest.mark.slow
def test_an_aiortc_peer_streams_opus_and_gets_the_transcript_on_the_data_channel(live_server):
    from asr_lab.web.clients import stream_webrtc

    address, state = live_server
    utt = MINI["slt-000"]
    audio = utt.load_audio()
    trace = stream_webrtc(address, audio)
    assert trace.meta["transport"] == "webrtc" and trace.meta["backend"] == "pocketsphinx"
    # the server heard exactly the audio sent (resampled 48 kHz -> 16 kHz once, cut at the announced length)
    assert trace.meta["server_audio_sec"] == pytest.approx(len(audio) / 16000, abs=0.001)
    assert trace.meta["dropped_chunks"] == 0
    assert wer(reference=utt.text, hypothesis=trace.text).rate <= 0.35, (utt.text, trace.text)
    scores = asr_lab.score(trace, utt)  # a client-timed trace scores like any other
    assert scores.wer.rate == wer(reference=utt.text, hypothesis=trace.text).rate
    assert all(e.emitted_at >= 0 for e in trace.emissions)
    assert wait_for_no_streams(state) == 0, "the stream's slot must be freed when the peer leaves"


@pytest.mark.slow
def test_the_same_audio_over_websocket_and_webrtc_gives_comparable_transcripts(live_server):
    from asr_lab.web.clients import stream_webrtc, stream_websocket

    address, _ = live_server
    utt = MINI["rms-001"]
    audio = utt.load_audio()
    pcm, opus = stream_websocket(address, audio), stream_webrtc(address, audio)
    for trace in (pcm, opus):
        assert wer(reference=utt.text, hypothesis=trace.text).rate <= 0.35, (trace.meta["transport"], trace.text)
    assert pcm.meta["transport"] == "websocket" and opus.meta["transport"] == "webrtc"
    assert pcm.meta["server_audio_sec"] == pytest.approx(opus.meta["server_audio_sec"], abs=0.001)


@pytest.fixture
def speech_wav(tmp_path):
    """The fake microphone's input: a sentence spoken by flite (voice rms), with silence around it."""
    from asr_lab.core.audio import save_audio
    from asr_lab.data.synth import synthesize

    speech = synthesize(SENTENCE, voice="rms")
    audio = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(16000, np.float32)])
    return save_audio(tmp_path / "microphone.wav", audio), len(audio) / 16000


@pytest.mark.slow
@pytest.mark.browser
def test_chromium_streams_its_microphone_over_webrtc_and_shows_the_transcript(live_server, speech_wav):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found: install it with `apt-get install chromium`")
    from playwright.sync_api import sync_playwright

    address, state = live_server
    wav, duration = speech_wav
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, timeout=60_000,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}%noloop"],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"http://{address}/")
            page.wait_for_function("document.getElementById('backend').textContent === 'pocketsphinx'")
            page.select_option("#transport", "webrtc")
            page.click("#start")
            page.wait_for_function("document.getElementById('status').dataset.transport === 'webrtc'", timeout=30_000)
            started = time.monotonic()
            time.sleep(max(0.0, started + duration + 0.5 - time.monotonic()))
            page.click("#stop")
            page.wait_for_function("document.getElementById('status').dataset.status === 'done'", timeout=30_000)
            text = page.inner_text("#committed")
            assert page.inner_text("#error") == ""
        finally:
            browser.close()
    assert wer(reference=SENTENCE, hypothesis=text).rate <= 0.35, text
    assert wait_for_no_streams(state) == 0


@pytest.mark.slow
def test_a_peer_that_drops_mid_stream_frees_its_slot_and_the_next_stream_works(live_server):
    import asyncio

    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack

    from asr_lab.web.clients import _post_offer, stream_webrtc

    address, state = live_server

    async def drop_after(sec):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        channel = pc.createDataChannel("asr")
        seen = []
        channel.on("message", lambda m: seen.append(json.loads(m)["type"]))
        pc.addTrack(AudioStreamTrack())  # aiortc's silence: real Opus packets, no speech
        await pc.setLocalDescription(await pc.createOffer())
        answer = await asyncio.to_thread(_post_offer, address, {"type": "offer", "sdp": pc.localDescription.sdp}, None)
        await pc.setRemoteDescription(RTCSessionDescription(**answer))
        await asyncio.sleep(sec)
        await pc.close()  # gone without a stop
        return seen

    seen = asyncio.run(drop_after(2.0))
    assert "ready" in seen and "done" not in seen
    assert wait_for_no_streams(state) == 0, "a peer that left must not hold a stream slot"
    utt = MINI["awb-002"]
    trace = stream_webrtc(address, utt.load_audio())
    assert wer(reference=utt.text, hypothesis=trace.text).rate <= 0.35, trace.text
