"""Word latency of a streaming recogniser, its split into policy lag and compute lag, and RTF.

Inputs are plain data, so this module does not depend on the replayer:

* **emissions** (``hypothesis=``): committed segments in the order they appeared — objects
  with attributes, or dicts with keys, ``start``, ``end``, ``text`` (absolute stream
  seconds and the committed text) and ``emitted_at`` (stream time, on the replay clock, at
  which the engine returned it). Optional: ``words`` — the engine's own word timestamps
  ``[(start, end, word), ...]`` in absolute stream seconds; ``compute_sec`` — seconds the
  call that returned it computed; ``fed_until`` (or ``audio_fed``, the name in
  :class:`asr_lab.replay` traces) — stream seconds of audio the engine had been given when
  that call began.
* **reference** (``reference=``): word timings ``[(start, end, word), ...]`` (tuples, dicts or
  objects with those fields), or an object/dict with a ``words`` attribute/key holding them
  (an Utterance; its ``words`` may be ``None``), or plain text (alignment without timings),
  or ``None``.

Words are compared after normalisation (:data:`asr_lab.metrics.ENGLISH_NORMALIZER` by
default); a reference or engine word that normalises to several tokens gives each token its
times; one that normalises to nothing is dropped.

Clocks (terminology of SimulEval, Ma et al. 2020)
    On a computation-*aware* clock (``"wall"``, ``"virtual"``) ``emitted_at`` includes the
    time the engine spent computing; on the computation-*unaware* clock (``"unaware"``) the
    clock stands still while the engine computes, so ``emitted_at`` is the amount of audio
    fed. ``latency`` is measured on the trace's clock (named in the report's ``clock``);
    ``policy_latency`` is always computation-unaware and ``compute_lag`` is the difference
    (see :class:`WordLatency`).

Pairing (``matching=``)
    ``"exact"`` (the default, and what the README's tables use): only hypothesis words
    identical to their aligned reference word get a latency; the report's ``latency.count``
    (``latency_count`` in tables) says how many words that is. A misrecognised word did not
    deliver the spoken word at all, so its emission time is not the latency of that word.
    ``"aligned"``: ufal/asr_latency's pairing (Macháček & Polák 2025) — substituted words
    are paired too and every latency is clipped at 0 (``max(0, emitted_at − ref_end)``),
    to reproduce that tool's numbers. Both agree exactly on error-free output; with errors,
    "aligned" averages over more words. (ufal/asr_latency aligns characters and rebuilds
    words; asr_lab aligns normalised words with the same continuous-run preference.)
"""


from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from asr_lab.metrics.word_alignment import (
    Summary,
    _check_text,
    _check_time,
    _field,
    _show,
    align_words,
    summarize,
)
from asr_lab.metrics.wer import ENGLISH_NORMALIZER, Normalize, normalize_text

__all__ = [
    "CLOCKS",
    "LatencyAccumulator",
    "LatencyReport",
    "WordLatency",
    "finish_delay",
    "latency_report",
    "real_time_factor",
    "word_latencies",
]

CLOCKS = ("wall", "virtual", "unaware")
"""Replay clocks a trace can be recorded on; only ``"unaware"`` is computation-unaware."""

HypTiming = Literal["engine", "spread"]
Matching = Literal["exact", "aligned"]
MATCHINGS = ("exact", "aligned")
"""How hypothesis words are paired with reference words for ``latency`` (see :func:`word_latencies`)."""


