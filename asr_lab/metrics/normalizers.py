"""Text normalisers by name: the maintained one the field uses, asr_lab's basic one, or none.

A WER is only comparable with another computed under the same normalisation, so every
WER asr_lab reports names the normaliser that produced it. The names:

``"whisper-english"`` (default for English)
    OpenAI Whisper's ``EnglishTextNormalizer`` from the ``whisper-normalizer`` package
    (a maintained copy of ``whisper/normalizers/english.py``), the normaliser of the
    Hugging Face Open ASR Leaderboard: lower case, punctuation and bracketed text out,
    fillers (``um``, ``uh``) out, contractions expanded (``don't`` → ``do not``), spelled
    numbers to digits (``five hundred`` → ``500``, ``twenty-eight point eight`` → ``28.8``),
    British spellings to American (``colour`` → ``color``), titles spelled out
    (``Mr.`` → ``mister``). It drops symbols it has no word for (``press *`` → ``press``).
``"whisper-basic"``
    Whisper's ``BasicTextNormalizer`` (the leaderboard's choice for other languages):
    lower case, punctuation and symbols to spaces, nothing else.
``"basic"``
    :data:`asr_lab.metrics.wer.ENGLISH_NORMALIZER`: NFKC, lower case, punctuation to
    spaces keeping intra-word apostrophes and digit-internal ``.``/``,``. Numbers stay
    as written. It was asr_lab's only normaliser before, and it stays the one that
    matches words for latencies: Whisper's English normaliser works on whole texts
    (``five hundred`` becomes one token ``500``), so it cannot normalise reference words
    one at a time.
``"none"``
    No normalisation, only whitespace split: the raw rate.

Source: https://pypi.org/project/whisper-normalizer/ (MIT), from openai/whisper
(``whisper/normalizers``); the Open ASR Leaderboard's ``normalizer/`` folder
(huggingface/open_asr_leaderboard) uses the same English normaliser.
"""

from __future__ import annotations

from typing import Callable

from asr_lab.metrics.wer import ENGLISH_NORMALIZER, Normalize

__all__ = ["DEFAULT_NORMALIZER", "NORMALIZER_NAMES", "NamedNormalizer", "UnknownNormalizerError", "get_normalizer", "normalizer_name"]

NORMALIZER_NAMES = ("whisper-english", "whisper-basic", "basic", "none")
"""The names :func:`get_normalizer` accepts."""
DEFAULT_NORMALIZER = "whisper-english"
"""The normaliser of every WER asr_lab reports unless told otherwise."""


class UnknownNormalizerError(ValueError, TypeError):
    """Neither a normaliser's name nor a callable (a TypeError too: what older code caught)."""


class NamedNormalizer:
    """A normaliser ``str -> str`` that knows its name (recorded beside each WER); built on first use."""

    def __init__(self, name: str, build: Callable[[], Callable[[str], str]]) -> None:
        self.name = name
        self._build = build
        self._fn: Callable[[str], str] | None = None

    def __call__(self, text: str) -> str:
        if self._fn is None:
            self._fn = self._build()
        return self._fn(text)

    def __repr__(self) -> str:
        return f"NamedNormalizer({self.name!r})"

    def __reduce__(self):  # picklable for worker processes: rebuilt from its name
        return (get_normalizer, (self.name,))


def _whisper(kind: str) -> Callable[[], Callable[[str], str]]:
    def build() -> Callable[[str], str]:
        try:
            if kind == "english":
                from whisper_normalizer.english import EnglishTextNormalizer as cls
            else:
                from whisper_normalizer.basic import BasicTextNormalizer as cls
        except ImportError as err:
            raise ImportError(
                f"the {kind!r} Whisper normaliser needs the whisper-normalizer package ({err}); "
                f"pip install 'whisper-normalizer>=0.1.15', or choose normalizer='basic'"
            ) from None
        return cls()

    return build


_NAMED = {
    "whisper-english": NamedNormalizer("whisper-english", _whisper("english")),
    "whisper-basic": NamedNormalizer("whisper-basic", _whisper("basic")),
    "basic": NamedNormalizer("basic", lambda: ENGLISH_NORMALIZER),
}


def get_normalizer(normalizer: str | Normalize = DEFAULT_NORMALIZER) -> Normalize:
    """The normaliser for a name in :data:`NORMALIZER_NAMES` (``"none"`` → ``None``); a callable is returned as is."""
    if normalizer is None or callable(normalizer):
        return normalizer
    if isinstance(normalizer, str):
        if normalizer == "none":
            return None
        if normalizer in _NAMED:
            return _NAMED[normalizer]
    raise UnknownNormalizerError(
        f"normalize must be a callable str -> str (e.g. asr_lab.metrics.TextNormalizer()) or a normaliser's name, "
        f"one of {', '.join(repr(n) for n in NORMALIZER_NAMES)}; got {normalizer!r}"
    )


def normalizer_name(normalizer: str | Normalize) -> str:
    """How a normaliser is named in results: its registered name, ``"none"``, ``"basic"``, or its repr."""
    if isinstance(normalizer, str):
        get_normalizer(normalizer)  # validates
        return normalizer
    if normalizer is None:
        return "none"
    if isinstance(normalizer, NamedNormalizer):
        return normalizer.name
    if normalizer is ENGLISH_NORMALIZER or normalizer == ENGLISH_NORMALIZER:
        return "basic"
    return f"custom: {normalizer!r}"[:120]
