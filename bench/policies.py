"""Policy benchmark: AlignAtt vs LocalAgreement (and the black-box rules) on the same weights.

    python bench/policies.py [--utterances 3] [--chunk 1.0] [--model-dir PATH.pt] [--json out.json]

Every policy runs on one loaded openai-whisper tiny.en (real weights; ``--model-dir`` to
point at a checkpoint) with greedy decoding, over LibriVox utterances from Debian's
pocketsphinx-testdata, streamed by :func:`asr_lab.replay` on the computation-unaware
clock (every policy gets the same chunks, so compute differences are the policies' own).
Per policy: total compute / audio (RTF), engine calls (``process_iter`` + ``finish``),
mean and p95 cost of one call, and for AlignAtt the tokens decoded per call; corpus WER
and the mean commit lag (emission time − emitted segment's end) as sanity figures.
Record/replay is off (every run computes). Figures from one shared 2-core machine vary
by up to ~2x between runs: read the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import asr_lab
from asr_lab.core.audio import load_audio
from asr_lab.metrics import ENGLISH_NORMALIZER, WERAccumulator, wer

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
POLICIES = {
    "local-agreement-2 (reference)": {"policy": "local-agreement"},
    "alignatt-25": {"policy": "alignatt", "frame_threshold": 25},
    "alignatt-10": {"policy": "alignatt", "frame_threshold": 10},
    "hold-2": {"policy": "hold-n", "hold_n": 2},
    "stable-1s": {"policy": "stable-prefix", "stable_delta_sec": 1.0},
}


def librivox(n: int) -> list[tuple[str, np.ndarray, str]]:
    lines = (LIBRIVOX / "transcription").read_text().splitlines()
    out = []
    for line in lines[:n]:
        uid = line.split("(")[-1].rstrip(")")
        text = line.split("</s>")[0].replace("<s>", "").strip()
        out.append((uid, load_audio(LIBRIVOX / f"{uid}.wav"), text))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=3)
    parser.add_argument("--chunk", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 keeps a shared machine's noise down)")
    parser.add_argument("--model-dir", default=None, help="an openai-whisper .pt checkpoint (default: tiny.en, converted)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    data = librivox(args.utterances)
    audio_sec = sum(len(a) for _, a, _ in data) / 16000
    base = {"backend": "openai-whisper", "model": "tiny.en", "lan": "en", "min_chunk_size": args.chunk}
    if args.model_dir:
        base["model_dir"] = args.model_dir
    procs, stats = {}, {}
    for name, fields in POLICIES.items():
        started = time.perf_counter()
        procs[name], _ = asr_lab.load_processor({**base, **fields})
        stats[name] = {"load": time.perf_counter() - started, "calls": [], "errors": WERAccumulator(), "lags": [],
                       "tokens": 0, "sessions": 0}
    # round robin over policies within each utterance, so that the shared machine's load swings spread evenly
    for _, audio, text in data:
        for name, proc in procs.items():
            st = stats[name]
            trace = asr_lab.replay(proc, audio, clock="unaware", chunk_sec=args.chunk, warmup_sec=1.0, separator="")
            trace.raise_for_error()
            st["calls"] += [s.compute_sec for s in trace.steps]
            st["errors"].add(wer(reference=ENGLISH_NORMALIZER(text), hypothesis=ENGLISH_NORMALIZER(trace.text)))
            st["lags"] += [e.emitted_at - e.end for e in trace.emissions]
            st["tokens"] += getattr(proc, "decoded_tokens", 0)
            st["sessions"] += getattr(proc, "calls", 0)
    rows = []
    for name, st in stats.items():
        calls = st["calls"]
        row = {
            "policy": name,
            "load_sec": round(st["load"], 2),
            "rtf": round(sum(calls) / audio_sec, 3),
            "calls": len(calls),
            "call_mean_sec": round(statistics.mean(calls), 3),
            "call_p95_sec": round(float(np.percentile(calls, 95)), 3),
            "wer": round(st["errors"].compute().rate, 3),
            "commit_lag_mean_sec": round(statistics.mean(st["lags"]), 2) if st["lags"] else None,
            "tokens_per_call": round(st["tokens"] / max(1, st["sessions"]), 1) if hasattr(procs[name], "decoder") else None,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    ref = rows[0]
    print(f"\n{len(data)} LibriVox utterances, {audio_sec:.1f} s of audio, chunk {args.chunk} s, tiny.en greedy, "
          f"{args.threads} torch thread(s), shared 2-core CPU")
    print(f"{'policy':32s} {'RTF':>6s} {'xLA2':>6s} {'calls':>6s} {'call mean':>10s} {'p95':>7s} {'WER':>6s} {'lag':>6s} {'tok/call':>8s}")
    for r in rows:
        print(f"{r['policy']:32s} {r['rtf']:6.3f} {r['rtf'] / ref['rtf']:6.2f} {r['calls']:6d} {r['call_mean_sec']:10.3f} "
              f"{r['call_p95_sec']:7.3f} {r['wer']:6.3f} {r['commit_lag_mean_sec'] or float('nan'):6.2f} {r['tokens_per_call'] or float('nan'):8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
