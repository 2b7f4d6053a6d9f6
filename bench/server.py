"""Server benchmark: how many concurrent real-time streams pocketsphinx sustains, and the lag the server adds.

    python bench/server.py [--streams 1,2,4,6,8] [--seconds 20] [--fair 3] [--idle 16] [--engine-processes N]

The server runs in its own process (``asr-lab serve``), loopback only. Each client is a
thread sending int16 chunks of 100 ms at real-time pace from the same stretch of
``datasets/mini`` long-form speech while a second thread reads events as they arrive. For
each number of streams: the segment lag as the server stamps it (``emitted_at − end``, when
the engine returned the text), the lag as the client received it (arrival on the client's
clock, from its first chunk, minus ``end``: this one includes the event loop and the
socket), the time from the client's stop to ``done``, and dropped chunks. The added lag
compares the received lag with the in-process figure: the same audio through the same
engine on ``asr_lab.replay`` with a real-time LiveAudio source and no server. "Sustained"
means no drops, no errors, no stream refused, and a worst received lag within 2 s of the
single-stream run's. The server bounds each stream's lag by ``--max-pending-sec`` (10 s): beyond
it audio is dropped and reported (``overload`` events), and while a stream sheds, new streams
are refused (``overloaded``); the table counts both. Print the machine's load average beside
the figures (``uptime``): capacity is only meaningful with the load it was measured at.

``--fair N``: one client sends the whole stretch as fast as the socket takes it while N
clients send in real time; the row gives the real-time clients' received lag, the slowest
``GET /health`` answer during the run, and the fast sender's dropped chunks (its backlog is
capped by ``--max-pending-sec``). ``--idle N``: the server's memory (its process and its
engine processes, RSS) with no connection, with N connections that sent ``start`` and
nothing else, and after they closed. ``--engine-processes`` is passed to the server (0: the
engines run in threads of the server process, as they did before engine processes existed).
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
            time.sleep(max(0.0, t0 + (k + 1) * CHUNK - time.perf_counter()))
            live.push(audio[i : i + step])
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
        # like a microphone: chunk k holds stream time [k, k + 1) x CHUNK and is sent once it is
        # "recorded", at t0 + (k + 1) x CHUNK, so the client's clock and stream time share t0
        t0 = time.perf_counter()

        def read() -> None:  # events as they arrive, stamped with the client's own clock
            while events[-1]["type"] not in ("done", "error"):
                event = json.loads(ws.recv(timeout=120))
                event["received_at"] = time.perf_counter() - t0
                events.append(event)

        reader = threading.Thread(target=read)
        reader.start()
        for k, i in enumerate(range(0, len(pcm), step)):
            time.sleep(max(0.0, t0 + (k + 1) * CHUNK - time.perf_counter()))
            ws.send(pcm[i : i + step].tobytes())
        ws.send(json.dumps({"type": "stop"}))
        stopped = time.perf_counter()
        reader.join()
    out[key] = {"events": events, "done_after_stop": time.perf_counter() - stopped}


def run(n: int, address: str, audio: np.ndarray) -> dict:
    out: dict = {}
    threads = [threading.Thread(target=client, args=(address, audio, out, k)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    segments = [e for r in out.values() for e in r["events"] if e["type"] == "segment"]
    lags = [e["lag"] for e in segments]
    received = [e["received_at"] - e["end"] for e in segments]
    dropped = sum(r["events"][-1].get("dropped_chunks", 0) for r in out.values())
    dropped_sec = sum(r["events"][-1].get("dropped_sec", 0.0) for r in out.values())
    overloads = sum(1 for r in out.values() for e in r["events"] if e["type"] == "overload")
    refused = [r["events"][-1] for r in out.values() if r["events"][-1].get("code") == "overloaded"]
    errors = [r["events"][-1] for r in out.values()
              if r["events"][-1]["type"] == "error" and r["events"][-1].get("code") != "overloaded"]
    for e in errors[:1]:
        print(f"  ({n} streams) error: {e.get('message')}", file=sys.stderr)
    nan = float("nan")
    return {
        "streams": n,
        "lag_median": statistics.median(lags) if lags else nan,
        "lag_max": max(lags) if lags else nan,
        "received_median": statistics.median(received) if received else nan,
        "received_max": max(received) if received else nan,
        "done_after_stop_max": max(r["done_after_stop"] for r in out.values()),
        "dropped": dropped,
        "dropped_sec": dropped_sec,
        "overload_events": overloads,
        "refused": len(refused),
        "errors": len(errors),
    }


def fast_sender(address: str, audio: np.ndarray, out: dict) -> None:
    """Send everything at once (100 ms frames, no pacing), then stop; keep the final event."""
    try:
        pcm, step = (np.clip(audio, -1, 1) * 32767).astype("<i2"), int(CHUNK * 16000)
        with connect(f"ws://{address}/asr", open_timeout=20, close_timeout=5) as ws:
            ws.send(json.dumps({"type": "start", "format": "int16", "sample_rate": 16000}))
            json.loads(ws.recv(timeout=20))
            for i in range(0, len(pcm), step):
                ws.send(pcm[i : i + step].tobytes())
            ws.send(json.dumps({"type": "stop"}))
            while True:
                event = json.loads(ws.recv(timeout=300))
                if event["type"] in ("done", "error"):
                    out["fast"] = event
                    return
    except Exception as exc:
        out["fast"] = {"type": "error", "message": f"fast sender: {type(exc).__name__}: {exc}"}


def health_poller(address: str, stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            urllib.request.urlopen(f"http://{address}/health", timeout=120).read()
        except OSError:
            pass
        out.append(time.perf_counter() - t0)
        stop.wait(0.25)


def fairness(n: int, address: str, audio: np.ndarray) -> dict:
    out: dict = {}
    health: list = []
    stop = threading.Event()
    poller = threading.Thread(target=health_poller, args=(address, stop, health))
    poller.start()
    fast = threading.Thread(target=fast_sender, args=(address, audio, out))
    fast.start()
    r = run(n, address, audio)
    fast.join()
    stop.set()
    poller.join()
    r["health_max"] = max(health) if health else float("nan")
    r["fast"] = out.get("fast", {})
    return r


def server_rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def idle_memory(n: int, address: str, pid: int) -> tuple[float, float, float]:
    before = server_rss_mb(pid)
    sockets = []
    for _ in range(n):
        ws = connect(f"ws://{address}/asr", open_timeout=20, close_timeout=5)
        ws.send(json.dumps({"type": "start", "format": "int16", "sample_rate": 16000}))
        json.loads(ws.recv(timeout=60))
        sockets.append(ws)
    time.sleep(1.0)
    held = server_rss_mb(pid)
    for ws in sockets:
        ws.close()
    time.sleep(3.0)
    return before, held, server_rss_mb(pid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="1,2,4,6,8", help="stream counts for the scaling table ('' skips it)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fair", type=int, default=0, help="real-time clients beside one fast sender (0 skips the row)")
    ap.add_argument("--idle", type=int, default=0, help="idle connections whose memory to measure (0 skips)")
    ap.add_argument("--engine-processes", type=int, default=None, help="passed to asr-lab serve (default: its own)")
    args = ap.parse_args()
    audio = speech(args.seconds)
    if args.streams:
        base = in_process(audio)
        print(f"in-process replay, real-time source, {len(audio) / 16000:.0f} s: lag median {statistics.median(base):.3f} s, max {max(base):.3f} s")
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"asr_lab_bench_server_{port}.log"
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "asr_lab.cli", "serve", "--port", str(port), "--backend", "pocketsphinx",
         "--set", "min_chunk_size=0.25", "--max-connections", str(max(16, args.idle + 1, args.fair + 2)),
         *([] if args.engine_processes is None else ["--engine-processes", str(args.engine_processes)])],
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
        import os

        print(f"# engine processes: {args.engine_processes if args.engine_processes is not None else 'default'}; "
              f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if args.fair:
            r = fairness(args.fair, address, audio)
            fast = r["fast"]
            print("| one fast sender + N real-time | received lag median (s) | received lag max (s) | slowest /health (s) | "
                  "real-time dropped | real-time errors | fast sender: end, dropped chunks |")
            print("|---|---|---|---|---|---|---|")
            print(f"| 1 + {args.fair} | {r['received_median']:.3f} | {r['received_max']:.3f} | {r['health_max']:.3f} | {r['dropped']} | "
                  f"{r['errors']} | {fast.get('type')}, {fast.get('dropped_chunks', fast.get('message', ''))} |", flush=True)
        if args.idle:
            before, held, after = idle_memory(args.idle, address, server.pid)
            print(f"| idle connections | server RSS before (MB) | with {args.idle} idle (MB) | after they closed (MB) |")
            print("|---|---|---|---|")
            print(f"| {args.idle} | {before:.0f} | {held:.0f} | {after:.0f} |", flush=True)
        if args.streams:
            print("| streams | lag median (s) | lag max (s) | received lag median (s) | received lag max (s) | "
                  "added median lag vs in-process (s) | done after stop (s) | dropped (chunks, s) | overload events | "
                  "refused (overloaded) | sustained |")
            print("|---|---|---|---|---|---|---|---|---|---|---|")
        single = None
        for n in [int(x) for x in args.streams.split(",") if x.strip()]:
            r = run(n, address, audio)
            single = single if single is not None else r["received_max"]
            sustained = r["dropped"] == 0 and r["errors"] == 0 and r["refused"] == 0 and r["received_max"] <= single + 2.0
            print(f"| {n} | {r['lag_median']:.3f} | {r['lag_max']:.3f} | {r['received_median']:.3f} | {r['received_max']:.3f} | "
                  f"{r['received_median'] - statistics.median(base):+.3f} | {r['done_after_stop_max']:.2f} | "
                  f"{r['dropped']}, {r['dropped_sec']:.1f} | {r['overload_events']} | {r['refused']} | "
                  f"{'yes' if sustained else 'no'} |", flush=True)
            if server.poll() is not None:
                print(f"the server process died (exit {server.returncode}); its log: {log_path}", file=sys.stderr)
                break
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


if __name__ == "__main__":
    main()
