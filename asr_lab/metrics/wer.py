"""Word and character error rates, the text normaliser they use, and a corpus accumulator.

* :func:`wer` / :func:`cer` — one utterance; jiwer does the alignment (imported on first
  call, so ``import asr_lab.metrics`` stays light).
* :class:`ErrorCounts` — substitutions, deletions, insertions, hits and the rate.
* :class:`TextNormalizer`, :data:`ENGLISH_NORMALIZER`, :func:`normalize_text` — re-exported
  from :mod:`asr_lab.metrics.normalizers`, where every normaliser lives (by name too).
* :class:`WERAccumulator` — corpus error rate = summed errors / summed reference length.

Arguments are keyword-only (``reference=``, ``hypothesis=``) because the libraries the field
uses disagree on the order: jiwer takes ``(reference, hypothesis)``, torchmetrics takes
``(preds, target)``; Hugging Face ``evaluate`` names them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from asr_lab.metrics.normalizers import ENGLISH_NORMALIZER, Normalize, TextNormalizer, normalize_text
from asr_lab.metrics.word_alignment import _check_text, _show

__all__ = [
    "ENGLISH_NORMALIZER",
    "ErrorCounts",
    "Normalize",
    "TextNormalizer",
    "WERAccumulator",
    "cer",
    "normalize_text",
    "wer",
]

@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations between a reference and a hypothesis, and the error rate they give.

    ``unit`` is ``"word"`` (WER) or ``"char"`` (CER).

    Formula
        ``reference_length N = hits + substitutions + deletions``;
        ``hypothesis_length = hits + substitutions + insertions``;
        ``errors = S + D + I``; ``rate = errors / N``.

    Empty reference (N = 0)
        ``rate`` is the IEEE quotient, as torchmetrics computes it (tensor ``errors / total``):
        ``inf`` when the hypothesis has words (all insertions), ``nan`` when it is empty too.
        The counts stay exact, so :class:`WERAccumulator` is unaffected. (jiwer 4 instead
        reports the number of insertions as the "rate", and 0 for two empty strings; jiwer 3
        raises.)

    Counts add: ``a + b`` sums each count (the corpus rule of :class:`WERAccumulator`).
    """

    substitutions: int
    deletions: int
    insertions: int
    hits: int
    unit: Literal["word", "char"] = "word"

    def __post_init__(self) -> None:
        for name in ("substitutions", "deletions", "insertions", "hits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {_show(value)}")
        if self.unit not in ("word", "char"):
            raise ValueError(f"unit must be 'word' or 'char', got {_show(self.unit)}")

    @property
    def reference_length(self) -> int:
        """Words (or characters) in the normalised reference: H + S + D."""
        return self.hits + self.substitutions + self.deletions

    @property
    def hypothesis_length(self) -> int:
        """Words (or characters) in the normalised hypothesis: H + S + I."""
        return self.hits + self.substitutions + self.insertions

    @property
    def errors(self) -> int:
        """S + D + I."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """errors / reference_length; ``inf`` (errors > 0) or ``nan`` (no errors) when the reference is empty."""
        if self.reference_length == 0:
            return math.inf if self.errors else math.nan
        return self.errors / self.reference_length

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        if not isinstance(other, ErrorCounts):
            return NotImplemented
        if other.unit != self.unit:
            raise ValueError(f"cannot add {self.unit} counts to {other.unit} counts; keep WER and CER apart")
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.hits + other.hits,
            self.unit,
        )

    def to_dict(self) -> dict[str, Any]:
        """Counts, lengths, errors and rate as a flat dict (one DataFrame row)."""
        return {
            "unit": self.unit,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "hits": self.hits,
            "reference_length": self.reference_length,
            "hypothesis_length": self.hypothesis_length,
            "errors": self.errors,
            "rate": self.rate,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorCounts:
        """Inverse of :meth:`to_dict` (derived keys are ignored)."""
        return cls(
            substitutions=int(data["substitutions"]),
            deletions=int(data["deletions"]),
            insertions=int(data["insertions"]),
            hits=int(data["hits"]),
            unit=data.get("unit", "word"),
        )


def _counts(reference: str, hypothesis: str, unit: Literal["word", "char"]) -> ErrorCounts:
    """Align two normalised strings with jiwer; empty sides are counted here (jiwer 3 rejects them)."""
    if unit == "word":
        ref_len, hyp_len = len(reference.split()), len(hypothesis.split())
    else:
        ref_len, hyp_len = len(reference), len(hypothesis)
    if ref_len == 0 or hyp_len == 0:
        return ErrorCounts(substitutions=0, deletions=ref_len, insertions=hyp_len, hits=0, unit=unit)
    import jiwer  # lazy: keeps `import asr_lab.metrics` free of jiwer (and rapidfuzz)

    out = (
        jiwer.process_words(reference, hypothesis)
        if unit == "word"
        else jiwer.process_characters(reference, hypothesis)
    )
    return ErrorCounts(
        substitutions=int(out.substitutions),
        deletions=int(out.deletions),
        insertions=int(out.insertions),
        hits=int(out.hits),
        unit=unit,
    )


def wer(*, reference: str, hypothesis: str, normalize: Normalize = ENGLISH_NORMALIZER) -> ErrorCounts:
    """Word error rate of one hypothesis against one reference.

    What
        Both texts are normalised (``normalize``, default :data:`ENGLISH_NORMALIZER`; ``None``
        = only split on whitespace), split into words, and aligned with the minimum number
        of edits by jiwer (``jiwer.process_words``).

    Formula
        ``WER = (S + D + I) / N``, N = words in the reference = H + S + D
        (:class:`ErrorCounts`; empty reference → ``inf`` or ``nan``, see there).

    Source
        NIST sclite's definition; computed with jiwer (https://github.com/jitsi/jiwer).
        For a corpus, sum the counts (:class:`WERAccumulator`), never average the rates.

    Example
        >>> wer(reference="the cat sat", hypothesis="the cat sat down").rate
        0.3333333333333333
    """
    ref = normalize_text(_check_text(reference, "reference"), normalize)
    hyp = normalize_text(_check_text(hypothesis, "hypothesis"), normalize)
    return _counts(ref, hyp, "word")


def cer(*, reference: str, hypothesis: str, normalize: Normalize = ENGLISH_NORMALIZER) -> ErrorCounts:
    """Character error rate of one hypothesis against one reference.

    What
        Both texts are normalised as for :func:`wer` (whitespace collapsed to single
        spaces), then aligned character by character by jiwer (``jiwer.process_characters``).
        The single spaces between words count as characters, as in jiwer.

    Formula
        ``CER = (S + D + I) / N``, N = characters of the normalised reference, spaces
        included (empty reference → ``inf`` or ``nan``, see :class:`ErrorCounts`).

    Source
        jiwer's CER (https://github.com/jitsi/jiwer); corpus CER = summed counts
        (:class:`WERAccumulator` accepts char counts too).
    """
    ref = normalize_text(_check_text(reference, "reference"), normalize)
    hyp = normalize_text(_check_text(hypothesis, "hypothesis"), normalize)
    return _counts(ref, hyp, "char")


class WERAccumulator:
    """Corpus-level WER (or CER): sums the edit counts of many utterances.

    Formula
        ``corpus rate = Σ(S + D + I) / Σ N`` over utterances — never the mean of the
        per-utterance rates, which over-weights short utterances. Source: torchmetrics'
        ``WordErrorRate`` (it accumulates ``errors`` and ``total`` and divides at
        ``compute()``).

    Use
        >>> acc = WERAccumulator()
        >>> _ = acc.update(reference="a b c d", hypothesis="a b c d")
        >>> _ = acc.update(reference="e", hypothesis="f")
        >>> acc.compute().rate   # 1 error / 5 words, not mean(0, 1) = 0.5
        0.2

    ``unit="char"`` accumulates CER instead. ``add(counts)`` takes an :class:`ErrorCounts`
    computed elsewhere (e.g. re-read from a results file with ``ErrorCounts.from_dict``).
    """

    def __init__(self, *, unit: Literal["word", "char"] = "word", normalize: Normalize = ENGLISH_NORMALIZER) -> None:
        if unit not in ("word", "char"):
            raise ValueError(f"unit must be 'word' or 'char', got {_show(unit)}")
        self.unit = unit
        self.normalize = normalize
        self.reset()

    def reset(self) -> None:
        """Forget every utterance added so far."""
        self._total = ErrorCounts(0, 0, 0, 0, self.unit)
        self._utterances = 0

    def update(self, *, reference: str, hypothesis: str) -> ErrorCounts:
        """Score one utterance (with this accumulator's ``normalize``), add it, and return its counts."""
        fn = wer if self.unit == "word" else cer
        counts = fn(reference=reference, hypothesis=hypothesis, normalize=self.normalize)
        self.add(counts)
        return counts

    def add(self, counts: ErrorCounts) -> None:
        """Add counts computed elsewhere; their unit must match this accumulator's."""
        if not isinstance(counts, ErrorCounts):
            raise TypeError(
                f"add() takes an ErrorCounts, got {type(counts).__name__} {_show(counts)}; "
                "use update(reference=..., hypothesis=...) for raw texts"
            )
        self._total = self._total + counts
        self._utterances += 1

    def __len__(self) -> int:
        return self._utterances

    def compute(self) -> ErrorCounts:
        """Summed counts; ``.rate`` is the corpus error rate (``nan`` before anything is added)."""
        return self._total
