"""Recipe for LibriSpeech-style folders (OpenSLR 12, and corpora laid out like it).

Layout: ``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` (lines ``<id> <TEXT>``) beside
``<id>.flac``, found at any depth, so the ``LibriSpeech/`` root with several splits works too.
:func:`load` reads the folder in place; :func:`prepare` writes its manifest (paths relative
to ``out_dir``) so later loads skip the scan.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr_lab.data.dataset import (
    _AUDIO_SUFFIXES,
    Dataset,
    DatasetFileNotFoundError,
    Utterance,
    _file_duration,
)

__all__ = ["NAME", "load", "matches", "prepare"]

NAME = "librispeech"


def matches(source) -> bool:
    """Whether ``source`` is a folder holding LibriSpeech transcripts."""
    path = Path(os.fspath(source))
    return path.is_dir() and bool(_transcripts(path))


def _transcripts(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/*.trans.txt")) or sorted(root.rglob("*.trans.txt"))


def load(root, *, name: str | None = None, compute_durations: bool = True) -> Dataset:
    """Every utterance under ``root`` (ids, transcripts, FLAC paths, durations from file headers)."""
    root = Path(os.fspath(root))
    return _load_librispeech(root, _transcripts(root), name=name, compute_durations=compute_durations)


def prepare(root, out_dir, *, name: str | None = None) -> Dataset:
    """Write ``out_dir/manifest.jsonl`` for the corpus under ``root`` and return it as read back."""
    from asr_lab.data.dataset import MANIFEST_NAME, read_manifest

    manifest = load(root, name=name).to_manifest(Path(out_dir) / MANIFEST_NAME)
    return read_manifest(manifest, name=name)


def _load_librispeech(root: Path, transcripts: list[Path], *, name: str | None, compute_durations: bool) -> Dataset:
    utterances = []
    for trans in transcripts:
        folder = trans.parent
        chapter = folder.name
        speaker = folder.parent.name
        with open(trans, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                uid, _, text = line.strip().partition(" ")
                audio = next((folder / (uid + s) for s in _AUDIO_SUFFIXES if (folder / (uid + s)).exists()), None)
                if audio is None:
                    raise DatasetFileNotFoundError(
                        f"{os.fspath(trans)}, line {lineno}: no audio for utterance {uid!r}; expected "
                        f"{os.fspath(folder / (uid + '.flac'))!r} (LibriSpeech layout: <speaker>/<chapter>/<id>.flac "
                        f"beside <speaker>-<chapter>.trans.txt)"
                    )
                meta = {"speaker": speaker, "chapter": chapter}
                split = folder.parent.parent
                if split != root and split.parent != split:
                    meta["split"] = split.name
                utterances.append(
                    Utterance(
                        id=uid,
                        audio=os.path.abspath(audio),
                        text=text.strip(),
                        duration=_file_duration(audio) if compute_durations else None,
                        meta=meta,
                    )
                )
    return Dataset(utterances, name=name or root.name, root=root)
