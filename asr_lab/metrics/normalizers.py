"""Text normalisers: the maintained one the field uses, asr_lab's own, or none — by name or as callables.

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

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from asr_lab.metrics.word_alignment import _check_text, _show

__all__ = [
    "DEFAULT_NORMALIZER",
    "ENGLISH_NORMALIZER",
    "NORMALIZER_NAMES",
    "NamedNormalizer",
    "Normalize",
    "TextNormalizer",
    "UnknownNormalizerError",
    "get_normalizer",
    "normalize_text",
    "normalizer_name",
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

Normalize = Callable[[str], str] | str | None
"""What ``normalize=`` accepts: a callable ``str -> str`` (e.g. a :class:`TextNormalizer`),
a normaliser's name (``"whisper-english"``, ``"whisper-basic"``, ``"basic"``, ``"none"``;
:mod:`asr_lab.metrics.normalizers`), or ``None`` to compare the texts as they are, only
split on whitespace."""


def normalize_text(text: str, normalize: Normalize = ENGLISH_NORMALIZER) -> str:
    """Apply ``normalize`` to ``text`` and collapse whitespace; checks both arguments.

    ``normalize=None`` (or ``"none"``) only collapses whitespace; a name from
    :data:`asr_lab.metrics.normalizers.NORMALIZER_NAMES` picks that normaliser. Raises a clear error if ``normalize`` is not
    callable or does not return a ``str``.
    """
    text = _check_text(text, "text")
    if isinstance(normalize, str):  # a name: "whisper-english", "whisper-basic", "basic", "none"
        normalize = get_normalizer(normalize)
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
