"""AlignAtt's named options, each measured against SimulStreaming's behaviour (reference_mode) on real speech.

    python bench/alignatt_options.py [--data long57|long|librivox] [--clock unaware] [--chunk 1.0] [--json out.json]

One openai-whisper tiny.en (real weights, greedy) per variant, through :func:`asr_lab.compare`
(record/replay off: AlignAtt asks the engine what depends on what it committed). Data:
``long`` = ``datasets/librivox`` ``librivox-long`` (the five LibriVox utterances joined, 27.9 s);
``long57`` = that recording twice with 0.8 s between (56.7 s, word times shifted), which fills
the 30 s buffer and makes it cut; ``librivox`` = the five utterances apart. Variants: the
reference (``reference_mode=True``), the reference with one asr_lab default switched on,
asr_lab's defaults, and asr_lab's defaults with one option set back. Per variant: word
errors / reference words, word latency p50 / p90 (emission time − reference word end),
audit findings, and on a computation-aware clock
the compute RTF. The unaware clock (default) times emissions at the audio fed, so the
figures are the policy's alone, independent of the machine's load.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import asr_lab
from asr_lab.data import Utterance

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "reference (SimulStreaming)": {"reference_mode": True},
    "ref + official heads": {"reference_mode": True, "alignatt_heads": "model"},
    "ref + hold last word": {"reference_mode": True, "alignatt_last_word": "hold"},
    "ref + punctuation rule": {"reference_mode": True, "alignatt_last_word": "punctuation"},
    "ref + non-speech suppressed": {"reference_mode": True, "alignatt_suppress": "non-speech"},
    "ref + 15 s buffer": {"reference_mode": True, "alignatt_buffer_sec": 15.0},
    "ref + word cut after decoding": {"reference_mode": True, "alignatt_cut": "after"},
    "ref + decode to eot at finish": {"reference_mode": True, "alignatt_final_threshold": "eot"},
    "ref + epsilon 1e-8": {"reference_mode": True, "alignatt_std_epsilon": 1e-8},
    "ref + clean timestamps": {"reference_mode": True, "alignatt_timestamps": "clean"},
    "asr_lab defaults": {},
    "asr_lab, hold last word": {"alignatt_last_word": "hold"},
    "asr_lab, 30 s buffer": {"alignatt_buffer_sec": 30.0},
    "asr_lab, upper-half heads": {"alignatt_heads": "upper-half"},
    "asr_lab, audio_ctx": {"audio_ctx": True},
    "asr_lab, ctranslate2-int8 encoder": {"encoder": "ctranslate2-int8"},
}


def data(name: str) -> list:
    ds = asr_lab.load_dataset(ROOT / "datasets" / "librivox")
    if name == "librivox":
        return [u for u in ds if u.id.startswith("librivox-0")]
    long = next(u for u in ds if u.id == "librivox-long")
    if name == "long":
        return [long]
    audio = asr_lab.load_audio(long.audio)
    gap = 0.8
    shift = len(audio) / 16000 + gap
    twice = np.concatenate([audio, np.zeros(int(gap * 16000), np.float32), audio])
    words = [tuple(w) for w in long.words] + [(w[0] + shift, w[1] + shift, w[2]) for w in long.words]
    return [Utterance.from_array("librivox-long-twice", twice, text=long.text + " " + long.text, words=words)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="long57", choices=["long57", "long", "librivox"])
    parser.add_argument("--clock", default="unaware")
    parser.add_argument("--chunk", type=float, default=1.0)
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    utts = data(args.data)
    base = {"backend": "openai-whisper", "model": "tiny.en", "lan": "en", "policy": "alignatt", "device": "cpu",
            "min_chunk_size": args.chunk}
    configs = {name: {**base, **v} for name, v in VARIANTS.items() if not args.only or name in args.only}
    res = asr_lab.compare(configs, utts, clock=args.clock, progress=False, record_replay=False)
    table = res.table(["failed", "wer", "latency_p50", "latency_p90", "latency_count", "rtf", "audit_findings"])
    rows = []
    for name in table.index:
        row = {"variant": name, **{k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else round(float(v), 4))
                                   for k, v in table.loc[name].items()}}
        errs = [res.scores[k] for k in res._keys([r for r in res.records if r.system == name])]
        row["errors"] = int(sum(s.wer.errors for s in errs))
        row["ref_words"] = int(sum(s.wer.reference_length for s in errs))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{args.data}: {sum(u.duration or 0 for u in utts):.1f} s, tiny.en greedy, clock {args.clock}, chunk {args.chunk} s")
    print(table.to_string())
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
