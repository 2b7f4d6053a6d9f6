"""Metrics of streaming recognition: pure functions plus accumulators for corpus level.

* :mod:`~asr_lab.metrics.wer` — :func:`wer`, :func:`cer` (via jiwer, imported on first
  call), :class:`ErrorCounts`, :class:`TextNormalizer`, :class:`WERAccumulator`.
* :mod:`~asr_lab.metrics.latency` — per-word emission latency against the reference and
  against the engine's own timestamps, policy lag vs compute lag (computation-unaware vs
  -aware), first-word latency, finish delay, RTF; :class:`LatencyAccumulator`.
* :mod:`~asr_lab.metrics.stability` — normalized erasure, revisions and time-to-stable of
  the displayed text; :class:`StabilityAccumulator`.
* :mod:`~asr_lab.metrics.word_alignment` — the word aligner they share, and :class:`Summary`.
* :mod:`~asr_lab.metrics.simultaneous` — :func:`simuleval_metrics`: AL, LAAL, DAL, AP,
  StartOffset, EndOffset, YAAL, computation-unaware and -aware (SimulEval, OmniSTEval).
* :mod:`~asr_lab.metrics.decomposition` — :func:`latency_decomposition`: each word's latency
  split into recognition, policy hold and compute & queueing.
* :mod:`~asr_lab.metrics.bootstrap` — :func:`bootstrap_interval`, :func:`paired_bootstrap`:
  confidence intervals and paired significance, resampling utterances.
* :mod:`~asr_lab.metrics.score` — :func:`score` (also ``asr_lab.score``): all of the above
  for one replay trace against one reference, as a :class:`Scores` record.

Every function takes keyword arguments only (``reference=``, ``hypothesis=``) and documents
its formula and source. Corpus numbers come from accumulators that sum counts or pool words,
never from means of per-utterance rates.
"""

from asr_lab.metrics.word_alignment import AlignedPair, Summary, align_words, summarize
from asr_lab.metrics.bootstrap import Interval, Significance, bootstrap_interval, paired_bootstrap
from asr_lab.metrics.decomposition import Decomposition, latency_decomposition
from asr_lab.metrics.latency import (
    CLOCKS,
    LatencyAccumulator,
    LatencyReport,
    WordLatency,
    finish_delay,
    latency_report,
    real_time_factor,
    word_latencies,
)
from asr_lab.metrics.score import Scores, score
from asr_lab.metrics.simultaneous import SIMULEVAL_KEYS, WordDelays, simuleval_metrics, word_delays
from asr_lab.metrics.stability import (
    StabilityAccumulator,
    StabilityReport,
    WordStability,
    display_snapshots,
    displayed_words,
    erased_words,
    stability_report,
)
from asr_lab.metrics.wer import (
    ENGLISH_NORMALIZER,
    ErrorCounts,
    Normalize,
    TextNormalizer,
    WERAccumulator,
    cer,
    normalize_text,
    wer,
)

__all__ = [
    "CLOCKS",
    "ENGLISH_NORMALIZER",
    "AlignedPair",
    "Decomposition",
    "ErrorCounts",
    "Interval",
    "LatencyAccumulator",
    "LatencyReport",
    "Normalize",
    "SIMULEVAL_KEYS",
    "Scores",
    "Significance",
    "StabilityAccumulator",
    "StabilityReport",
    "Summary",
    "TextNormalizer",
    "WERAccumulator",
    "WordLatency",
    "WordDelays",
    "WordStability",
    "align_words",
    "bootstrap_interval",
    "cer",
    "display_snapshots",
    "displayed_words",
    "erased_words",
    "finish_delay",
    "latency_decomposition",
    "latency_report",
    "normalize_text",
    "paired_bootstrap",
    "real_time_factor",
    "score",
    "simuleval_metrics",
    "stability_report",
    "summarize",
    "wer",
    "word_delays",
    "word_latencies",
]
