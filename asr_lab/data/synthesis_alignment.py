"""Word timings for real speech without a recogniser: align it to synthetic renderings by DTW.

Reference word timings must not come from an engine that is then scored on them
(pocketsphinx's forced alignment favours pocketsphinx; Whisper's word timestamps favour
Whisper). This aligner uses neither. For a recording with a known transcript it

1. has flite speak the transcript in several voices; flite reports when each phone ends
   (``-psdur``) and which phones each word has (its lexicon, ``-ps`` per word), so each
   synthetic word's start and end are known exactly (:func:`flite_words`);
2. turns both signals into MFCCs (25 ms windows, 10 ms hop, 13 coefficients with deltas,
   mean and variance normalised per utterance) and finds the cheapest monotonic path
   between them by dynamic time warping (``librosa.sequence.dtw``, cosine distance);
3. maps each synthetic word boundary through the path to the real recording (a start to
   the first real frame paired with the synthetic start frame, an end to the last frame
   paired with the synthetic end frame) and takes the median over the voices.

Accuracy is measured, not assumed: on synthetic speech, where truth is known, aligning one
flite voice by the others gives boundary errors the module's tests bound; on real LibriVox
speech, its boundaries are compared with pocketsphinx's forced alignment as a second
opinion (the bundled ``datasets/librivox`` README states both figures).
"""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from asr_lab.data.synth import CLEAR_FLITE_VOICES, SynthesisError, _program, _read_16k

__all__ = ["DTWAlignment", "align_by_synthesis", "boundary_differences", "flite_words"]

Word = tuple[float, float, str]
SAMPLE_RATE = 16000
HOP = 160  # 10 ms frames
_WORD = re.compile(r"[a-z0-9']+")


@dataclass
class DTWAlignment:
    """Word timings of one recording: the median over voices, and each voice's own."""

    words: list[Word]
    per_voice: dict[str, list[Word]]

    @property
    def spread(self) -> float:
        """Median over boundaries of the largest disagreement between voices (seconds): the aligner's own doubt."""
        if len(self.per_voice) < 2:
            return 0.0
        starts = np.array([[w[0] for w in ws] for ws in self.per_voice.values()])
        ends = np.array([[w[1] for w in ws] for ws in self.per_voice.values()])
        return float(np.median(np.concatenate([np.ptp(starts, axis=0), np.ptp(ends, axis=0)])))


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


@functools.lru_cache(maxsize=4096)
def _word_phones(word: str, voice: str) -> int:
    """How many phones flite's lexicon gives ``word`` (spoken alone, without the pauses around it)."""
    done = subprocess.run(
        [_program("flite"), "-voice", voice, "-ps", "-t", word, "none"], capture_output=True, text=True, check=True
    )
    return len([p for p in done.stdout.split() if p != "pau"])


def _phone_counts(words: list[str], voice: str) -> list[int]:
    """Phones per word: one flite call with the words as separate phrases (a pause between each), else one per word."""
    done = subprocess.run(
        [_program("flite"), "-voice", voice, "-ps", "-t", ", ".join(words), "none"],
        capture_output=True,
        text=True,
        check=True,
    )
    groups = " ".join(done.stdout.split()).split("pau")
    counts = [len(g.split()) for g in groups if g.strip()]
    if len(counts) == len(words) and all(counts):
        return counts
    return [_word_phones(w, voice) for w in words]


def _phone_counts_by_token(text: str, words: list[str], voice: str) -> list[int]:
    """Phones per word when a whitespace token is spoken as a unit ("28.8" is "twenty eight point eight").

    Each token is counted whole, then its phones are shared among its words in proportion
    to their phone counts alone (an approximation inside that token only; single-word tokens
    stay exact).
    """
    tokens = [t for t in text.split() if _tokens(t)]
    spoken = [t.strip(".,;:!?\"()[]") or t for t in tokens]
    token_counts = _phone_counts(spoken, voice)
    counts: list[int] = []
    for token, total in zip(tokens, token_counts):
        alone = _phone_counts(_tokens(token), voice) if len(_tokens(token)) > 1 else [total]
        shares = np.floor(np.cumsum([0, *alone]) / max(sum(alone), 1) * total).astype(int)
        counts.extend(int(b - a) for a, b in zip(shares, shares[1:]))
    if len(counts) != len(words):
        raise SynthesisError(f"cannot share flite's phones among the words of {text!r:.80}")
    return counts


