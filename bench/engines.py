"""Engine benchmark: load time, real-time factor, per-call time per chunk size, and WER, per backend.

    python bench/engines.py [--backends pocketsphinx pocketsphinx-la] [--chunks 0.1 0.25 0.5]
                            [--per-voice 2] [--json results.json]

Speech is made here with flite (sentences below, voices slt, rms, awb, kal16), each
utterance streamed on its own: ``init()``, ``insert_audio_chunk`` + ``process_iter()`` (+
``partial()`` when the processor has it) per chunk, ``finish()``. Every call is timed;
RTF = all processing time / audio duration, per-call figures are over the
``insert_audio_chunk`` + ``process_iter`` calls (where the work happens). WER is corpus
WER (summed errors / summed words, asr_lab's English normaliser).

Backends are rows of :data:`BACKENDS` (a name and an asr_lab config): add a row to
measure another engine (e.g. a faster-whisper config with a local ``model_dir``).
Figures are from one run on a shared 2-core machine: read them as orders of magnitude.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any, Callable, Optional

import numpy as np

SR = 16000
VOICES = ("slt", "rms", "awb", "kal16")
SENTENCES = (
    "The library will stay open late during the exam week.",
    "My cousin sent me a postcard from the mountains.",
    "We painted the fence before the summer rain came.",
    "The driver stopped the bus to let the old man cross.",
    "A cup of hot tea helps me relax in the evening.",
    "The students planted trees along the school road.",
    "He found his wallet under the seat of the car.",
    "The weather report says it will be windy tomorrow.",
)
CHUNKS_SEC = (0.1, 0.25, 0.5)

BACKENDS: dict[str, dict[str, Any]] = {
    "pocketsphinx": {"backend": "pocketsphinx"},
    "pocketsphinx-la": {"backend": "pocketsphinx-la"},
}
"""Name shown in the table -> config for :func:`asr_lab.load_processor`."""


def speech(per_voice: int = 2) -> list[tuple[str, str, np.ndarray]]:
    """``(voice, text, audio)``: ``per_voice`` sentences for each voice, each sentence used once if possible."""
    from asr_lab.data.synth import synthesize

    items = []
    for k, voice in enumerate(VOICES):
        for j in range(per_voice):
            text = SENTENCES[(k * per_voice + j) % len(SENTENCES)]
            items.append((voice, text, synthesize(text, voice)))
    return items


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def stream_timed(processor: Any, audio: np.ndarray, chunk_sec: float) -> tuple[str, dict[str, list[float]]]:
    """Stream one utterance through ``processor``; return its text and the time of every call."""
    has_partial = callable(getattr(processor, "partial", None))
    times: dict[str, list[float]] = {"init": [], "step": [], "partial": [], "finish": []}
    step = max(1, int(round(chunk_sec * SR)))
    texts = []
    t = time.perf_counter()
    processor.init(0.0)
    times["init"].append(time.perf_counter() - t)
    for i in range(0, len(audio), step):
        t = time.perf_counter()
        processor.insert_audio_chunk(audio[i : i + step])
        out = processor.process_iter()
        times["step"].append(time.perf_counter() - t)
        if out is not None:
            texts.append(out[2])
        if has_partial:
            t = time.perf_counter()
            processor.partial()
            times["partial"].append(time.perf_counter() - t)
    t = time.perf_counter()
    out = processor.finish()
    times["finish"].append(time.perf_counter() - t)
    if out is not None:
        texts.append(out[2])
    return " ".join(texts), times


def bench_backend(
    config: dict[str, Any],
    items: list[tuple[str, str, np.ndarray]],
    chunks_sec: tuple[float, ...] = CHUNKS_SEC,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Load ``config`` once (timed), then stream every utterance at every chunk size."""
    import asr_lab
    from asr_lab.metrics.wer import WERAccumulator

    t = time.perf_counter()
    processor, meta = asr_lab.load_processor(config)
    load_sec = time.perf_counter() - t
    result: dict[str, Any] = {"load_sec": load_sec, "meta": {k: v for k, v in meta.items() if k != "config"}, "chunks": {}}
    duration = sum(len(a) for _, _, a in items) / SR
    for chunk in chunks_sec:
        acc = WERAccumulator()
        calls: dict[str, list[float]] = {"init": [], "step": [], "partial": [], "finish": []}
        for _, text, audio in items:
            hypothesis, times = stream_timed(processor, audio, chunk)
            acc.update(reference=text, hypothesis=hypothesis)
            for key, values in times.items():
                calls[key].extend(values)
        compute = sum(sum(v) for v in calls.values())
        result["chunks"][chunk] = {
            "rtf": compute / duration,
            "step_p50_ms": 1000 * _percentile(calls["step"], 50),
            "step_p95_ms": 1000 * _percentile(calls["step"], 95),
            "step_max_ms": 1000 * max(calls["step"]),
            "partial_p50_ms": 1000 * _percentile(calls["partial"], 50),
            "finish_mean_ms": 1000 * statistics.fmean(calls["finish"]),
            "wer": acc.compute().rate,
            "audio_sec": duration,
        }
        log(f"  {config.get('backend')} @ {chunk * 1000:g} ms: RTF {compute / duration:.3f}, WER {acc.compute().rate:.3f}")
    return result


def run(
    backends: Optional[dict[str, dict[str, Any]]] = None,
    chunks_sec: tuple[float, ...] = CHUNKS_SEC,
    per_voice: int = 2,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Benchmark every backend in ``backends`` (default :data:`BACKENDS`) and print a markdown table."""
    backends = BACKENDS if backends is None else backends
    items = speech(per_voice)
    log(f"{len(items)} utterances, {sum(len(a) for *_, a in items) / SR:.1f} s of flite speech ({', '.join(VOICES)})")
    results = {name: bench_backend(config, items, chunks_sec, log) for name, config in backends.items()}
    log(table(results))
    return results


def table(results: dict[str, Any]) -> str:
    """The results as a markdown table, one row per backend and chunk size."""
    lines = [
        "| backend | load s | chunk ms | RTF | call p50 ms | call p95 ms | call max ms | partial p50 ms | finish ms | WER |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        for chunk, c in r["chunks"].items():
            lines.append(
                f"| {name} | {r['load_sec']:.2f} | {chunk * 1000:g} | {c['rtf']:.3f} | {c['step_p50_ms']:.1f} | "
                f"{c['step_p95_ms']:.1f} | {c['step_max_ms']:.0f} | {c['partial_p50_ms']:.2f} | "
                f"{c['finish_mean_ms']:.0f} | {c['wer']:.3f} |"
            )
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    ap.add_argument("--chunks", nargs="+", type=float, default=list(CHUNKS_SEC), help="chunk sizes in seconds")
    ap.add_argument("--per-voice", type=int, default=2, help="sentences per voice")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    results = run({n: BACKENDS[n] for n in args.backends}, tuple(args.chunks), args.per_voice)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
