"""How well a cost profile predicts: profile latencies against wall-clock latencies, one machine, one run.

    python bench/profile.py [--config configs/baselines.json] [--dataset datasets/librivox]
                            [--profile configs/profiles/NAME.json | --calibrate --machine NAME] [--limit N] [--json F]

Each system of ``--config`` runs over ``--dataset`` three ways in this process, one after the
other: on the virtual clock under the cost profile (``compute="profile"``: each step charged
its modelled cost), on the virtual clock under ``compute="cpu"`` (measured CPU time), and on
the wall clock (real time, the truth a live user would see). Engines run with one thread in
all three (the profile is calibrated so), so the wall run measures the same engine. Printed
per system: latency p50 / p90, WER and RTF of each, and profile / wall ratios. ``--calibrate``
first fits a fresh profile here (``asr-lab calibrate``) and uses it; otherwise ``--profile``.

The wall clock's numbers are only the truth on a quiet machine: on a loaded one its latencies
contain the wait for a core, which neither the profile nor CPU time does. Run it when nothing
else runs (``uptime`` load well below the number of cores), and give ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asr_lab  # noqa: E402
from asr_lab.compare import compare  # noqa: E402


def _single_threaded(config: dict) -> dict:
    """The config with one engine thread (as under CPU or profile accounting), for the wall run."""
    if config.get("backend") == "faster-whisper" and not config.get("cpu_threads"):
        return {**config, "cpu_threads": 1}
    return config


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/baselines.json")
    p.add_argument("--dataset", default="datasets/librivox")
    p.add_argument("--profile", default=None, help="cost profile to test (default: configs/profiles/<the only one>)")
    p.add_argument("--calibrate", action="store_true", help="fit a fresh profile on this machine first")
    p.add_argument("--machine", default=None, help="machine name for --calibrate")
    p.add_argument("--limit", type=int, default=None, help="first N utterances only")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args(argv)

    systems = json.loads(Path(args.config).read_text())
    utts = list(asr_lab.load_dataset(args.dataset))[: args.limit] if args.limit else list(asr_lab.load_dataset(args.dataset))
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    if args.calibrate:
        from asr_lab.replay.calibrate import calibrate

        out = Path(args.profile or f"runs/bench-profile/{args.machine or 'this-machine'}.json")
        profile = calibrate(systems, utts, machine=args.machine, out=out, progress=False)
        profile_path = str(out)
    else:
        profile_path = args.profile or str(next(iter(sorted(Path("configs/profiles").glob("*.json")))))
        profile = asr_lab.replay.load_profile(profile_path)
    runs = {
        "profile": compare(systems, utts, compute="profile", profile=profile, progress=False),
        "cpu": compare(systems, utts, compute="cpu", progress=False),
        "wall": compare({k: _single_threaded(v) for k, v in systems.items()}, utts, clock="wall", progress=False),
    }
    tables = {k: r.table() for k, r in runs.items()}
    figures = {"profile": profile_path, "profile_digest": profile.digest, "dataset": args.dataset,
               "utterances": len(utts), "audio_sec": round(sum(u.duration or 0 for u in utts), 1),
               "load_before": load_before, "load_after": os.getloadavg(), "seconds": round(time.perf_counter() - t0, 1),
               "cpu_model": runs["wall"].environment.cpu_model if runs["wall"].environment else None, "systems": {}}
    print(f"# {args.dataset}: {len(utts)} utterances, {figures['audio_sec']} s; profile {profile.name!r} ({profile.digest}); "
          f"load {load_before[0]:.2f} before, {figures['load_after'][0]:.2f} after")
    print(f"{'system':22} {'p50 prof':>8} {'p50 cpu':>8} {'p50 wall':>8} {'prof/wall':>9} {'p90 prof/wall':>13} "
          f"{'WER prof':>8} {'WER wall':>8} {'RTF prof':>8} {'RTF wall':>8}")
    for system in systems:
        row = {k: tables[k].loc[system] for k in runs}
        f = {f"{m}_{k}": float(row[k][m]) for k in runs for m in ("latency_p50", "latency_p90", "wer", "rtf")}
        f["p50_ratio"] = f["latency_p50_profile"] / f["latency_p50_wall"]
        f["p90_ratio"] = f["latency_p90_profile"] / f["latency_p90_wall"]
        figures["systems"][system] = f
        print(f"{system:22} {f['latency_p50_profile']:8.3f} {f['latency_p50_cpu']:8.3f} {f['latency_p50_wall']:8.3f} "
              f"{f['p50_ratio']:9.3f} {f['p90_ratio']:13.3f} {f['wer_profile']:8.3f} {f['wer_wall']:8.3f} "
              f"{f['rtf_profile']:8.3f} {f['rtf_wall']:8.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