@dataclass(frozen=True)
class WordLatency:
    """One hypothesis word (normalised token) and the times that give its latencies.

    Fields
        ``word``: the token; ``emission_index``: which emission carried it;
        ``emitted_at``: when that emission appeared (stream s, replay clock);
        ``hyp_start``/``hyp_end``: where the engine put the word in the audio — its own word
        timestamps (``hyp_timing="engine"``) or, when the emission has no ``words``, the
        emission's ``[start, end]`` split into equal parts, one per token in order
        (``hyp_timing="spread"``; the last token ends at the segment end);
        ``fed_until``: audio fed (stream s) when the emitting call began, ``None`` if unknown;
        ``ref_index``/``ref_start``/``ref_end``: the reference token it matches *exactly*
        in the alignment (:func:`asr_lab.metrics.align_words`), else ``None``; times
        ``None`` when the reference has no timings.

    Derived (``None`` when an input is missing)
        * ``latency = emitted_at − ref_end`` — emission latency on the trace's clock
          (ufal/asr_latency's word latency, Macháček & Polák 2025, Sec. 5.1; raw, not clipped
          at 0 as that script does: a negative value shows a word emitted before the
          reference says it ended, e.g. a forced-alignment error).
        * ``hyp_latency = emitted_at − hyp_end`` — latency against the engine's own
          timestamps, needs no reference (what Whisper-Streaming's log lines give:
          emission time next to the segment's end timestamp).
        * ``policy_latency = fed_until − ref_end`` — computation-*unaware* latency: how much
          audio past the word's end the engine had been given before the call that
          committed the word began (SimulEval's ``delays``: source consumed at emission).
        * ``compute_lag = emitted_at − fed_until`` — time spent waiting for computation: the
          emitting call's own compute plus any backlog of earlier calls (the
          computation-aware minus -unaware delay, SimulEval's ``elapsed − delays``).

        Identity: ``latency = policy_latency + compute_lag`` for every matched word.
    """

    word: str
    emission_index: int
    emitted_at: float
    hyp_start: float
    hyp_end: float
    hyp_timing: HypTiming
    fed_until: float | None = None
    ref_index: int | None = None
    ref_start: float | None = None
    ref_end: float | None = None
    clip_at_zero: bool = False

    @property
    def latency(self) -> float | None:
        """``emitted_at − ref_end`` (``max(0, ·)`` when paired with ``matching="aligned"``)."""
        if self.ref_end is None:
            return None
        value = self.emitted_at - self.ref_end
        return max(0.0, value) if self.clip_at_zero else value

    @property
    def hyp_latency(self) -> float:
        return self.emitted_at - self.hyp_end

    @property
    def policy_latency(self) -> float | None:
        if self.ref_end is None or self.fed_until is None:
            return None
        return self.fed_until - self.ref_end

    @property
    def compute_lag(self) -> float | None:
        return None if self.fed_until is None else self.emitted_at - self.fed_until

    def to_dict(self) -> dict[str, Any]:
        """Fields and derived latencies as a flat dict (one DataFrame row per word)."""
        return {
            "word": self.word,
            "emission_index": self.emission_index,
            "emitted_at": self.emitted_at,
            "hyp_start": self.hyp_start,
            "hyp_end": self.hyp_end,
            "hyp_timing": self.hyp_timing,
            "fed_until": self.fed_until,
            "ref_index": self.ref_index,
            "ref_start": self.ref_start,
            "ref_end": self.ref_end,
            "clip_at_zero": self.clip_at_zero,
            "latency": self.latency,
            "hyp_latency": self.hyp_latency,
            "policy_latency": self.policy_latency,
            "compute_lag": self.compute_lag,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordLatency:
        """Inverse of :meth:`to_dict` (derived keys are ignored)."""
        names = (
            "word",
            "emission_index",
            "emitted_at",
            "hyp_start",
            "hyp_end",
            "hyp_timing",
            "fed_until",
            "ref_index",
            "ref_start",
            "ref_end",
        )
        values = {k: data.get(k) for k in names}
        values["clip_at_zero"] = bool(data.get("clip_at_zero") or False)
        for k in ("fed_until", "ref_index", "ref_start", "ref_end"):
            if isinstance(values[k], float) and math.isnan(values[k]):
                values[k] = None  # a DataFrame round trip turns None into NaN
        if values["ref_index"] is not None:
            values["ref_index"] = int(values["ref_index"])
        values["emission_index"] = int(values["emission_index"])
        return cls(**values)


# --------------------------------------------------------------------------------------
# input adapters


@dataclass(frozen=True)
class _Emission:
    start: float
    end: float
    text: str
    emitted_at: float
    compute_sec: float | None
    fed_until: float | None
    words: list[tuple[float, float, str]] | None


def _timed_word(item: Any, where: str) -> tuple[float, float, str]:
    if isinstance(item, (tuple, list)):
        if len(item) != 3:
            raise ValueError(f"{where} must be a (start, end, word) triple, got {_show(item)}")
        start, end, word = item
    else:
        start = _field(item, "start", where)
        end = _field(item, "end", where)
        word = _field(item, "word", where, required=False)
        if word is None:
            word = _field(item, "text", where)
    start = _check_time(start, f"{where} start")
    end = _check_time(end, f"{where} end")
    if end < start:
        raise ValueError(f"{where} ends before it starts ({start!r} > {end!r}); swap or repair the times")
    return start, end, _check_text(word, f"{where} word")


def _emission(obj: Any, k: int) -> _Emission:
    where = f"emissions[{k}]"
    if isinstance(obj, (tuple, list, str)):
        raise TypeError(
            f"{where} must be an object or dict with start, end, text and emitted_at, got "
            f"{type(obj).__name__} {_show(obj)}; e.g. dict(start=0.0, end=1.2, text='hello', emitted_at=2.0)"
        )
    start = _check_time(_field(obj, "start", where), f"{where}.start")
    end = _check_time(_field(obj, "end", where), f"{where}.end")
    if end < start:
        raise ValueError(f"{where} ends before it starts (start={start!r} > end={end!r}); repair the segment times")
    text = _check_text(_field(obj, "text", where), f"{where}.text")
    emitted_at = _check_time(_field(obj, "emitted_at", where), f"{where}.emitted_at")
    compute = _field(obj, "compute_sec", where, required=False)
    compute = None if compute is None else _check_time(compute, f"{where}.compute_sec")
    fed = _field(obj, "fed_until", where, required=False)
    if fed is None:  # asr_lab.replay's Emission calls it audio_fed
        fed = _field(obj, "audio_fed", where, required=False)
    fed = None if fed is None else _check_time(fed, f"{where}.fed_until")
    raw_words = _field(obj, "words", where, required=False)
    words = None
    if raw_words is not None:
        if isinstance(raw_words, (str, bytes)) or not hasattr(raw_words, "__iter__"):
            raise TypeError(f"{where}.words must be a list of (start, end, word), got {_show(raw_words)}")
        words = [_timed_word(w, f"{where}.words[{j}]") for j, w in enumerate(raw_words)] or None
    return _Emission(start, end, text, emitted_at, compute, fed, words)


def _emissions(hypothesis: Any) -> list[_Emission]:
    if isinstance(hypothesis, (str, bytes)) or not hasattr(hypothesis, "__iter__"):
        raise TypeError(
            f"hypothesis must be a sequence of emissions (objects or dicts with start, end, text, emitted_at), "
            f"got {type(hypothesis).__name__} {_show(hypothesis)}; pass trace.emissions"
        )
    out = [_emission(e, k) for k, e in enumerate(hypothesis)]
    for k in range(1, len(out)):
        if out[k].emitted_at < out[k - 1].emitted_at:
            raise ValueError(
                f"emissions must be in the order they appeared: emissions[{k}].emitted_at = "
                f"{out[k].emitted_at!r} is before emissions[{k - 1}].emitted_at = {out[k - 1].emitted_at!r}; "
                "sort them by emitted_at"
            )
    return out


def _reference(reference: Any, normalize: Normalize) -> tuple[list[str] | None, list[tuple[float, float]] | None]:
    """(tokens, (start, end) per token): tokens ``None`` without a reference, times ``None`` without timings."""
    if reference is None:
        return None, None
    if isinstance(reference, str):
        return normalize_text(reference, normalize).split(), None
    words = reference
    if isinstance(reference, dict) or hasattr(reference, "words"):
        words = _field(reference, "words", "reference", required=False)
        if words is None:
            text = _field(reference, "text", "reference", required=False)
            if text is None:
                raise TypeError(
                    f"reference has neither word timings ('words') nor 'text': {_show(reference)}; "
                    "pass [(start, end, word), ...], the reference text, or None"
                )
            return normalize_text(_check_text(text, "reference.text"), normalize).split(), None
    if not hasattr(words, "__iter__") or isinstance(words, bytes):
        raise TypeError(
            f"reference must be word timings [(start, end, word), ...], text, an object with .words, or None; "
            f"got {type(reference).__name__} {_show(reference)}"
        )
    tokens: list[str] = []
    times: list[tuple[float, float]] = []
    for j, item in enumerate(words):
        start, end, word = _timed_word(item, f"reference[{j}]")
        for tok in normalize_text(word, normalize).split():
            tokens.append(tok)
            times.append((start, end))
    return tokens, times


def _total_compute(compute_sec: Any) -> float:
    if isinstance(compute_sec, (int, float)) and not isinstance(compute_sec, bool):
        return _check_time(compute_sec, "compute_sec")
    if isinstance(compute_sec, (str, bytes)) or not hasattr(compute_sec, "__iter__"):
        raise TypeError(
            f"compute_sec must be seconds (a float) or a sequence of per-call seconds, got {_show(compute_sec)}"
        )
    return sum(_check_time(c, f"compute_sec[{k}]") for k, c in enumerate(compute_sec))


def _fed_until(em: _Emission, clock: str | None, k: int) -> float | None:
    if em.fed_until is not None:
        return em.fed_until
    if clock == "unaware":
        return em.emitted_at
    if em.compute_sec is not None:
        began = em.emitted_at - em.compute_sec
        if began < -1e-9:
            raise ValueError(
                f"emissions[{k}]: compute_sec = {em.compute_sec!r} is larger than emitted_at = {em.emitted_at!r}, "
                "so the call would have begun before the stream; on the unaware clock pass clock='unaware', "
                "otherwise give the emission a fed_until"
            )
        return max(0.0, began)
    return None


def _check_clock(clock: Any) -> str | None:
    if clock is not None and clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS} or None, got {_show(clock)}; pass the trace's clock name")
    return clock


