"""Rebuild the bundled speech sample: ``python -m asr_lab.testing.data.build_sample``.

Writes ``sample.flac`` (flite voice ``slt``, 16 kHz, 16-bit), ``sample.txt`` (the text)
and ``sample.json`` (``[[start, end, word], ...]`` from forced alignment, in seconds) next
to this file; :func:`asr_lab.testing.sample_speech` reads them. Needs the ``flite``
program (``apt-get install flite``) and pocketsphinx.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TEXT = "Please bring the blue folder to the office before lunch."
VOICE = "slt"
NAME = "sample"


def build(folder: Path = Path(__file__).parent) -> Path:
    """Synthesize :data:`TEXT`, align it, and write the three files into ``folder``; returns the FLAC path."""
    from asr_lab.core.audio import save_audio
    from asr_lab.data.align import align_words
    from asr_lab.data.synth import synthesize

    audio = synthesize(TEXT, VOICE)
    words = align_words(audio, TEXT)
    folder = Path(folder)
    flac = save_audio(folder / f"{NAME}.flac", audio)
    (folder / f"{NAME}.txt").write_text(TEXT + "\n")
    timings = [[round(start, 2), round(end, 2), word] for start, end, word in words]
    (folder / f"{NAME}.json").write_text(json.dumps(timings) + "\n")
    return flac


if __name__ == "__main__":
    path = build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB) with its .txt and .json")
