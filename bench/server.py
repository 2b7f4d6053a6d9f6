"""Server benchmark: how many concurrent real-time streams pocketsphinx sustains, and the lag the server adds.

    python bench/server.py [--streams 1,2,4,6,8] [--seconds 20]

The server runs in its own process (``asr-lab serve``), loopback only. Each client is a
thread sending int16 chunks of 100 ms at real-time pace from the same stretch of
``datasets/mini`` long-form speech, then reads every event. For each number of streams:
the median and worst segment lag (``emitted_at − end`` as the server stamps it), the time
from the client's stop to ``done``, and dropped chunks. "Sustained" means no drops and the
worst lag within 2 s of the single-stream baseline. The in-process figure is the same audio
through the same engine on ``asr_lab.replay`` with a real-time LiveAudio source and no server.
Figures come from one run on this noisy 2-core machine: read them as ratios.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from websockets.sync.client import connect

import asr_lab
from asr_lab.replay import LiveAudio

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 0.1


def speech(seconds: float) -> np.ndarray:
    audio = asr_lab.load_dataset(ROOT / "datasets" / "mini")["long-a"].load_audio()
    return audio[: int(seconds * 16000)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_process(audio: np.ndarray) -> list[float]:
    proc, meta = asr_lab.load_processor({"backend": "pocketsphinx", "min_chunk_size": 0.25})
    live = LiveAudio()

    def feed():
        t0 = time.perf_counter()
        step = int(CHUNK * 16000)
        for k, i in enumerate(range(0, len(audio), step)):
            live.push(audio[i : i + step])
            time.sleep(max(0.0, t0 + (k + 1) * CHUNK - time.perf_counter()))
        live.close()

    threading.Thread(target=feed, daemon=True).start()
    trace = asr_lab.replay(proc, live, clock="wall", warmup_sec=0)
    return [e.latency for e in trace.emissions]


def client(address: str, audio: np.ndarray, out: dict, key: int) -> None:
    try:
        _client(address, audio, out, key)
    except Exception as exc:  # report, do not lose the other streams' figures
        out[key] = {"events": [{"type": "error", "message": f"client: {type(exc).__name__}: {exc}"}], "done_after_stop": float("nan")}


def _client(address: str, audio: np.ndarray, out: dict, key: int) -> None:
    events, pcm, step = [], (np.clip(audio, -1, 1) * 32767).astype("<i2"), int(CHUNK * 16000)
    with connect(f"ws://{address}/asr", open_timeout=20, close_timeout=5) as ws:
        ws.send(json.dumps({"type": "start", "format": "int16", "sample_rate": 16000}))
        events.append(json.loads(ws.recv(timeout=20)))
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm), step)):
            ws.send(pcm[i : i + step].tobytes())
            time.sleep(max(0.0, t0 + (k + 1) * CHUNK - time.perf_counter()))
        ws.send(json.dumps({"type": "stop"}))
        stopped = time.perf_counter()
        while events[-1]["type"] not in ("done", "error"):
            events.append(json.loads(ws.recv(timeout=120)))
    out[key] = {"events": events, "done_after_stop": time.perf_counter() - stopped}


def run(n: int, address: str, audio: np.ndarray) -> dict:
    out: dict = {}
    threads = [threading.Thread(target=client, args=(address, audio, out, k)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lags = [e["lag"] for r in out.values() for e in r["events"] if e["type"] == "segment"]
    dropped = sum(r["events"][-1].get("dropped_chunks", 0) for r in out.values())
    errors = [r["events"][-1] for r in out.values() if r["events"][-1]["type"] == "error"]
    for e in errors[:1]:
        print(f"  ({n} streams) error: {e.get('message')}", file=sys.stderr)
    return {
        "streams": n,
        "lag_median": statistics.median(lags) if lags else float("nan"),
        "lag_max": max(lags) if lags else float("nan"),
        "done_after_stop_max": max(r["done_after_stop"] for r in out.values()),
        "dropped": dropped,
        "errors": len(errors),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="1,2,4,6,8")
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    audio = speech(args.seconds)
    base = in_process(audio)
    print(f"in-process replay, real-time source, {len(audio) / 16000:.0f} s: lag median {statistics.median(base):.3f} s, max {max(base):.3f} s")
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"asr_lab_bench_server_{port}.log"
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "asr_lab.cli", "serve", "--port", str(port), "--backend", "pocketsphinx",
         "--set", "min_chunk_size=0.25"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://{address}/health", timeout=1)
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("the server did not start within 60 s")
                time.sleep(0.2)
        print("| streams | lag median (s) | lag max (s) | added median lag vs in-process (s) | done after stop (s) | dropped | sustained |")
        print("|---|---|---|---|---|---|---|")
        single = None
        for n in [int(x) for x in args.streams.split(",")]:
            r = run(n, address, audio)
            single = single if single is not None else r["lag_max"]
            sustained = r["dropped"] == 0 and r["errors"] == 0 and r["lag_max"] <= single + 2.0
            print(f"| {n} | {r['lag_median']:.3f} | {r['lag_max']:.3f} | {r['lag_median'] - statistics.median(base):+.3f} | "
                  f"{r['done_after_stop_max']:.2f} | {r['dropped']} | {'yes' if sustained else 'no'} |", flush=True)
            if server.poll() is not None:
                print(f"the server process died (exit {server.returncode}); its log: {log_path}", file=sys.stderr)
                break
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


if __name__ == "__main__":
    main()