def _run_flite(text: str, voice: str, tmp: Path, name: str) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
    """flite's audio for ``text`` (as ``synthesize`` makes it) and its phones, one list per utterance it spoke."""
    wav, text_file = tmp / f"{name}.wav", tmp / f"{name}.txt"
    text_file.write_text(text, encoding="utf-8")  # as asr_lab.data.synth does: the same audio
    done = subprocess.run(
        [_program("flite"), "-voice", voice, "-psdur", "-f", str(text_file), "-o", str(wav)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not wav.is_file():
        raise SynthesisError(f"flite failed for voice {voice!r}: {done.stderr.strip()[:200]}")
    utterances = []
    for line in done.stdout.splitlines():  # flite prints each utterance's phones on a line of its own
        phones = [(p.rsplit(":", 1)[0], float(p.rsplit(":", 1)[1])) for p in line.split() if ":" in p]
        if phones:
            utterances.append(phones)
    return _read_16k(str(wav)), utterances


def _utterance_texts(text: str, words: list[str], first_words: list[int]) -> list[str]:
    """The pieces of ``text`` flite spoke as separate utterances, cut at the whitespace before each first word."""
    owner: list[int] = []  # word index -> whitespace token index
    tokens = text.split()
    for t, token in enumerate(tokens):
        owner.extend([t] * len(_tokens(token)))
    if len(owner) != len(words):
        raise SynthesisError(f"cannot map the words of {text!r:.80} onto its whitespace tokens")
    cuts = [owner[w] for w in first_words[1:]]
    if any(owner[w - 1] == owner[w] for w in first_words[1:]):
        raise SynthesisError(f"flite split an utterance inside a token of {text!r:.80}")
    bounds = [0, *cuts, len(tokens)]
    return [" ".join(tokens[a:b]) for a, b in zip(bounds, bounds[1:])]


def flite_words(text: str, voice: str = "slt") -> tuple[np.ndarray, list[Word]]:
    """flite's speech of ``text`` (float32, 16 kHz) and the exact time of each of its words.

    The audio is what :func:`asr_lab.data.synth.synthesize` returns for the same text and
    voice (same command), so the timings also hold for speech made by it earlier.

    flite splits a text into utterances (sentences, roughly) and restarts its ``-psdur``
    phone times at each, while its audio is the utterances' audio back to back. Each
    utterance's times are therefore shifted by the length of the audio before it. That
    length is not the last phone's end (flite trims each utterance's audio by up to 5 ms,
    the diphone voice kal16 by ~0.1 s): it is measured by speaking each utterance's text
    on its own, and the pieces must add up to the whole audio to the sample, else this
    raises rather than guess. Offsetting by the last phone's end instead drifts by those
    trims at every sentence; giving flite the text without sentence breaks would change
    the audio (and no longer match ``synthesize``).

    Raises :class:`SynthesisError` when flite's phones cannot be split into the words
    (a word the lexicon says differently in context); the caller should not guess then.
    """
    words = _tokens(text)
    if not words:
        raise ValueError(f"text {text!r} has no words to align")
    with tempfile.TemporaryDirectory(prefix="asr_lab_dtw_") as tmp:
        audio, utterances = _run_flite(text, voice, Path(tmp), "speech")
        counts = _phone_counts(words, voice)
        spoken = [(u, i) for u, phones in enumerate(utterances) for i, (name, _) in enumerate(phones) if name != "pau"]
        if sum(counts) != len(spoken):
            counts = _phone_counts_by_token(text, words, voice)
        if sum(counts) != len(spoken):
            raise SynthesisError(
                f"flite voice {voice!r} spoke {len(spoken)} phones for {text!r}, but its lexicon gives the words "
                f"{sum(counts)}; cannot tell where each word starts"
            )
        spans, k = [], 0  # (utterance, first phone, last phone) of each word
        for word, n in zip(words, counts):
            (u0, first), (u1, last) = spoken[k], spoken[k + n - 1]
            if u0 != u1:
                raise SynthesisError(f"flite voice {voice!r} split the word {word!r} of {text!r:.80} across utterances")
            spans.append((u0, first, last))
            k += n
        offsets = [0.0]
        if len(utterances) > 1:
            first_words = [next(w for w, span in enumerate(spans) if span[0] == u) for u in range(len(utterances))]
            lengths = []
            for u, piece in enumerate(_utterance_texts(text, words, first_words)):
                piece_audio, piece_utts = _run_flite(piece, voice, Path(tmp), f"utt{u}")
                if [p for p, _ in sum(piece_utts, [])] != [p for p, _ in utterances[u]]:
                    raise SynthesisError(f"flite voice {voice!r} spoke {piece!r} differently on its own; cannot time it")
                lengths.append(len(piece_audio))
            if sum(lengths) != len(audio):
                raise SynthesisError(
                    f"flite voice {voice!r}: the utterances of {text!r:.80} spoken alone last {sum(lengths)} samples, "
                    f"together {len(audio)}; cannot place them"
                )
            offsets = list(np.cumsum([0, *lengths[:-1]]) / SAMPLE_RATE)
    timed: list[Word] = []
    for word, (u, first, last) in zip(words, spans):
        phones, offset = utterances[u], offsets[u]
        start = phones[first - 1][1] if first > 0 else 0.0
        end = phones[last][1]
        if u + 1 < len(offsets):  # a trimmed utterance ends where the next one's audio begins
            end = min(end, offsets[u + 1] - offset)
        timed.append((round(float(start + offset), 3), round(float(end + offset), 3), word))
    return audio, timed


def _features(audio: np.ndarray) -> np.ndarray:
    import librosa

    mfcc = librosa.feature.mfcc(y=audio, sr=SAMPLE_RATE, n_mfcc=13, n_fft=400, hop_length=HOP, n_mels=40)
    feats = np.vstack([mfcc, librosa.feature.delta(mfcc)])
    feats = (feats - feats.mean(axis=1, keepdims=True)) / (feats.std(axis=1, keepdims=True) + 1e-8)
    return feats


def _warp(real: np.ndarray, synthetic: np.ndarray, words: list[Word]) -> list[Word]:
    import librosa

    _, path = librosa.sequence.dtw(X=synthetic, Y=real, metric="cosine")
    path = path[::-1]  # (synthetic frame, real frame), in time order
    n_real = real.shape[1]
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for s, r in path:
        first.setdefault(int(s), int(r))
        last[int(s)] = int(r)
    n_syn = synthetic.shape[1]
    out = []
    for start, end, word in words:
        s0 = min(int(round(start * SAMPLE_RATE / HOP)), n_syn - 1)
        s1 = min(max(int(round(end * SAMPLE_RATE / HOP)) - 1, s0), n_syn - 1)
        r0, r1 = first[s0], min(last[s1] + 1, n_real)
        out.append((r0 * HOP / SAMPLE_RATE, max(r1, r0 + 1) * HOP / SAMPLE_RATE, word))
    return out


def align_by_synthesis(audio: np.ndarray, text: str, voices: Sequence[str] = CLEAR_FLITE_VOICES) -> DTWAlignment:
    """Word timings of ``audio`` (float32, 16 kHz) speaking ``text``: DTW to each voice, median over voices."""
    real = _features(np.asarray(audio, dtype=np.float32))
    per_voice: dict[str, list[Word]] = {}
    for voice in voices:
        synthetic, words = flite_words(text, voice)
        per_voice[voice] = _warp(real, _features(synthetic), words)
    rows = list(per_voice.values())
    duration = len(audio) / SAMPLE_RATE
    words = []
    for i, (_, _, word) in enumerate(rows[0]):
        start = float(np.median([r[i][0] for r in rows]))
        end = float(np.median([r[i][1] for r in rows]))
        words.append((round(start, 3), round(min(max(end, start + 0.01), duration), 3), word))
    for i in range(1, len(words)):  # medians can cross by a frame: keep the words in order
        if words[i][0] < words[i - 1][1]:
            mid = round((words[i][0] + words[i - 1][1]) / 2, 3)
            words[i - 1] = (words[i - 1][0], max(mid, words[i - 1][0]), words[i - 1][2])
            words[i] = (max(mid, words[i - 1][1]), max(words[i][1], mid), words[i][2])
    return DTWAlignment(words, per_voice)


def boundary_differences(a: Sequence[Word], b: Sequence[Word]) -> np.ndarray:
    """|start difference| and |end difference| of every word of two timings of the same words (seconds)."""
    if [w[2] for w in a] != [w[2] for w in b]:
        raise ValueError("the two timings are not of the same words")
    return np.abs(np.array([[x[0] - y[0], x[1] - y[1]] for x, y in zip(a, b)])).ravel()
