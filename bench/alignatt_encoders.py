"""Token agreement of AlignAtt's encoders with the all-torch one, and their cost, on real speech.

    python bench/alignatt_encoders.py [--threads 1]

For each LibriVox utterance of ``datasets/librivox`` (the five ``librivox-0*``, whole, as one
buffer each) the openai-whisper tiny.en decoder (torch, greedy, the AlignAtt decoder with
asr_lab's defaults) decodes to end-of-text after each encoder: ``torch`` (the reference),
``ctranslate2-int8`` and ``ctranslate2-float32`` (CTranslate2's encoder over the same weights)
and ``audio_ctx`` (torch over the audio's frames only). Per encoder: tokens identical to the
torch run (matching blocks of difflib over the token sequences / torch's tokens), utterances
decoded identically, the most-attended frames that agree among matched tokens, and the median
CPU seconds of one encoder call (process time; the machine is shared, so read the ratios).
"""

from __future__ import annotations

import argparse
import difflib
import json
import statistics
import time
from pathlib import Path

import asr_lab

ROOT = Path(__file__).resolve().parents[1]
ENCODERS = {"torch": {}, "ctranslate2-int8": {"encoder": "ctranslate2-int8"},
            "ctranslate2-float32": {"encoder": "ctranslate2-float32"}, "audio_ctx": {"audio_ctx": True}}


def decode(decoder, audio):
    started = time.process_time()
    session = decoder.begin(audio, context=[], forced=[])
    encode_cpu = time.process_time() - started
    tokens, frames = [], []
    for _ in range(200):
        step = session.next()
        if step.eot:
            break
        tokens.append(step.token)
        frames.append(step.frame)
    return tokens, frames, encode_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    utts = [u for u in asr_lab.load_dataset(ROOT / "datasets" / "librivox") if u.id.startswith("librivox-0")]
    audio = {u.id: asr_lab.load_audio(u.audio) for u in utts}
    runs = {}
    for name, fields in ENCODERS.items():
        proc, _ = asr_lab.load_processor({"backend": "openai-whisper", "model": "tiny.en", "lan": "en", "policy": "alignatt",
                                          "device": "cpu", **fields})
        runs[name] = {u.id: decode(proc.decoder, audio[u.id]) for u in utts}
        for u in utts:  # a second pass for the timing, warm
            runs[name][u.id] = runs[name][u.id][:2] + (decode(proc.decoder, audio[u.id])[2],)
    ref = runs["torch"]
    rows = []
    for name, per in runs.items():
        same_tokens = total = identical = frames_same = matched = 0
        for uid, (tokens, frames, _) in per.items():
            rt, rf, _ = ref[uid]
            sm = difflib.SequenceMatcher(a=rt, b=tokens, autojunk=False)
            for block in sm.get_matching_blocks():
                same_tokens += block.size
                for k in range(block.size):
                    matched += 1
                    frames_same += rf[block.a + k] == frames[block.b + k]
            total += len(rt)
            identical += tokens == rt
        row = {"encoder": name, "token_agreement": round(same_tokens / total, 4), "identical_utterances": f"{identical}/{len(per)}",
               "frame_agreement": round(frames_same / max(1, matched), 4),
               "encode_cpu_sec_median": round(statistics.median(c for _, _, c in per.values()), 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
