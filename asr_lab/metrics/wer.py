"""Word and character error rates, the text normaliser they use, and a corpus accumulator.

* :func:`wer` / :func:`cer` — one utterance; jiwer does the alignment (imported on first
  call, so ``import asr_lab.metrics`` stays light).
* :class:`ErrorCounts` — substitutions, deletions, insertions, hits and the rate.
* :class:`TextNormalizer` — the configurable normaliser; :data:`ENGLISH_NORMALIZER` is the
  default used by every metric in this package.
* :class:`WERAccumulator` — corpus error rate = summed errors / summed reference length.

Arguments are keyword-only (``reference=``, ``hypothesis=``) because the libraries the field
uses disagree on the order: jiwer takes ``(reference, hypothesis)``, torchmetrics takes
``(preds, target)``; Hugging Face ``evaluate`` names them.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

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

_APOSTROPHES = {"'", "\u2019", "\u02bc"}  # ASCII, right single quotation mark, modifier letter apostrophe
_NUMBER_MARKS = {".", ","}


@dataclass(frozen=True)
class TextNormalizer:
    """A text normaliser for scoring: a callable ``str -> str`` made of small, optional steps.

    What (in this order)
        1. Unicode normal form ``unicode_form`` (NFKC by default: full-width letters,
           ligatures and compatibility characters become their plain forms).
        2. ``lowercase``: ``str.lower()``.
        3. ``remove_punctuation``: every Unicode punctuation character (category ``P*``)
           becomes a space, so ``"well-known"`` → ``"well known"`` and ``"end.Next"`` →
           ``"end next"``. Exceptions: with ``keep_apostrophes`` an apostrophe (``'``,
           ``’`` or ``ʼ``) *between two letters or digits* is kept as ``'``
           (``"don't"``, ``"o'clock"``); quotes and possessive-plural apostrophes
           (``"dogs'"``) go. With ``keep_number_punctuation`` a ``.`` or ``,`` between two
           digits is kept (``"3.5"``, ``"1,000"``). Symbols (category ``S*``: ``$``, ``+``,
           ``€``) are not punctuation and stay; ``%``, ``#``, ``&``, ``@`` are (``Po``) and go.
        4. ``replacements``: whole-word substitutions ``(("okay", "ok"), ...)``.
        5. ``extra_steps``: any further callables ``str -> str``, in order (see :meth:`then`).
        6. Whitespace is always collapsed to single spaces and stripped.

        Numbers are left as they are: ``"twenty"`` and ``"20"`` stay different words.

    Source
        Punctuation to space, as OpenAI Whisper's ``BasicTextNormalizer``
        (openai/whisper, ``whisper/normalizers/basic.py``); jiwer's ``RemovePunctuation``
        deletes it instead (``"well-known"`` → ``"wellknown"``). Own implementation.

    Compose
        ``ENGLISH_NORMALIZER.then(my_step)`` returns a new normaliser with ``my_step``
        appended; ``replace(ENGLISH_NORMALIZER, lowercase=False)`` (``dataclasses.replace``)
        changes one option.
    """

    lowercase: bool = True
    remove_punctuation: bool = True
    keep_apostrophes: bool = True
    keep_number_punctuation: bool = True
    unicode_form: Literal["NFC", "NFKC", "NFD", "NFKD"] | None = "NFKC"
    replacements: tuple[tuple[str, str], ...] = ()
    extra_steps: tuple[Callable[[str], str], ...] = ()

    def __post_init__(self) -> None:
        if self.unicode_form not in (None, "NFC", "NFKC", "NFD", "NFKD"):
            raise ValueError(
                f"unicode_form must be one of None, 'NFC', 'NFKC', 'NFD', 'NFKD', got {_show(self.unicode_form)}"
            )
        for k, pair in enumerate(self.replacements):
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
                raise TypeError(
                    f"replacements[{k}] must be a (word, replacement) tuple of two str, got {_show(pair)}; "
                    "e.g. replacements=(('okay', 'ok'),)"
                )
        for k, step in enumerate(self.extra_steps):
            if not callable(step):
                raise TypeError(f"extra_steps[{k}] must be a callable str -> str, got {_show(step)}")

    def then(self, step: Callable[[str], str]) -> TextNormalizer:
        """A copy of this normaliser with ``step`` (a callable ``str -> str``) appended."""
        if not callable(step):
            raise TypeError(f"step must be a callable str -> str, got {_show(step)}")
        return replace(self, extra_steps=(*self.extra_steps, step))

    def __call__(self, text: str) -> str:
        text = _check_text(text, "text")
        if self.unicode_form is not None:
            text = unicodedata.normalize(self.unicode_form, text)
        if self.lowercase:
            text = text.lower()
        if self.remove_punctuation:
            text = self._strip_punctuation(text)
        if self.replacements:
            table = dict(self.replacements)
            text = " ".join(table.get(w, w) for w in text.split())
        for k, step in enumerate(self.extra_steps):
            text = step(text)
            if not isinstance(text, str):
                raise TypeError(
                    f"extra_steps[{k}] ({_show(step)}) returned {type(text).__name__}, not str; "
                    "a normalising step must map str -> str"
                )
        return " ".join(text.split())

    def _strip_punctuation(self, text: str) -> str:
        out = []
        last = len(text) - 1
        for k, ch in enumerate(text):
            if not unicodedata.category(ch).startswith("P"):
                out.append(ch)
                continue
            before = text[k - 1] if k > 0 else " "
            after = text[k + 1] if k < last else " "
            if self.keep_apostrophes and ch in _APOSTROPHES and before.isalnum() and after.isalnum():
                out.append("'")
            elif self.keep_number_punctuation and ch in _NUMBER_MARKS and before.isdigit() and after.isdigit():
                out.append(ch)
            else:
                out.append(" ")
        return "".join(out)


ENGLISH_NORMALIZER = TextNormalizer()
"""The default normaliser of every metric: NFKC, lower-case, punctuation to spaces (keeping
intra-word apostrophes and digit-internal ``.``/``,``), whitespace collapsed."""

Normalize = Callable[[str], str] | None
"""What ``normalize=`` accepts: a callable ``str -> str`` (e.g. a :class:`TextNormalizer`),
or ``None`` to compare the texts as they are, only split on whitespace."""


def normalize_text(text: str, normalize: Normalize = ENGLISH_NORMALIZER) -> str:
    """Apply ``normalize`` to ``text`` and collapse whitespace; checks both arguments.

    ``normalize=None`` only collapses whitespace. Raises a clear error if ``normalize`` is not
    callable or does not return a ``str``.
    """
    text = _check_text(text, "text")
    if normalize is None:
        return " ".join(text.split())
    if not callable(normalize):
        raise TypeError(
            f"normalize must be a callable str -> str (e.g. asr_lab.metrics.TextNormalizer()) or None, "
            f"got {type(normalize).__name__} {_show(normalize)}"
        )
    out = normalize(text)
    if not isinstance(out, str):
        raise TypeError(
            f"normalize ({_show(normalize)}) returned {type(out).__name__}, not str; "
            "pass a callable that maps one str to one str (a jiwer.Compose that ends in "
            "ReduceToListOfListOfWords returns lists: drop that last step)"
        )
    return " ".join(out.split())


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