# --------------------------------------------------------------------------------------
# the metrics


def word_latencies(
    *,
    reference: Any,
    hypothesis: Sequence[Any],
    normalize: Normalize = ENGLISH_NORMALIZER,
    clock: str | None = None,
    matching: Matching = "exact",
) -> list[WordLatency]:
    """Every hypothesis word with its emission time, its audio position and its reference match.

    What
        1. Hypothesis tokens: each emission's ``words`` (engine timestamps) when present,
           otherwise its ``text`` spread evenly over ``[start, end]``; every token inherits
           its emission's ``emitted_at``.
        2. Reference tokens from ``reference`` (see the module doc), normalised the same way.
        3. :func:`~asr_lab.metrics.align_words` aligns the two token lists (minimum edits,
           most exact matches, unbroken runs — ufal/asr_latency's continuous alignment); a
           hypothesis token gets ``ref_*`` only for an *exact* match (``matching="exact"``);
           with ``matching="aligned"`` a substituted token gets its reference word too and
           its latency is clipped at 0 (ufal/asr_latency). Inserted and deleted words never
           have a reference latency.
        4. ``fed_until``: the emission's own ``fed_until`` if it has one; else, on
           ``clock="unaware"``, ``emitted_at`` (the clock stood still while computing);
           else ``emitted_at − compute_sec``, the moment the call began (exact when every
           call starts as soon as its audio is fed, as on the virtual clock; it under-counts
           compute lag when a call starts later than its audio ended, e.g. ``finish()``
           queued behind a slow call); else ``None``. Replayers should record ``fed_until``.

    Formula / source: see :class:`WordLatency`. Returns the words in stream order.
    """
    return _word_latencies(reference, hypothesis, normalize, clock, matching)[0]


