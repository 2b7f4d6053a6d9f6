"""Rebuild the bundled speech samples: ``python -m asr_lab.testing.data.build_sample``.

For each sample NAME, writes ``NAME.flac`` (16 kHz, 16-bit), ``NAME.txt`` (the text) and
``NAME.json`` (``[[start, end, word], ...]`` from forced alignment, in seconds) next to
this file; :func:`asr_lab.testing.sample_speech` reads them. Needs the ``flite`` program
(``apt-get install flite``) and pocketsphinx.

* ``sample``: one sentence (3.3 s, voice slt) — quick tests of engines.
* ``pauses``: three sentences in two voices with ~1.1 s pauses between them (11.4 s),
  the conformance kit's default — long enough that a processor commits several segments,
  so segments that overlap or go back in time show, with silences where engines endpoint.

Each sentence is aligned on its own audio and its word times shifted to its place.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SAMPLES = {
    "sample": dict(sentences=(("slt", "Please bring the blue folder to the office before lunch."),), lead_sec=0.0, pause_sec=0.0),
    "pauses": dict(
        sentences=(
            ("slt", "Please bring the blue folder to the office before lunch."),
            ("rms", "The train to the city leaves every morning at seven."),
            ("slt", "My sister bought a new bike for her birthday."),
        ),
        lead_sec=0.2,  # silence before the first sentence and after the last (flite adds ~0.15 s)
        pause_sec=0.8,  # between sentences: with flite's own ~0.3 s, enough for an endpointer
    ),
}

TEXT = SAMPLES["sample"]["sentences"][0][1]  # the one-sentence sample's text


def build(folder: Path = Path(__file__).parent, name: str = "sample") -> Path:
    """Synthesize sample ``name`` of :data:`SAMPLES`, align it, write its three files into ``folder``; returns the FLAC path."""
    import numpy as np

    from asr_lab.core.audio import save_audio
    from asr_lab.core.protocols import SAMPLE_RATE
    from asr_lab.data.forced_alignment import align_words
    from asr_lab.data.synth import synthesize

    spec = SAMPLES[name]
    sentences, lead, pause = spec["sentences"], int(spec["lead_sec"] * SAMPLE_RATE), int(spec["pause_sec"] * SAMPLE_RATE)
    pieces, timings, at = [np.zeros(lead, dtype=np.float32)], [], lead
    for k, (voice, text) in enumerate(sentences):
        audio = synthesize(text, voice).astype(np.float32)
        offset = at / SAMPLE_RATE
        timings += [[round(offset + start, 2), round(offset + end, 2), word] for start, end, word in align_words(audio, text)]
        gap = pause if k < len(sentences) - 1 else lead
        pieces += [audio, np.zeros(gap, dtype=np.float32)]
        at += len(audio) + gap
    folder = Path(folder)
    flac = save_audio(folder / f"{name}.flac", np.concatenate(pieces))
    (folder / f"{name}.txt").write_text(" ".join(text for _, text in sentences) + "\n")
    (folder / f"{name}.json").write_text(json.dumps(timings) + "\n")
    return flac


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    for sample in (sys.argv[2:] or SAMPLES):
        path = build(out, sample)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB) with its .txt and .json")
