"""Dataset recipes, one module per corpus, and :func:`load_dataset`, which picks the right one.

Every recipe module has the same shape (lhotse's): ``NAME``; ``prepare(..., out_dir) ->
Dataset``, an idempotent step that writes ``out_dir/manifest.jsonl`` (audio beside it when
the recipe makes or converts audio) and returns the dataset read back from it; and, for a
corpus readable where it lies, ``load(source, ...) -> Dataset`` and ``matches(source)``.
A recipe whose corpus has a fixed home sets ``DEFAULT_DIR`` (its bundled folder), so
``load_dataset(NAME)`` reads the manifest there.

* :mod:`~asr_lab.data.recipes.librispeech` — LibriSpeech-style folders;
* :mod:`~asr_lab.data.recipes.common_voice` — Common Voice ``.tsv`` splits;
* :mod:`~asr_lab.data.recipes.hf` — Hugging Face ``datasets``;
* :mod:`~asr_lab.data.recipes.librivox` — Debian's pocketsphinx-testdata recordings, timed
  by synthesis alignment (``datasets/librivox``);
* :mod:`~asr_lab.data.recipes.mini` — the synthetic mini set (``datasets/mini``);
* :mod:`~asr_lab.data.recipes.asterisk` — Debian's Asterisk prompts (24 min of one human
  voice), built on first use from the installed packages, timed by synthesis alignment.

A new corpus is one new module of that shape plus one line in :data:`RECIPES`.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from asr_lab.data.dataset import MANIFEST_NAME, Dataset, DatasetError, DatasetFileNotFoundError, read_manifest
from asr_lab.data.recipes import common_voice, hf, librispeech

__all__ = ["RECIPES", "RECIPE_SETS", "load_dataset", "recipe"]

RECIPES = {
    "librispeech": "asr_lab.data.recipes.librispeech",
    "common_voice": "asr_lab.data.recipes.common_voice",
    "hf": "asr_lab.data.recipes.hf",
    "librivox": "asr_lab.data.recipes.librivox",
    "mini": "asr_lab.data.recipes.mini",
    "asterisk": "asr_lab.data.recipes.asterisk",
}
"""Recipe name -> module. Register a corpus by adding its line here."""

RECIPE_SETS = {"asterisk-long": "asterisk", "asterisk-short": "asterisk"}
"""Further named sets a recipe makes (set name -> recipe name); that recipe's ``load_named`` returns them."""


def recipe(name: str) -> ModuleType:
    """The recipe module registered as ``name``; a :class:`DatasetError` listing the names otherwise."""
    module = RECIPES.get(name)
    if module is None:
        raise DatasetError(f"no dataset recipe named {name!r}; the recipes are: {', '.join(sorted(RECIPES))}")
    return importlib.import_module(module)


def _named(source: str, *, name: str | None, check_audio: bool) -> Dataset:
    module = recipe(RECIPE_SETS.get(source, source))
    if callable(getattr(module, "load_named", None)):  # a recipe that builds from the machine's packages on first use
        return module.load_named(source)
    home = getattr(module, "DEFAULT_DIR", None)
    if home is None:
        raise DatasetError(
            f"dataset recipe {source!r} reads a corpus you give it: load_dataset(path) with the corpus's folder or "
            f"file, or asr_lab.data.recipes.{source}.prepare(...) to write its manifest"
        )
    manifest = Path(home) / MANIFEST_NAME
    if not manifest.is_file():
        raise DatasetFileNotFoundError(
            f"dataset {source!r} is not built: no {os.fspath(manifest)!r} (looked up from {os.getcwd()}); build it with "
            f"asr_lab.data.recipes.{source}.prepare({home!r}), or give load_dataset the folder it is in"
        )
    return read_manifest(manifest, name=name or source, check_audio=check_audio)


