"""Recipe for Hugging Face ``datasets``: a ``Dataset`` (or a ``DatasetDict`` with ``split=``) read in place.

The ``audio_column`` holds ``{"array", "sampling_rate"}``, an ``Audio`` feature, a path, or
raw samples (then give ``sampling_rate=``); ``text_column`` defaults to the first of text,
sentence, transcription, transcript, normalized_text; ``id_column`` defaults to ``id`` when
present, else ``<name>-<row>``. Audio stays in the HF dataset and is decoded when
:meth:`~asr_lab.Utterance.load_audio` is called. :func:`prepare` writes the decoded audio
as FLAC files with a manifest, so later runs need neither ``datasets`` nor the hub.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from asr_lab.data.dataset import SAMPLE_RATE, Dataset, DatasetError, Utterance

__all__ = ["NAME", "load", "matches", "prepare"]

NAME = "hf"

_TEXT_COLUMN_GUESSES = ("text", "sentence", "transcription", "transcript", "normalized_text")


def matches(source: Any) -> bool:
    """Whether ``source`` is a Hugging Face ``datasets.Dataset`` or ``DatasetDict``."""
    return _is_hf_dataset(source)


def load(hf: Any, **options: Any) -> Dataset:
    """The rows of ``hf`` as utterances (options: ``name``, ``text_column``, ``audio_column``,
    ``id_column``, ``sampling_rate``, ``split``, ``compute_durations``; see the module docstring)."""
    return _load_hf(hf, **options)


def prepare(hf: Any, out_dir, **options: Any) -> Dataset:
    """Decode every row's audio to ``out_dir/audio/<id>.flac`` and write ``out_dir/manifest.jsonl``."""
    from pathlib import Path

    from asr_lab.data.dataset import MANIFEST_NAME, read_manifest

    manifest = load(hf, **options).to_manifest(Path(out_dir) / MANIFEST_NAME)
    return read_manifest(manifest, name=options.get("name"))


def _is_hf_dataset(obj: Any) -> bool:
    module = type(obj).__module__ or ""
    return module.split(".")[0] == "datasets" and hasattr(obj, "column_names")