def _check_matching(matching: Any) -> str:
    if matching not in MATCHINGS:
        raise ValueError(
            f"matching must be 'exact' (identical words only) or 'aligned' (ufal/asr_latency: substituted "
            f"words too, clipped at 0), got {_show(matching)}"
        )
    return matching


def _word_latencies(
    reference: Any, hypothesis: Any, normalize: Normalize, clock: str | None, matching: str = "exact"
) -> tuple[list[WordLatency], list[str] | None, list[tuple[float, float]] | None]:
    clock = _check_clock(clock)
    matching = _check_matching(matching)
    paired_ops = ("match",) if matching == "exact" else ("match", "substitution")
    emissions = _emissions(hypothesis)
    hyp: list[WordLatency] = []
    for k, em in enumerate(emissions):
        fed = _fed_until(em, clock, k)
        if em.words is not None:
            for start, end, word in em.words:
                for tok in normalize_text(word, normalize).split():
                    hyp.append(WordLatency(tok, k, em.emitted_at, start, end, "engine", fed))
        else:
            tokens = normalize_text(em.text, normalize).split()
            step = (em.end - em.start) / len(tokens) if tokens else 0.0
            for j, tok in enumerate(tokens):
                end = em.end if j == len(tokens) - 1 else em.start + (j + 1) * step
                hyp.append(WordLatency(tok, k, em.emitted_at, em.start + j * step, end, "spread", fed))

    ref_tokens, ref_times = _reference(reference, normalize)
    if ref_tokens is None:
        return hyp, None, None
    out = list(hyp)
    for pair in align_words(reference=ref_tokens, hypothesis=[w.word for w in hyp]):
        if pair.op not in paired_ops:
            continue
        h, r = pair.hyp_index, pair.ref_index
        if h is None or r is None:  # pragma: no cover - a match always has both sides
            continue
        w = hyp[h]
        rs, re_ = ref_times[r] if ref_times is not None else (None, None)
        out[h] = WordLatency(
            w.word, w.emission_index, w.emitted_at, w.hyp_start, w.hyp_end, w.hyp_timing, w.fed_until, r, rs, re_,
            matching == "aligned",
        )
    return out, ref_tokens, ref_times


