"""AlignAtt's reference_mode against SimulStreaming itself: same weights, same audio, unaware clock.

    python bench/alignatt_reference.py SIMUL_OUT_DIR AUDIO.wav [AUDIO.wav ...]

``SIMUL_OUT_DIR/<stem>.jsonl`` is what SimulStreaming printed for ``<stem>.wav``, run as

    python simulstreaming_whisper.py AUDIO.wav --model_path converted-tiny.en --lan en \\
        --min-chunk-size 1.0 --comp_unaware --log-level ERROR > SIMUL_OUT_DIR/<stem>.jsonl

from a folder holding asr_lab's converted tiny.en checkpoint under the name ``converted-tiny.en``
(SimulStreaming loads a checkpoint by a name that is not a size name as a path, with the
fallback alignment heads, and picks the English-only tokenizer by the ``.en`` ending; a file
named ``tiny.en.pt`` would be re-downloaded, as its SHA-256 differs from OpenAI's). asr_lab runs
``openai-whisper`` tiny.en with ``policy='alignatt', reference_mode=True`` through
:func:`asr_lab.replay` (unaware clock, 1 s chunks, 1 s warm-up, as SimulStreaming's
``--comp_unaware``). Per file: emissions on each side, how many agree in text and in
(start, end, emission time) to 1e-6 s, and the first difference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import librosa
import numpy as np

import asr_lab


def simul_emissions(path: Path) -> list[tuple[float, float, float, str]]:
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            d = json.loads(line)
            out.append((d["emission_time"], d["start"], d["end"], d["text"]))
    return out


def lab_emissions(proc, audio: np.ndarray, chunk: float) -> list[tuple[float, float, float, str]]:
    trace = asr_lab.replay(proc, audio, clock="unaware", chunk_sec=chunk, warmup_sec=1.0, separator="")
    trace.raise_for_error()
    return [(e.emitted_at, e.start, e.end, e.text) for e in trace.emissions]


def same(a, b, tol=1e-6) -> bool:
    return a[3] == b[3] and all(abs(x - y) <= tol for x, y in zip(a[:3], b[:3]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("simul_out")
    parser.add_argument("audio", nargs="+")
    parser.add_argument("--chunk", type=float, default=1.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    proc, meta = asr_lab.load_processor({"backend": "openai-whisper", "model": "tiny.en", "lan": "en", "policy": "alignatt",
                                         "reference_mode": True, "min_chunk_size": args.chunk, "device": "cpu"})
    print(json.dumps(meta["alignatt"]))
    rows = []
    for wav in args.audio:
        stem = Path(wav).stem
        ref = simul_emissions(Path(args.simul_out) / f"{stem}.jsonl")
        audio, _ = librosa.load(wav, sr=16000, dtype=np.float32)
        lab = lab_emissions(proc, audio, args.chunk)
        agree = sum(same(a, b) for a, b in zip(lab, ref))
        first = next((i for i, (a, b) in enumerate(zip(lab, ref)) if not same(a, b)), None)
        row = {"file": stem, "duration": round(len(audio) / 16000, 2), "simulstreaming": len(ref), "asr_lab": len(lab),
               "identical": agree, "text_equal": "".join(e[3] for e in lab) == "".join(e[3] for e in ref)}
        if first is not None:
            row["first_difference"] = {"asr_lab": lab[first], "simulstreaming": ref[first]}
        elif len(lab) != len(ref):
            row["first_difference"] = {"asr_lab": lab[len(ref):][:1], "simulstreaming": ref[len(lab):][:1]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    n_ref = sum(r["simulstreaming"] for r in rows)
    n_same = sum(r["identical"] for r in rows)
    print(f"\n{n_same}/{n_ref} SimulStreaming emissions reproduced exactly (text, start, end, emission time) over {len(rows)} files")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
