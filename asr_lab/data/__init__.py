"""Datasets for asr_lab: utterances and manifests, loaders, the synthetic builder, forced alignment.

* :mod:`~asr_lab.data.dataset` — :class:`Utterance`, :class:`Dataset`, :func:`load_dataset`
  (manifest JSONL, LibriSpeech folder, Common Voice TSV, Hugging Face ``datasets``).
* :mod:`~asr_lab.data.build` — :func:`build_utterances`, :func:`build_long_form`,
  :func:`build_mini` (``python -m asr_lab.data.build datasets/mini``).
* :mod:`~asr_lab.data.synth` — :func:`synthesize` with flite / espeak-ng.
* :mod:`~asr_lab.data.align` — :func:`align_words`, pocketsphinx forced alignment.

Names are resolved on first use (PEP 562), so ``import asr_lab.data`` loads nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asr_lab.core.lazy import lazy_exports

_EXPORTS = {
    "Utterance": "asr_lab.data.dataset",
    "Dataset": "asr_lab.data.dataset",
    "DatasetError": "asr_lab.data.dataset",
    "load_dataset": "asr_lab.data.dataset",
    "read_manifest": "asr_lab.data.dataset",
    "build_utterances": "asr_lab.data.build",
    "build_long_form": "asr_lab.data.build",
    "build_mini": "asr_lab.data.build",
    "align_dataset": "asr_lab.data.build",
    "dataset_info": "asr_lab.data.build",
    "synthesize": "asr_lab.data.synth",
    "available_voices": "asr_lab.data.synth",
    "align_words": "asr_lab.data.align",
}

__all__ = [
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


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS, also_listed=("align", "build", "dataset", "mini_sentences", "synth"))


if TYPE_CHECKING:  # pragma: no cover
    from asr_lab.data.align import align_words
    from asr_lab.data.build import (
        align_dataset,
        build_long_form,
        build_mini,
        build_utterances,
        dataset_info,
    )
    from asr_lab.data.dataset import Dataset, DatasetError, Utterance, load_dataset, read_manifest
    from asr_lab.data.synth import available_voices, synthesize