def real_time_factor(*, compute_sec: float | Sequence[float], audio_duration: float) -> float:
    """Real-time factor: total compute time over audio duration.

    Formula: ``RTF = Σ compute_sec / audio_duration`` (< 1: faster than real time).
    Pass the compute time of *every* engine call (also those that returned nothing), not only
    of the calls that emitted text, or the RTF comes out too low.
    Source: the usual definition (e.g. Whisper-Streaming, Macháček et al. 2023).
    """
    duration = _check_time(audio_duration, "audio_duration")
    if duration == 0:
        raise ValueError("audio_duration must be > 0 seconds to compute a real-time factor, got 0.0")
    return _total_compute(compute_sec) / duration


def finish_delay(*, hypothesis: Sequence[Any], audio_duration: float) -> float | None:
    """Time from the end of the audio to the last emission that carries text.

    Formula: ``finish_delay = max emitted_at over emissions with non-blank text − audio_duration``
    (``None`` without such an emission). Negative when everything was emitted before the
    audio ended (e.g. trailing silence). It is the wait a user sees after they stop speaking;
    on an aware clock it includes the final ``finish()`` computation.
    """
    duration = _check_time(audio_duration, "audio_duration")
    times = [em.emitted_at for em in _emissions(hypothesis) if em.text.strip() or em.words]
    return max(times) - duration if times else None


