"""Recipe for ``datasets/librivox``: real speech from Debian's ``pocketsphinx-testdata``, timed by a non-contestant aligner.

``apt-get install pocketsphinx-testdata`` installs ``/usr/share/pocketsphinx/test/data``:
five LibriVox utterances of *Sense and Sensibility* (public domain) with a
``transcription`` file, five short "cards" recordings with ``cards.transcription``, and
``goforward.raw`` (raw 16 kHz int16) whose text is the package's own grammar for it
(``goforward.gram``: "go forward ten meters"). ``numbers.raw`` and ``something.raw`` ship
without a transcript and are left out (a transcript made by a recogniser would be judged
by it).

:func:`prepare` (:func:`build_real_speech`) writes them as a dataset (FLAC + ``manifest.jsonl`` + README),
with word timings from :mod:`asr_lab.data.synthesis_alignment` (flite renderings, DTW; neither
pocketsphinx nor Whisper), plus one long-form stream of the LibriVox utterances. It
also reports how far pocketsphinx's forced alignment (:mod:`asr_lab.data.forced_alignment`, the
second opinion) lies from those timings. The bundled copy is ``datasets/librivox``;
rebuild with ``python -m asr_lab.data.recipes.librivox datasets/librivox``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from asr_lab.data.build import _save_flac_atomic, build_long_form
from asr_lab.data.dataset import Dataset, Utterance
from asr_lab.data.synthesis_alignment import align_by_synthesis, boundary_differences

__all__ = ["DEFAULT_DIR", "NAME", "TESTDATA", "build_real_speech", "prepare", "testdata_utterances"]

NAME = "librivox"
DEFAULT_DIR = "datasets/librivox"
"""Where the bundled copy lives (relative to the repository root)."""

TESTDATA = Path("/usr/share/pocketsphinx/test/data")
"""Where Debian's pocketsphinx-testdata puts the recordings."""

_LINE = re.compile(r"^<s>\s*(.*?)\s*</s>\s*\((\S+)\)\s*$")


