"""Recipe for Mozilla Common Voice: a ``.tsv`` split (columns ``path`` and ``sentence``) with ``clips/`` beside it.

``clip_durations.tsv`` is used for durations when present. :func:`load` reads the split in
place; :func:`prepare` writes its manifest.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from asr_lab.data.dataset import Dataset, DatasetError, DatasetFileNotFoundError, Utterance, _file_duration

__all__ = ["NAME", "load", "matches", "prepare"]

NAME = "common_voice"

_CV_META_COLUMNS = ("client_id", "sentence_id", "age", "gender", "accents", "variant", "locale", "segment")


def matches(source) -> bool:
    """Whether ``source`` is a ``.tsv`` file (Common Voice's split format)."""
    path = Path(os.fspath(source))
    return path.is_file() and path.suffix.lower() == ".tsv"


def load(tsv, *, name: str | None = None, check_audio: bool = True, compute_durations: bool = True) -> Dataset:
    """The utterances of one Common Voice split (``train.tsv``, ``test.tsv``...)."""
    return _load_common_voice(Path(os.fspath(tsv)), name=name, check_audio=check_audio, compute_durations=compute_durations)


def prepare(tsv, out_dir, *, name: str | None = None) -> Dataset:
    """Write ``out_dir/manifest.jsonl`` for the split ``tsv`` and return it as read back."""
    from asr_lab.data.dataset import MANIFEST_NAME, read_manifest

    manifest = load(tsv, name=name).to_manifest(Path(out_dir) / MANIFEST_NAME)
    return read_manifest(manifest, name=name)


def _load_common_voice(tsv: Path, *, name: str | None, check_audio: bool, compute_durations: bool) -> Dataset:
    clips = tsv.parent / "clips"
    with open(tsv, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        columns = reader.fieldnames or []
        missing = [c for c in ("path", "sentence") if c not in columns]
        if missing:
            raise DatasetError(
                f"{os.fspath(tsv)}: not a Common Voice TSV — missing column(s) {', '.join(missing)}; found columns "
                f"{columns[:12]}. A Common Voice TSV is tab-separated with at least 'path' (clip file name) and "
                f"'sentence' (transcript)"
            )
        rows = list(reader)
    if not clips.is_dir():
        raise DatasetFileNotFoundError(
            f"{os.fspath(tsv)}: the clips folder {os.fspath(clips)!r} does not exist; Common Voice keeps audio in "
            f"'clips/' beside the TSV files — put the TSV back in the extracted release folder"
        )
    known_durations: dict[str, float] = {}
    durations_tsv = tsv.parent / "clip_durations.tsv"
    if compute_durations and durations_tsv.is_file():
        with open(durations_tsv, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                clip, ms = row.get("clip"), row.get("duration[ms]")
                if clip and ms:
                    try:
                        known_durations[clip] = float(ms) / 1000.0
                    except ValueError:
                        pass
    utterances = []
    for lineno, row in enumerate(rows, start=2):
        clip = (row.get("path") or "").strip()
        if not clip:
            raise DatasetError(f"{os.fspath(tsv)}, line {lineno}: empty 'path'; every row needs its clip file name")
        audio = clips / clip
        if check_audio and not audio.exists():
            raise DatasetFileNotFoundError(
                f"{os.fspath(tsv)}, line {lineno}: clip {clip!r} not found at {os.fspath(audio)!r}; download/extract "
                f"the clips, or load with check_audio=False"
            )
        duration = known_durations.get(clip)
        if duration is None and compute_durations and audio.exists():
            duration = _file_duration(audio)
        meta = {k: row[k] for k in _CV_META_COLUMNS if row.get(k)}
        if "client_id" in meta:
            meta["speaker"] = meta.pop("client_id")
        utterances.append(
            Utterance(
                id=Path(clip).stem,
                audio=os.path.abspath(audio),
                text=(row.get("sentence") or "").strip(),
                duration=duration,
                meta=meta,
            )
        )
    return Dataset(utterances, name=name or f"{tsv.parent.name}-{tsv.stem}", root=tsv.parent)