@dataclass(frozen=True)
class LatencyReport:
    """Latency of one utterance (or, from :class:`LatencyAccumulator`, of a corpus).

    Summaries (:class:`~asr_lab.metrics.Summary`: count, mean, p50, p90, max — seconds)
        ``latency``         emitted_at − ref_end, exactly matched words (on the trace's clock);
        ``hyp_latency``     emitted_at − hyp_end, every hypothesis word (engine timestamps or spread);
        ``policy_latency``  fed_until − ref_end, matched words (computation-unaware);
        ``compute_lag``     emitted_at − fed_until, the same words as ``latency`` when the
                            reference is timed (so mean latency = mean policy_latency + mean
                            compute_lag when every word has fed_until), else every hypothesis word.
        Formulas and sources: :class:`WordLatency`.

    Scalars (``None`` when not computable)
        ``first_word_latency`` = emitted_at of the first hypothesis word − end of the first
        reference word (how long after the first spoken word any text appears; whether it
        is the right word is WER's business); ``finish_delay`` (:func:`finish_delay`);
        ``rtf`` (:func:`real_time_factor`), from the ``compute_sec`` total passed in.
        In a corpus report, ``first_word_latency`` and ``finish_delay`` are means over
        utterances, ``rtf`` = Σ compute / Σ audio.

    Counts: ``reference_words``, ``hypothesis_words``, ``matched_words`` (tokens after
    normalisation; the words paired with a reference word — ``latency.count`` of them have
    a latency, i.e. all of them when the reference is timed); ``matching`` is the pairing,
    ``"exact"`` or ``"aligned"`` (module doc); ``hypothesis_timing`` is ``"engine"``, ``"spread"``, ``"mixed"`` or
    ``"none"`` (no words); ``clock`` is the trace's clock as given.

    ``words`` keeps the per-word records (for plots and for pooling); ``to_dict`` leaves
    them out unless asked.
    """

    latency: Summary
    hyp_latency: Summary
    policy_latency: Summary
    compute_lag: Summary
    first_word_latency: float | None
    finish_delay: float | None
    rtf: float | None
    audio_duration: float | None
    compute_sec: float | None
    reference_words: int | None
    hypothesis_words: int
    matched_words: int | None
    reference_timed: bool
    hypothesis_timing: str
    clock: str | None
    matching: str = "exact"
    words: tuple[WordLatency, ...] = field(default=(), repr=False, compare=False)

    _SUMMARIES = ("latency", "hyp_latency", "policy_latency", "compute_lag")
    _SCALARS = (
        "first_word_latency",
        "finish_delay",
        "rtf",
        "audio_duration",
        "compute_sec",
        "reference_words",
        "hypothesis_words",
        "matched_words",
        "reference_timed",
        "hypothesis_timing",
        "clock",
        "matching",
    )

    def to_dict(self, *, include_words: bool = False) -> dict[str, Any]:
        """Flat dict, summaries as ``latency_mean``, ``latency_p90``, ... (one DataFrame row)."""
        out: dict[str, Any] = {}
        for name in self._SUMMARIES:
            out.update(getattr(self, name).to_dict(prefix=f"{name}_"))
        for name in self._SCALARS:
            out[name] = getattr(self, name)
        if include_words:
            out["words"] = [w.to_dict() for w in self.words]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyReport:
        """Inverse of :meth:`to_dict` (``words`` restored only if present)."""
        kwargs: dict[str, Any] = {name: Summary.from_dict(data, prefix=f"{name}_") for name in cls._SUMMARIES}
        for name in cls._SCALARS:
            value = data.get(name)
            if isinstance(value, float) and math.isnan(value):
                value = None  # a DataFrame round trip turns None into NaN
            kwargs[name] = value
        kwargs["matching"] = kwargs["matching"] or "exact"  # reports saved before the option existed
        kwargs["reference_timed"] = bool(kwargs["reference_timed"])
        kwargs["hypothesis_words"] = int(kwargs["hypothesis_words"])
        for name in ("reference_words", "matched_words"):
            if kwargs[name] is not None:
                kwargs[name] = int(kwargs[name])
        kwargs["words"] = tuple(WordLatency.from_dict(w) for w in data.get("words") or ())
        return cls(**kwargs)


def _pools(words: Sequence[WordLatency], reference_timed: bool) -> dict[str, list[float]]:
    matched = [w for w in words if w.latency is not None]
    lag_words = matched if reference_timed else list(words)
    return {
        "latency": [w.latency for w in matched],  # type: ignore[misc]
        "hyp_latency": [w.hyp_latency for w in words],
        "policy_latency": [w.policy_latency for w in matched if w.policy_latency is not None],  # type: ignore[misc]
        "compute_lag": [w.compute_lag for w in lag_words if w.compute_lag is not None],  # type: ignore[misc]
    }


