"""Replay benchmark: does the virtual clock give the wall clock's latencies, and what does the harness cost?

    python bench/replay.py [--backend pocketsphinx] [--audio FILE] [--chunk-sec 0.25]

On one real engine and the same audio it replays once on the wall clock (real time) and
once on the virtual clock, and reports
* latency agreement: per-emission latency (emitted_at − end) median on each clock, and the
  median of the paired differences (target <= 50 ms);
* speed-up: wall seconds of the wall-clock run / wall seconds of the virtual run;
* harness overhead: (virtual run's wall time − engine compute) / engine compute (target <= 5 %).
Figures come from one run on a noisy 2-core machine: read them as ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import asr_lab


def default_audio() -> Path:
    mini = Path(__file__).resolve().parent.parent / "datasets" / "mini"
    if (mini / "manifest.jsonl").exists():
        ds = asr_lab.load_dataset(mini)
        longest = max(ds, key=lambda u: u.duration)
        return Path(longest.audio_path)
    from asr_lab.testing import sample_speech

    return sample_speech().path


def run(backend: str, audio_path: Path, chunk_sec: float) -> dict:
    audio = asr_lab.load_audio(audio_path)
    processor, meta = asr_lab.load_processor({"backend": backend})
    traces = {}
    for clock in ("wall", "virtual"):
        t0 = time.perf_counter()
        traces[clock] = asr_lab.replay(processor, audio, clock=clock, chunk_sec=chunk_sec, separator=meta["separator"])
        traces[clock].meta["measured_wall_sec"] = time.perf_counter() - t0
    wall, virt = traces["wall"], traces["virtual"]
    lw = [e.latency for e in wall.emissions]
    lv = [e.latency for e in virt.emissions]
    paired = [a - b for a, b in zip(lw, lv)] if len(lw) == len(lv) else []
    compute = virt.compute_sec
    overhead = (virt.meta["wall_sec"] - compute) / compute if compute > 0 else float("nan")
    return {
        "backend": backend,
        "audio": str(audio_path),
        "audio_sec": round(len(audio) / 16000, 2),
        "chunk_sec": chunk_sec,
        "emissions_wall": len(lw),
        "emissions_virtual": len(lv),
        "same_text": wall.text == virt.text,
        "latency_median_wall": statistics.median(lw) if lw else float("nan"),
        "latency_median_virtual": statistics.median(lv) if lv else float("nan"),
        "paired_median_abs_diff": statistics.median(np.abs(paired)) if paired else float("nan"),
        "speedup": wall.meta["measured_wall_sec"] / virt.meta["measured_wall_sec"],
        "engine_compute_sec": compute,
        "harness_overhead": overhead,
        "rtf": virt.rtf,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="pocketsphinx")
    ap.add_argument("--audio", type=Path, default=None)
    ap.add_argument("--chunk-sec", type=float, default=0.25)
    args = ap.parse_args()
    r = run(args.backend, args.audio or default_audio(), args.chunk_sec)
    print(f"{r['backend']} on {r['audio']} ({r['audio_sec']} s), {r['chunk_sec']} s chunks")
    print(f"  emissions: wall {r['emissions_wall']}, virtual {r['emissions_virtual']}, same text: {r['same_text']}")
    print(f"  latency median: wall {r['latency_median_wall']:.3f} s, virtual {r['latency_median_virtual']:.3f} s; "
          f"paired median |diff| {1000 * r['paired_median_abs_diff']:.1f} ms (target <= 50 ms)")
    print(f"  virtual speed-up over wall: {r['speedup']:.1f}x; engine RTF {r['rtf']:.3f}")
    print(f"  harness overhead: {100 * r['harness_overhead']:.2f} % of engine compute (target <= 5 %)")


if __name__ == "__main__":
    main()
