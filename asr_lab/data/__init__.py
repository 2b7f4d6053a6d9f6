"""Datasets for asr_lab: utterances and manifests, loaders, the synthetic builder, forced alignment.

* :mod:`~asr_lab.data.dataset` — :class:`Utterance`, :class:`Dataset` and the manifest format
  (:func:`read_manifest`).
* :mod:`~asr_lab.data.recipes` — one module per corpus (librispeech, common_voice, hf,
  librivox, mini) and :func:`load_dataset`, which reads any of them (manifest JSONL,
  LibriSpeech folder, Common Voice TSV, Hugging Face ``datasets``, a recipe's name).
* :mod:`~asr_lab.data.build` — :func:`build_utterances`, :func:`build_long_form`: datasets
  synthesised from text; :func:`build_mini` is the mini recipe's
  (``python -m asr_lab.data.build datasets/mini``).
* :mod:`~asr_lab.data.synth` — :func:`synthesize` with flite / espeak-ng.
* :mod:`~asr_lab.data.forced_alignment` — :func:`align_words`, pocketsphinx forced alignment.
* :mod:`~asr_lab.data.synthesis_alignment` — word times of real speech by aligning it (DTW)
  with synthesised renderings of its transcript.

Names are resolved on first use (PEP 562), so ``import asr_lab.data`` loads nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asr_lab.core.lazy import lazy_exports

_EXPORTS = {
    "Utterance": "asr_lab.data.dataset",
    "Dataset": "asr_lab.data.dataset",
    "DatasetError": "asr_lab.data.dataset",
    "load_dataset": "asr_lab.data.recipes",
    "RECIPES": "asr_lab.data.recipes",
    "read_manifest": "asr_lab.data.dataset",
    "build_utterances": "asr_lab.data.build",
    "build_long_form": "asr_lab.data.build",
    "build_mini": "asr_lab.data.recipes.mini",
    "align_dataset": "asr_lab.data.build",
    "dataset_info": "asr_lab.data.build",
    "synthesize": "asr_lab.data.synth",
    "available_voices": "asr_lab.data.synth",
    "align_words": "asr_lab.data.forced_alignment",
}

__all__ = [
    "RECIPES",
    "Dataset",
    "DatasetError",
    "Utterance",
    "align_dataset",
    "align_words",
    "available_voices",
    "build_long_form",
    "build_mini",
    "build_utterances",
    "dataset_info",
    "load_dataset",
    "read_manifest",
    "synthesize",
]


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS, also_listed=("build", "dataset", "forced_alignment", "recipes", "synth", "synthesis_alignment"))


if TYPE_CHECKING:  # pragma: no cover
    from asr_lab.data.forced_alignment import align_words
    from asr_lab.data.build import align_dataset, build_long_form, build_utterances, dataset_info
    from asr_lab.data.dataset import Dataset, DatasetError, Utterance, read_manifest
    from asr_lab.data.recipes import RECIPES, load_dataset
    from asr_lab.data.recipes.mini import build_mini
    from asr_lab.data.synth import available_voices, synthesize
