"""Foundation benchmarks: import time, LocalAgreement policy overhead, memory over a long stream.

    python bench/foundation.py [--hours 1.0]

Figures are from one run on this machine (noisy, 2 cores); read them as ratios and orders
of magnitude, not as exact timings.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from asr_lab import OnlineASRProcessor
from asr_lab.testing import TimelineASR, words_from_text

SR = 16000


def import_time(runs: int = 7) -> float:
    """Median seconds for a fresh interpreter to ``import asr_lab`` (interpreter start excluded)."""
    code = "import time; t = time.perf_counter(); import asr_lab; print(time.perf_counter() - t)"
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout) for _ in range(runs)]
    return statistics.median(times)


class _TimedASR:
    """Wraps an ASRBase and accumulates the time spent inside it, to subtract from process_iter."""

    def __init__(self, asr):
        self.asr, self.sep, self.spent = asr, asr.sep, 0.0

    def _timed(self, name, *a, **k):
        t = time.perf_counter()
        try:
            return getattr(self.asr, name)(*a, **k)
        finally:
            self.spent += time.perf_counter() - t

    def transcribe(self, audio, init_prompt=""):
        return self._timed("transcribe", audio, init_prompt=init_prompt)

    def ts_words(self, r):
        return self._timed("ts_words", r)

    def segments_end_ts(self, r):
        return self._timed("segments_end_ts", r)


def policy_overhead(buffer_sec: float = 30.0, iterations: int = 200, chunk_sec: float = 0.005) -> dict:
    """Per-iteration time of OnlineASRProcessor *excluding* the ASR calls, on a full buffer."""
    words = words_from_text(" ".join(f"w{i}" for i in range(4000)), pause_every=8)
    asr = _TimedASR(TimelineASR(words, unstable_tail_sec=0.5))
    proc = OnlineASRProcessor(asr, buffer_trimming=("segment", buffer_sec + 100))  # never trims: buffer stays full
    proc.init()
    audio = TimelineASR.stream_audio(buffer_sec + iterations * chunk_sec)
    proc.insert_audio_chunk(audio[: int(buffer_sec * SR)])
    proc.process_iter()
    per_iter = []
    pos = int(buffer_sec * SR)
    for _ in range(iterations):
        chunk = audio[pos : pos + int(chunk_sec * SR)]
        pos += len(chunk)
        asr.spent = 0.0
        t = time.perf_counter()
        proc.insert_audio_chunk(chunk)
        proc.process_iter()
        per_iter.append(time.perf_counter() - t - asr.spent)
    return {
        "buffer_sec": len(proc.audio_buffer) / SR,
        "median_ms": 1000 * statistics.median(per_iter),
        "p95_ms": 1000 * float(np.percentile(per_iter, 95)),
    }


def long_stream_memory(hours: float = 1.0, chunk_sec: float = 1.0) -> dict:
    """Stream ``hours`` of scripted speech; report buffer length and traced memory every 10 minutes.

    Traced memory (tracemalloc, numpy arrays included) is what the process holds *now*;
    flat means trimming works. The processor's ``committed`` list grows by design (the
    reference keeps every committed word), about 0.2 KB a word.
    """
    total = hours * 3600
    n_words = int(total / 0.4)
    words = words_from_text(" ".join(f"w{i}" for i in range(n_words)), pause_every=9, pause_sec=0.7)
    words = [w for w in words if w[1] < total - 1]
    asr = TimelineASR(words, unstable_tail_sec=0.5)
    proc = OnlineASRProcessor(asr, buffer_trimming=("segment", 15))
    proc.init()
    samples_per_chunk = int(chunk_sec * SR)
    marks, max_buffer, committed_words, t0 = [], 0.0, 0, time.perf_counter()
    tracemalloc.start()
    for k in range(int(total / chunk_sec)):
        chunk = TimelineASR.stream_audio(chunk_sec, start_sec=k * chunk_sec)
        proc.insert_audio_chunk(chunk)
        out = proc.process_iter()
        asr.calls.clear()  # the stand-in's own call log is not the processor's memory
        if out:
            committed_words += len(out[2].split())
        max_buffer = max(max_buffer, len(proc.audio_buffer) / SR)
        if (k + 1) % int(600 / chunk_sec) == 0:
            current_mb = tracemalloc.get_traced_memory()[0] / 2**20
            marks.append((round((k + 1) * chunk_sec / 60), round(current_mb, 2), round(len(proc.audio_buffer) / SR, 1)))
    tracemalloc.stop()
    return {
        "stream_min": total / 60,
        "words_committed": committed_words,
        "words_in_timeline": len(words),
        "max_buffer_sec": round(max_buffer, 2),
        "traced_mb_at_minutes": marks,
        "wall_sec": round(time.perf_counter() - t0, 1),
        "samples_per_chunk": samples_per_chunk,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hours", type=float, default=1.0)
    args = ap.parse_args()
    print(f"import asr_lab: {import_time() * 1000:.0f} ms (median of 7 fresh interpreters)")
    o = policy_overhead()
    print(f"LocalAgreement policy overhead per iteration, ASR excluded, {o['buffer_sec']:.0f} s buffer: "
          f"median {o['median_ms']:.3f} ms, p95 {o['p95_ms']:.3f} ms")
    m = long_stream_memory(args.hours)
    print(f"{m['stream_min']:.0f}-minute scripted stream: {m['words_committed']} of {m['words_in_timeline']} words committed, "
          f"audio buffer never above {m['max_buffer_sec']} s, wall {m['wall_sec']} s")
    print("  (minute, traced MB, buffer s): " + ", ".join(map(str, m["traced_mb_at_minutes"])))


if __name__ == "__main__":
    main()