def _read_transcription(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            match = _LINE.match(line.strip())
            if not match:
                raise ValueError(f"{path}: line {line!r} is not '<s> words </s> (id)'")
            out.append((match.group(2), " ".join(match.group(1).split())))
    return out


def testdata_utterances(root: Path = TESTDATA) -> list[tuple[str, str, np.ndarray, dict]]:
    """``(id, text, audio, meta)`` of every transcribed recording under ``root`` (16 kHz float32)."""
    import soundfile as sf

    if not root.is_dir():
        raise FileNotFoundError(f"{root} not found; install it: apt-get install pocketsphinx-testdata")
    found = []
    librivox = {"source": "librivox", "speaker": "librivox-austen", "licence": "public domain (LibriVox)"}
    for uid, text in _read_transcription(root / "librivox" / "transcription"):
        audio, rate = sf.read(root / "librivox" / f"{uid}.wav", dtype="float32")
        found.append((uid.replace("sense_and_sensibility_01_austen_64kb", "librivox"), text, audio, dict(librivox, rate=rate)))
    cards = {"source": "cards", "licence": "BSD-2-Clause (CMU Sphinx test data)"}
    for uid, text in _read_transcription(root / "cards" / "cards.transcription"):
        audio, rate = sf.read(root / "cards" / f"{uid}.wav", dtype="float32")
        found.append((f"cards-{uid}", text, audio, dict(cards, rate=rate)))
    raw = np.fromfile(root / "goforward.raw", dtype="<i2").astype(np.float32) / 32768.0
    grammar = (root / "goforward.gram").read_text()
    text = re.search(r"public\s*<move>\s*=\s*([^;]+);", grammar).group(1).strip()
    found.append(("goforward", text, raw, {"source": "goforward", "licence": "BSD-2-Clause (CMU Sphinx test data)", "rate": 16000}))
    for uid, _, _, meta in found:
        if meta.pop("rate") != 16000:
            raise ValueError(f"{uid}: expected 16 kHz audio")
    return found


def build_real_speech(out_dir: str | Path = "datasets/librivox", root: Path = TESTDATA, *, log=print) -> Dataset:
    """Write the dataset (see module docstring) to ``out_dir``; returns it. Deterministic."""
    from asr_lab.data.forced_alignment import align_words

    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    utterances, agreement, spreads = [], [], []
    for uid, text, audio, meta in testdata_utterances(root):
        path = out / "audio" / f"{uid}.flac"
        _save_flac_atomic(path, audio)
        alignment = align_by_synthesis(audio, text)
        spreads.append(alignment.spread)
        second = None
        try:
            ps = align_words(audio, text)
            second = boundary_differences(alignment.words, ps)
            agreement.append(second)
        except Exception as exc:  # the second opinion is optional; say why it is missing
            log(f"{uid}: no pocketsphinx alignment ({exc})")
        meta = {
            "kind": "utterance",
            **meta,
            "timings": "dtw-flite (slt, rms, awb, kal16; median)",
            "voice_spread_sec": round(alignment.spread, 3),
        }
        if second is not None:
            meta["pocketsphinx_diff_median_sec"] = round(float(np.median(second)), 3)
        utterances.append(
            Utterance(id=uid, audio=str(path), text=text, duration=len(audio) / 16000, words=alignment.words, meta=meta)
        )
        log(f"{uid}: {len(alignment.words)} words, voices spread {alignment.spread:.3f} s")
    librivox = [u for u in utterances if u.meta["source"] == "librivox"]
    (out / "long").mkdir(exist_ok=True)
    stream = build_long_form(
        librivox, out / "long" / "librivox-long.flac", pause_sec=0.8, seed=0,
        meta={"source": "librivox", "licence": "public domain (LibriVox)", "timings": "dtw-flite, shifted"},
    )  # fmt: skip
    all_diffs = np.concatenate(agreement) if agreement else np.array([])
    stats = {
        "boundaries_compared": int(all_diffs.size),
        "median_sec": round(float(np.median(all_diffs)), 3) if all_diffs.size else None,
        "p90_sec": round(float(np.percentile(all_diffs, 90)), 3) if all_diffs.size else None,
        "max_sec": round(float(all_diffs.max()), 3) if all_diffs.size else None,
        "voice_spread_median_sec": round(float(np.median(spreads)), 3),
    }
    dataset = Dataset([*utterances, stream], name=out.name, root=out)
    dataset.to_manifest(out / "manifest.jsonl")
    (out / "alignment_agreement.json").write_text(json.dumps(stats, indent=1) + "\n")
    (out / "README.md").write_text(_readme(dataset, stats))
    log(f"agreement with pocketsphinx forced alignment: {stats}")
    return dataset


def prepare(out_dir: str | Path = DEFAULT_DIR, root: Path = TESTDATA, *, log=print) -> Dataset:
    """The recipe's prepare step: :func:`build_real_speech` (deterministic; returns the manifest-backed set)."""
    return build_real_speech(out_dir, root, log=log)


def _readme(ds: Dataset, stats: dict) -> str:
    by_source: dict[str, list[Utterance]] = {}
    for u in ds:
        if u.meta.get("kind") == "utterance":
            by_source.setdefault(u.meta["source"], []).append(u)
    rows = "\n".join(
        f"| {source} | {len(us)} | {sum(u.duration for u in us):.1f} s | {us[0].meta['licence']} |"
        for source, us in by_source.items()
    )
    return f"""# datasets/librivox — real human speech with word timings

Real recordings from Debian's `pocketsphinx-testdata` package
(`/usr/share/pocketsphinx/test/data`), stored as 16 kHz 16-bit FLAC.

| source | utterances | total | licence |
|---|---|---|---|
{rows}

* `librivox`: five utterances of *Sense and Sensibility*, chapter 1, read for LibriVox
  (LibriVox recordings are in the public domain); transcripts from the package's
  `librivox/transcription`.
* `cards`, `goforward`: short CMU Sphinx test recordings (BSD-2-Clause, © Carnegie Mellon
  University); transcripts from `cards.transcription` and the `goforward.gram` grammar.
  `numbers.raw` and `something.raw` have no transcript in the package and are left out.
* `long/librivox-long.flac`: the five LibriVox utterances joined with 0.8 s pauses
  ({ds['librivox-long'].duration:.1f} s), word times shifted; `meta.sources` says where each lies.

## Word timings: not from a contestant

pocketsphinx and Whisper are engines the lab scores, so neither made these timings.
`asr_lab.data.synthesis_alignment` has flite speak each transcript in four voices (slt, rms, awb,
kal16), where flite's own phone durations give exact word boundaries, aligns each
rendering to the recording by dynamic time warping of MFCCs, and takes the median
boundary over the voices.

How good that is, measured:
* on synthetic speech, where truth is known (one flite voice aligned through the other
  three; `tests/test_real_speech.py`): boundary error median ≈ 0.01 s, p90 ≈ 0.03 s;
* against pocketsphinx's forced alignment of the same recordings (a second opinion, not
  the truth), over {stats['boundaries_compared']} word boundaries: median difference
  {stats['median_sec']} s, p90 {stats['p90_sec']} s, max {stats['max_sec']} s
  (`alignment_agreement.json`; per utterance in `meta.pocketsphinx_diff_median_sec`);
* spread between the four voices, median over utterances: {stats['voice_spread_median_sec']} s.

Rebuild (needs flite and pocketsphinx-testdata; deterministic):

    python -m asr_lab.data.recipes.librivox datasets/librivox

Load: `asr_lab.load_dataset("datasets/librivox")`; LibriVox only:
`load_dataset("datasets/librivox").filter(source="librivox")`.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m asr_lab.data.recipes.librivox [OUT_DIR]``: build the set in OUT_DIR (default datasets/librivox)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or (args and args[0].startswith("-")):  # "--help" is not a folder to build into
        print(f"usage: python -m asr_lab.data.recipes.librivox [OUT_DIR]   (default {DEFAULT_DIR}; needs "
              f"apt-get install pocketsphinx-testdata); got {args!r}", file=sys.stderr)
        return 0 if args in (["-h"], ["--help"]) else 2
    build_real_speech(args[0] if args else DEFAULT_DIR)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