def _timing_label(words: Sequence[WordLatency]) -> str:
    kinds = {w.hyp_timing for w in words}
    return "none" if not kinds else kinds.pop() if len(kinds) == 1 else "mixed"


def latency_report(
    *,
    reference: Any,
    hypothesis: Sequence[Any],
    audio_duration: float | None = None,
    compute_sec: float | Sequence[float] | None = None,
    normalize: Normalize = ENGLISH_NORMALIZER,
    clock: str | None = None,
    matching: Matching = "exact",
) -> LatencyReport:
    """Latency of one streamed utterance: per-word latencies summarised, first word, finish, RTF.

    What
        :func:`word_latencies` gives the per-word records; this summarises them
        (:class:`LatencyReport` lists each field with its formula). ``audio_duration``
        (seconds of audio streamed) enables ``finish_delay`` and, with ``compute_sec`` (the
        total compute of *all* engine calls, or a list of per-call seconds), ``rtf``.
        ``clock`` is the replay clock of the trace (``"wall"``, ``"virtual"``,
        ``"unaware"``): it is recorded in the report and decides how a missing
        ``fed_until`` is estimated. ``matching``: which words get a latency — ``"exact"``
        matches only (default) or ``"aligned"`` (ufal/asr_latency: substitutions too,
        clipped at 0); see the module doc. ``latency.count`` is the number of words the
        latency figures were computed over.

    Sources
        Word alignment and latency: ufal/asr_latency (Macháček & Polák, IWSLT 2025, Sec. 5.1).
        Computation-aware vs -unaware: SimulEval (Ma et al., EMNLP 2020 demos) and Ma, Pino,
        Koehn, "SimulMT to SimulST" (AACL 2020). RTF: Whisper-Streaming (Macháček, Dabre,
        Bojar 2023).
    """
    if not isinstance(hypothesis, (str, bytes)) and hasattr(hypothesis, "__iter__"):
        hypothesis = list(hypothesis)  # read twice below; a generator would be empty the second time
    words, ref_tokens, ref_times = _word_latencies(reference, hypothesis, normalize, clock, matching)
    reference_timed = ref_times is not None
    pools = _pools(words, reference_timed)
    first = None
    if ref_times and words:
        first = words[0].emitted_at - ref_times[0][1]
    duration = None if audio_duration is None else _check_time(audio_duration, "audio_duration")
    total_compute = None if compute_sec is None else _total_compute(compute_sec)
    rtf = None
    if duration and total_compute is not None:
        rtf = total_compute / duration

    return LatencyReport(
        latency=summarize(pools["latency"]),
        hyp_latency=summarize(pools["hyp_latency"]),
        policy_latency=summarize(pools["policy_latency"]),
        compute_lag=summarize(pools["compute_lag"]),
        first_word_latency=first,
        finish_delay=None if duration is None else finish_delay(hypothesis=hypothesis, audio_duration=duration),
        rtf=rtf,
        audio_duration=duration,
        compute_sec=total_compute,
        reference_words=None if ref_tokens is None else len(ref_tokens),
        hypothesis_words=len(words),
        matched_words=None if ref_tokens is None else sum(1 for w in words if w.ref_index is not None),
        reference_timed=reference_timed,
        hypothesis_timing=_timing_label(words),
        clock=clock,
        matching=matching,
        words=tuple(words),
    )


