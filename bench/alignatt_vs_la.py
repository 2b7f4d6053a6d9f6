"""AlignAtt (each encoder) against LocalAgreement-2 on faster-whisper and on torch, same tiny.en weights.

    python bench/alignatt_vs_la.py [--data long|librivox] [--chunk 0.5] [--clock virtual] [--json out.json]

Systems: LocalAgreement-2 (the reference OnlineASRProcessor) on ``faster-whisper`` (CTranslate2,
greedy: ``beam_size=1``, temperature 0) and on ``openai-whisper`` (torch, greedy), and AlignAtt
(asr_lab's defaults) on ``openai-whisper`` with the torch and the CTranslate2-int8 encoder. Through
:func:`asr_lab.compare` on the virtual clock with CPU accounting (``compute="cpu"``: a call's CPU
time is its cost, so latency does not move with the other programs on a shared machine); one run,
so read the compute ratio within it. Per system: WER with its bootstrap interval over utterances,
word latency p50 / p90 (emission time − reference word end), compute RTF and its ratio to
LocalAgreement-2 on faster-whisper, audit findings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import asr_lab

ROOT = Path(__file__).resolve().parents[1]

SYSTEMS = {
    "LA-2 faster-whisper": {"backend": "faster-whisper", "beam_size": 1, "temperature": 0.0},
    "LA-2 torch": {"backend": "openai-whisper", "device": "cpu"},
    "AlignAtt torch": {"backend": "openai-whisper", "device": "cpu", "policy": "alignatt"},
    "AlignAtt ct2-int8 encoder": {"backend": "openai-whisper", "device": "cpu", "policy": "alignatt", "encoder": "ctranslate2-int8"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="long", choices=["long", "librivox"])
    parser.add_argument("--chunk", type=float, default=1.0)
    parser.add_argument("--clock", default="virtual")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    ds = asr_lab.load_dataset(ROOT / "datasets" / "librivox")
    utts = [u for u in ds if (u.id == "librivox-long" if args.data == "long" else u.id.startswith("librivox-0"))]
    configs = {name: {"model": "tiny.en", "lan": "en", "min_chunk_size": args.chunk, **c}
               for name, c in SYSTEMS.items() if not args.only or name in args.only}
    res = asr_lab.compare(configs, utts, clock=args.clock, compute="cpu", progress=False, record_replay=False)
    table = res.table(["failed", "wer", "latency_p50", "latency_p90", "rtf", "audit_findings"], ci=True)
    base = table["rtf"].get("LA-2 faster-whisper")
    if base:
        table["rtf_vs_la2_fw"] = table["rtf"] / base
    print(f"{args.data}: {sum(u.duration or 0 for u in utts):.1f} s, tiny.en, clock {args.clock}, compute cpu, step {args.chunk} s")
    print(table.to_string())
    if args.json:
        Path(args.json).write_text(table.reset_index().to_json(orient="records", indent=2))


if __name__ == "__main__":
    main()
