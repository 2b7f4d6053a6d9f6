"""Reference word timings by forced alignment of a known text with pocketsphinx.

Latency metrics need to know when each reference word was spoken. For speech whose text
is known (synthetic speech, read corpora) pocketsphinx can find it: ``set_align_text``
turns its search into a single path through the given words, and ``seg()`` then gives
each word's frames (1/100 s, end inclusive). Only the word sequence is constrained, so
pauses between words are found too and do not count as word time.

Words must be in the pronunciation dictionary (cmudict for the bundled en-us model);
an unknown word is an :class:`OutOfVocabularyError` that lists them, because aligning
around a silently dropped word would shift every timing after it.
"""

from __future__ import annotations

import re
import threading
from typing import Optional, Union

import numpy as np

__all__ = ["Aligner", "AlignmentError", "OutOfVocabularyError", "align_words", "alignment_tokens"]

Word = tuple[float, float, str]

PAD_SEC = 0.3
"""Silence added at both ends before aligning. Without it the first and last words absorb a
short leading or trailing pause (the silence model needs a few frames): on flite speech the
edges were off by up to 0.23 s, with it by at most 0.07 s against flite's own phone timings."""

_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z0-9]+)*(?:-[a-z0-9]+(?:['’][a-z0-9]+)*)*")


class AlignmentError(ValueError):
    """The text could not be aligned to the audio (wrong text, wrong audio, or too noisy)."""


class OutOfVocabularyError(AlignmentError):
    """Words of the text are not in the aligner's pronunciation dictionary; ``.words`` lists them."""

    def __init__(self, message: str, words: list[str]) -> None:
        super().__init__(message)
        self.words = words


def alignment_tokens(text: str) -> list[str]:
    """The words of ``text`` as the aligner sees them: lower-case, punctuation removed.

    Apostrophes inside words stay (``don't``), curly ones become straight; hyphenated
    words stay whole here (:class:`Aligner` splits them if the dictionary lacks the
    compound). ``"Hello, World!"`` -> ``["hello", "world"]``.
    """
    return [t.replace("’", "'") for t in _TOKEN.findall(text.lower())]


class Aligner:
    """Forced aligner holding one pocketsphinx decoder (created once, ~0.1 s; reuse it for many files).

    ``hmm`` and ``dictionary`` default to the US English model bundled with pocketsphinx.
    ``extra_words`` adds pronunciations, e.g. ``{"asr": "EY EH S AA R"}`` (ARPAbet phones
    of the acoustic model). Not thread-safe: one aligner per thread.
    """

    def __init__(
        self,
        hmm: Optional[str] = None,
        dictionary: Optional[str] = None,
        extra_words: Optional[dict[str, str]] = None,
    ) -> None:
        import pocketsphinx

        from asr_lab.backends.pocketsphinx import bundled_model

        model = bundled_model()
        # no language model: alignment never uses it, and loading it costs time and memory
        self.decoder = pocketsphinx.Decoder(
            hmm=hmm or model["hmm"], dict=dictionary or model["dict"], lm=None, samprate=16000, loglevel="FATAL"
        )
        for word, phones in (extra_words or {}).items():
            self.add_word(word, phones)

    def add_word(self, word: str, phones: str) -> None:
        """Teach the aligner a pronunciation: ``add_word("asr", "EY EH S AA R")``."""
        try:
            self.decoder.add_word(word.lower(), phones, True)
        except RuntimeError as exc:
            raise ValueError(
                f"cannot add {word!r} with phones {phones!r}: {exc}; use the acoustic model's phone set "
                f"(ARPAbet for en-us, e.g. 'HH AH L OW')"
            ) from None

    def words_for(self, text: str) -> list[str]:
        """Dictionary words for ``text``; raises :class:`OutOfVocabularyError` listing unknown ones."""
        words: list[str] = []
        unknown: list[str] = []
        for token in alignment_tokens(text):
            if self.decoder.lookup_word(token) is not None:
                words.append(token)
            elif "-" in token and all(self.decoder.lookup_word(p) is not None for p in token.split("-")):
                words.extend(token.split("-"))
            else:
                unknown.append(token)
        if unknown:
            raise OutOfVocabularyError(
                f"not in the pronunciation dictionary: {', '.join(repr(w) for w in dict.fromkeys(unknown))}. "
                f"Write numbers and abbreviations as spoken words ('seven', 'mister'), rephrase, or give their "
                f"phones with Aligner(extra_words={{'word': 'W ER D'}})",
                list(dict.fromkeys(unknown)),
            )
        if not words:
            raise AlignmentError(f"the text {text!r:.80} has no words to align")
        return words

    def align(self, audio: Union[np.ndarray, str], text: str) -> list[Word]:
        """``[(start, end, word), ...]`` in seconds from the start of ``audio`` for every word of ``text``.

        ``audio`` is float32 16 kHz mono (or a file, read with :func:`asr_lab.load_audio`).
        Words come back lower-cased, without punctuation, in the order of the text.
        """
        from asr_lab.backends.pocketsphinx import clean_words
        from asr_lab.core.audio import load_audio, to_int16

        samples = load_audio(audio)
        words = self.words_for(text)
        pad = np.zeros(int(PAD_SEC * 16000), dtype=np.int16)
        pcm = np.concatenate([pad, to_int16(samples), pad])
        try:
            self.decoder.set_align_text(" ".join(words))
        except RuntimeError as exc:
            raise AlignmentError(f"pocketsphinx could not set up the alignment of {text!r:.80}: {exc}") from None
        self.decoder.reinit_feat()  # fresh feature statistics: the same input always aligns the same way
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), full_utt=True)
        self.decoder.end_utt()
        duration = len(samples) / 16000
        aligned = [
            (max(0.0, min(start - PAD_SEC, duration)), max(0.0, min(end - PAD_SEC, duration)), word)
            for start, end, word in clean_words(self.decoder.seg())
        ]
        aligned = [(round(start, 6), round(end, 6), word) for start, end, word in aligned]
        if [w[2] for w in aligned] != words:
            raise AlignmentError(
                f"could not align {len(words)} words to {duration:.2f} s of audio (got {len(aligned)}): "
                f"check that the audio says {text!r:.80}, is 16 kHz speech, and is not cut short"
            )
        return aligned


_default: Optional[Aligner] = None
_default_lock = threading.Lock()


def align_words(audio: Union[np.ndarray, str], text: str, *, aligner: Optional[Aligner] = None) -> list[Word]:
    """Forced-align ``text`` to ``audio``: ``[(start, end, word), ...]`` seconds, one per word of the text.

    Uses ``aligner`` or a shared :class:`Aligner` on the bundled en-us model (created on
    first use, calls serialised). Raises :class:`OutOfVocabularyError` for words the
    dictionary lacks and :class:`AlignmentError` when the audio does not fit the text.
    """
    global _default
    if aligner is not None:
        return aligner.align(audio, text)
    with _default_lock:
        if _default is None:
            _default = Aligner()
        return _default.align(audio, text)
