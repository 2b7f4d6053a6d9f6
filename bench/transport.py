"""What the transport costs: the same audio through the same server and engine, as raw PCM over
the WebSocket and as Opus over WebRTC.

    python bench/transport.py [--dataset datasets/librivox] [--limit 5] [--backend pocketsphinx] [--json out.json]

An asr_lab server (uvicorn on loopback, engines in one worker process as ``asr-lab serve``
runs them) loads the engine once. Each utterance is sent by :func:`asr_lab.web.clients.stream_websocket`
(16 kHz int16 in 20 ms frames) and by :func:`asr_lab.web.clients.stream_webrtc` (20 ms frames
encoded by aiortc's Opus encoder at 48 kHz, decoded and resampled once by the server), both at
real-time pace, the order alternating per utterance. Each run's events are timed on the client
(seconds since its first audio was sent) into a Trace scored by :func:`asr_lab.score` against
the dataset's reference text and word timings. Per transport: corpus WER (summed errors /
summed reference words), word latency (pooled words: mean, p50, p90), first-word latency and
finish delay (mean over utterances), and the median of (client arrival − server stamp) per
segment: the delay the transport adds on top of the engine's own. One run on a loaded
2-core machine: read the figures as ratios.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=str(ROOT / "datasets" / "librivox"))
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--backend", default="pocketsphinx")
    ap.add_argument("--json", default=None, help="write the per-utterance rows and the summary here")
    args = ap.parse_args(argv)

    import uvicorn

    import asr_lab
    from asr_lab.metrics.latency import LatencyAccumulator
    from asr_lab.metrics.wer import WERAccumulator
    from asr_lab.web.clients import stream_webrtc, stream_websocket
    from asr_lab.web.server import ServerSettings, create_app

    dataset = asr_lab.load_dataset(args.dataset)
    utterances = list(dataset)[: args.limit]
    port = free_port()
    app = create_app({"backend": args.backend, "min_chunk_size": 0.25}, settings=ServerSettings(engine_processes=1))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    address = f"127.0.0.1:{port}"
    clients = {"websocket (PCM)": stream_websocket, "webrtc (Opus)": stream_webrtc}
    wers = {name: WERAccumulator() for name in clients}
    lats = {name: LatencyAccumulator() for name in clients}
    added = {name: [] for name in clients}
    rows = []
    try:
        for k, utt in enumerate(utterances):
            audio = utt.load_audio()
            order = list(clients) if k % 2 == 0 else list(reversed(clients))
            for name in order:
                trace = clients[name](address, audio)
                scores = asr_lab.score(trace, utt)
                wers[name].add(scores.wer)
                lats[name].add(scores.latency)
                added[name] += [e.emitted_at - s for e, s in zip(trace.emissions, trace.meta["server_emitted_at"]) if s is not None]
                rows.append({"utterance": utt.id, "transport": name, "wer": scores.wer.rate, "text": trace.text,
                             "latency_p50": scores.latency.latency.p50, "server_audio_sec": trace.meta["server_audio_sec"]})
                print(f"{utt.id:>16} {name:<16} WER {scores.wer.rate:.3f}  p50 {scores.latency.latency.p50:.2f} s", flush=True)
    finally:
        server.should_exit = True
    summary = {}
    print(f"\n{len(utterances)} utterances of {args.dataset}, {args.backend}, one run")
    print(f"{'transport':<16} {'WER':>6} {'lat mean':>9} {'p50':>6} {'p90':>6} {'first word':>11} {'finish':>7} {'added':>7}")
    for name in clients:
        w, lat = wers[name].compute(), lats[name].compute()
        summary[name] = {"wer": w.rate, "words": w.reference_length, "latency_mean": lat.latency.mean, "latency_p50": lat.latency.p50,
                         "latency_p90": lat.latency.p90, "first_word_latency": lat.first_word_latency, "finish_delay": lat.finish_delay,
                         "added_median": statistics.median(added[name]) if added[name] else None}
        s = summary[name]
        print(f"{name:<16} {s['wer']:>6.3f} {s['latency_mean']:>8.2f}s {s['latency_p50']:>5.2f}s {s['latency_p90']:>5.2f}s "
              f"{s['first_word_latency']:>10.2f}s {s['finish_delay']:>6.2f}s {s['added_median']:>6.3f}s")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    return summary


if __name__ == "__main__":
    main()