def load_dataset(
    source: Any,
    *,
    name: str | None = None,
    text_column: str | None = None,
    audio_column: str = "audio",
    id_column: str | None = None,
    sampling_rate: int | None = None,
    split: str | None = None,
    check_audio: bool = True,
    compute_durations: bool = True,
) -> Dataset:
    """Load a dataset from whatever form it is in; the form is detected.

    ``source`` may be:

    * a folder holding ``manifest.jsonl`` (e.g. ``"datasets/mini"``), or a manifest
      ``.jsonl`` file: audio paths relative to the manifest's folder;
    * a LibriSpeech-style folder: ``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt``
      (lines ``<id> <TEXT>``) beside ``<id>.flac`` (found at any depth, so the
      ``LibriSpeech/`` root with several splits works too);
    * a Common Voice ``.tsv`` (columns ``path`` and ``sentence``) with its ``clips/``
      folder beside it; ``clip_durations.tsv`` is used for durations when present;
    * a Hugging Face ``datasets.Dataset`` (or a ``DatasetDict`` with ``split=``): the
      ``audio_column`` holds ``{"array", "sampling_rate"}``, an ``Audio`` feature, a
      path, or raw samples (then give ``sampling_rate=``); ``text_column`` defaults to the
      first of text, sentence, transcription, transcript, normalized_text; ``id_column``
      defaults to ``id`` when present, else ``<name>-<row>``. Audio stays in the HF
      dataset and is decoded when :meth:`Utterance.load_audio` is called;
    * a :class:`Dataset` (returned as is);
    * the name of a recipe in :data:`RECIPES` whose corpus has a known home (``"librivox"``,
      ``"mini"``): its manifest there (a path of that name, when one exists, wins); or one
      that builds on first use from installed packages: ``"asterisk"``, and its sets
      ``"asterisk-long"`` and ``"asterisk-short"`` (:data:`RECIPE_SETS`), built into
      ``~/.cache/asr_lab/datasets/asterisk`` (:mod:`~asr_lab.data.recipes.asterisk`).

    ``check_audio`` checks that every audio file exists (cheap, and it fails early with
    the path instead of in the middle of a comparison); ``compute_durations`` reads file
    headers (or decodes HF audio) for utterances whose duration is not recorded.
    """
    if isinstance(source, Dataset):
        return source
    if hf.matches(source):
        return hf.load(
            source,
            name=name,
            text_column=text_column,
            audio_column=audio_column,
            id_column=id_column,
            sampling_rate=sampling_rate,
            split=split,
            compute_durations=compute_durations,
        )
    if isinstance(source, str) and (source in RECIPES or source in RECIPE_SETS) and not Path(source).exists():
        return _named(source, name=name, check_audio=check_audio)
    if not isinstance(source, (str, os.PathLike)):
        raise DatasetError(
            f"cannot load a dataset from {type(source).__name__} ({source!r:.60}); give a folder with "
            f"{MANIFEST_NAME}, a manifest .jsonl, a LibriSpeech folder, a Common Voice .tsv, or a "
            f"Hugging Face datasets.Dataset"
        )
    path = Path(source)
    if not path.exists():
        raise DatasetFileNotFoundError(
            f"dataset source {os.fspath(source)!r} does not exist (absolute: {path.resolve()}); give a folder with "
            f"{MANIFEST_NAME}, a manifest .jsonl, a LibriSpeech folder or a Common Voice .tsv — the bundled "
            f"set is 'datasets/mini' (rebuild it with `python -m asr_lab.data.build datasets/mini`); or a set's name: "
            f"{', '.join(sorted([*RECIPES, *RECIPE_SETS]))}"
        )
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            return read_manifest(path / MANIFEST_NAME, name=name, check_audio=check_audio)
        if librispeech.matches(path):
            return librispeech.load(path, name=name, compute_durations=compute_durations)
        tsvs = sorted(p.name for p in path.glob("*.tsv"))
        manifests = sorted(p.name for p in path.glob("*.jsonl"))
        found = ""
        if tsvs:
            found += (
                f"; it holds TSV files ({', '.join(tsvs[:5])}): pass one of them, e.g. {os.fspath(path / tsvs[0])!r}"
            )
        if manifests:
            found += f"; it holds JSONL files ({', '.join(manifests[:5])}): pass one of them as the manifest"
        raise DatasetError(
            f"folder {os.fspath(source)!r} is not a dataset this loader knows: no {MANIFEST_NAME} in it and no "
            f"LibriSpeech transcripts (<speaker>/<chapter>/*.trans.txt){found}. Build a manifest with "
            f"asr_lab.data.build_utterances(...) or Dataset(...).to_manifest(folder)"
        )
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return read_manifest(path, name=name, check_audio=check_audio)
    if suffix == ".tsv":
        return common_voice.load(path, name=name, check_audio=check_audio, compute_durations=compute_durations)
    raise DatasetError(
        f"file {os.fspath(source)!r} has an unknown dataset format ({suffix or 'no extension'}); allowed: a manifest "
        f".jsonl, a Common Voice .tsv, or a folder (manifest.jsonl inside, or LibriSpeech layout). To use a single "
        f"audio file, build Dataset([Utterance(id='x', audio=path, text='...')])"
    )