def _load_hf(
    hf: Any,
    *,
    name: str | None,
    text_column: str | None,
    audio_column: str,
    id_column: str | None,
    sampling_rate: int | None,
    split: str | None,
    compute_durations: bool,
) -> Dataset:
    kind = type(hf).__name__
    if kind == "DatasetDict" or (isinstance(hf, Mapping) and not hasattr(hf, "features")):
        splits = list(hf.keys())
        if split is None:
            raise DatasetError(
                f"got a DatasetDict with splits {splits}; choose one with split=, e.g. split={splits[0]!r}"
            )
        if split not in splits:
            raise DatasetError(f"split={split!r} is not in this DatasetDict; its splits are {splits}")
        hf = hf[split]
        kind = type(hf).__name__
    elif split is not None:
        raise DatasetError(f"split={split!r} was given with a single {kind}; drop split= (it is for a DatasetDict)")
    if not hasattr(hf, "__getitem__") or not hasattr(hf, "__len__") or kind.startswith("Iterable"):
        raise DatasetError(
            f"a streaming {kind} cannot be indexed; materialise it first, e.g. "
            f"datasets.Dataset.from_list(list(ds.take(100)))"
        )
    columns = list(hf.column_names)
    if audio_column not in columns:
        raise DatasetError(
            f"the Hugging Face dataset has no audio column {audio_column!r}; its columns are {columns}; "
            f"pass audio_column=<the column with the audio>"
        )
    if text_column is None:
        text_column = next((c for c in _TEXT_COLUMN_GUESSES if c in columns), None)
        if text_column is None:
            raise DatasetError(
                f"cannot tell which column holds the transcript: none of {list(_TEXT_COLUMN_GUESSES)} is among "
                f"{columns}; pass text_column=<name>"
            )
    elif text_column not in columns:
        raise DatasetError(
            f"text_column={text_column!r} is not a column of the Hugging Face dataset; its columns are {columns}"
        )
    if id_column is not None and id_column not in columns:
        raise DatasetError(
            f"id_column={id_column!r} is not a column of the Hugging Face dataset; its columns are {columns}"
        )
    if id_column is None and "id" in columns:
        id_column = "id"
    if sampling_rate is None and "sampling_rate" in columns:
        sr_column: str | None = "sampling_rate"
    else:
        sr_column = None

    # An Audio feature decodes through torchcodec (and torch); read the stored bytes/paths
    # instead and decode them here with soundfile, which the project already depends on.
    feature = getattr(hf, "features", {}).get(audio_column)
    if type(feature).__name__ == "Audio" and getattr(feature, "decode", False):
        import datasets

        hf = hf.cast_column(audio_column, datasets.Audio(decode=False))

    name = name or (getattr(getattr(hf, "info", None), "dataset_name", None) or "hf")
    other = hf.remove_columns([audio_column]).to_dict() if len(columns) > 1 else {}
    n = len(hf)
    utterances = []
    for i in range(n):
        uid = str(other[id_column][i]) if id_column else f"{name}-{i:06d}"
        text = other[text_column][i]
        if not isinstance(text, str):
            raise DatasetError(f"row {i}: text column {text_column!r} holds {text!r:.60}, not a string")
        meta = {
            k: v[i]
            for k, v in other.items()
            if k not in (text_column, id_column, sr_column) and isinstance(v[i], (str, int, float, bool))
        }
        loader = _hf_row_loader(hf, i, audio_column, sampling_rate, sr_column)
        duration = None
        if compute_durations:
            duration = len(loader()) / SAMPLE_RATE
        utterances.append(Utterance(id=uid, audio=None, text=text, duration=duration, meta=meta, _array_loader=loader))
    return Dataset(utterances, name=name)


def _hf_row_loader(hf: Any, i: int, column: str, sampling_rate: int | None, sr_column: str | None):
    def load() -> np.ndarray:
        row = hf[i]
        sr = sampling_rate if sampling_rate is not None else (row[sr_column] if sr_column else None)
        return _decode_hf_audio(row[column], sr, f"row {i}, column {column!r}")

    return load


def _decode_hf_audio(value: Any, sr: int | None, where: str) -> np.ndarray:
    from asr_lab.core.audio import load_audio

    if isinstance(value, Mapping):
        if value.get("array") is not None:
            rate = value.get("sampling_rate", sr)
            if rate is None:
                raise DatasetError(
                    f"{where}: audio array without 'sampling_rate'; pass sampling_rate=16000 (or the rate)"
                )
            return load_audio(np.asarray(value["array"], dtype=np.float32), sr=int(rate))
        if value.get("bytes"):
            import io

            import soundfile as sf

            samples, rate = sf.read(io.BytesIO(value["bytes"]), dtype="float32")
            return load_audio(samples, sr=int(rate))
        if value.get("path"):
            return load_audio(value["path"])
        raise DatasetError(f"{where}: audio dict has no 'array', 'bytes' or 'path' (keys: {sorted(value)})")
    if isinstance(value, (str, os.PathLike)):
        return load_audio(value)
    if hasattr(value, "get_all_samples"):  # a torchcodec AudioDecoder
        samples = value.get_all_samples()
        return load_audio(np.asarray(samples.data).T, sr=int(samples.sample_rate))
    if isinstance(value, (list, tuple, np.ndarray)):
        if sr is None:
            raise DatasetError(
                f"{where}: raw samples without a rate; pass sampling_rate=<Hz> to load_dataset or add a "
                f"'sampling_rate' column"
            )
        return load_audio(np.asarray(value, dtype=np.float32), sr=int(sr))
    raise DatasetError(
        f"{where}: cannot read audio from {type(value).__name__}; expected {{'array', 'sampling_rate'}}, "
        f"{{'bytes'|'path'}}, a file path, or a list of samples"
    )