class LatencyAccumulator:
    """Corpus latency: pools the per-word latencies of many utterances.

    Formula
        Word summaries (mean, p50, p90, max) are taken over the pooled words of all
        utterances — each word counts once, so long utterances weigh more, the same rule as
        corpus WER. ``first_word_latency`` and ``finish_delay`` are per-utterance quantities:
        their mean over the utterances that have one. ``rtf = Σ compute_sec / Σ
        audio_duration`` over utterances that have both.

    Reports recorded on different clocks are refused: pooling aware and unaware latencies
    would mislabel the result.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every report added so far."""
        self._pools: dict[str, list[float]] = {k: [] for k in LatencyReport._SUMMARIES}
        self._words: list[WordLatency] = []
        self._first: list[float] = []
        self._finish: list[float] = []
        self._compute = 0.0
        self._audio_rtf = 0.0  # audio of the utterances that have compute_sec
        self._audio: float | None = None
        self._ref_words: int | None = None
        self._matched: int | None = None
        self._hyp_words = 0
        self._timings: set[str] = set()
        self._clock: str | None = None
        self._matching = "exact"
        self._n = 0
        self._all_timed = True

    def update(self, **kwargs: Any) -> LatencyReport:
        """``latency_report(**kwargs)``, added to the pool and returned."""
        report = latency_report(**kwargs)
        self.add(report)
        return report

    def add(self, report: LatencyReport) -> None:
        """Add one utterance's report (it must still hold its per-word records)."""
        if not isinstance(report, LatencyReport):
            raise TypeError(f"add() takes a LatencyReport, got {type(report).__name__} {_show(report)}")
        if report.hypothesis_words and not report.words:
            raise ValueError(
                "this LatencyReport has no per-word records (made by from_dict without 'words'?), so its "
                "words cannot be pooled; rebuild it with latency_report() or to_dict(include_words=True)"
            )
        if self._n and report.clock != self._clock:
            raise ValueError(
                f"cannot pool a report on clock {report.clock!r} with reports on clock {self._clock!r}; "
                "use one LatencyAccumulator per clock"
            )
        if self._n and report.matching != self._matching:
            raise ValueError(
                f"cannot pool a report with matching={report.matching!r} with reports with matching="
                f"{self._matching!r}; score every utterance with the same matching"
            )
        self._matching = report.matching
        self._clock = report.clock
        for name, values in _pools(report.words, report.reference_timed).items():
            self._pools[name].extend(values)
        self._words.extend(report.words)
        if report.first_word_latency is not None:
            self._first.append(report.first_word_latency)
        if report.finish_delay is not None:
            self._finish.append(report.finish_delay)
        if report.audio_duration is not None:
            self._audio = (self._audio or 0.0) + report.audio_duration
            if report.compute_sec is not None:
                self._compute += report.compute_sec
                self._audio_rtf += report.audio_duration
        if report.reference_words is not None:
            self._ref_words = (self._ref_words or 0) + report.reference_words
        if report.matched_words is not None:
            self._matched = (self._matched or 0) + report.matched_words
        self._hyp_words += report.hypothesis_words
        if report.hypothesis_timing != "none":
            self._timings.add(report.hypothesis_timing)
        self._all_timed = self._all_timed and report.reference_timed
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def compute(self) -> LatencyReport:
        """The pooled :class:`LatencyReport` (``words`` = all words, in the order added)."""

        def mean(values: list[float]) -> float | None:
            return sum(values) / len(values) if values else None

        timing = "none" if not self._timings else next(iter(self._timings)) if len(self._timings) == 1 else "mixed"
        return LatencyReport(
            latency=summarize(self._pools["latency"]),
            hyp_latency=summarize(self._pools["hyp_latency"]),
            policy_latency=summarize(self._pools["policy_latency"]),
            compute_lag=summarize(self._pools["compute_lag"]),
            first_word_latency=mean(self._first),
            finish_delay=mean(self._finish),
            rtf=self._compute / self._audio_rtf if self._audio_rtf > 0 else None,
            audio_duration=self._audio,
            compute_sec=self._compute if self._audio_rtf > 0 else None,
            reference_words=self._ref_words,
            hypothesis_words=self._hyp_words,
            matched_words=self._matched,
            reference_timed=self._all_timed and self._n > 0,
            hypothesis_timing=timing,
            clock=self._clock,
            matching=self._matching,
            words=tuple(self._words),
        )
