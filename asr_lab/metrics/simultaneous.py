"""The simultaneous-translation latency family (SimulEval, OmniSTEval) from one replay trace.

The simultaneous speech translation community reports latency as *lagging* metrics over
per-word **delays**: for the i-th output word, how much source had been read when it was
written. They come in two variants (Ma et al., "SimulEval", EMNLP 2020 demos):

* **computation-unaware** (CU, SimulEval's ``delays``, OmniSTEval's ``emission_cu``): the
  audio fed to the engine when the call that committed the word began — asr_lab's
  ``Emission.audio_fed``. Compute time is ignored.
* **computation-aware** (CA, SimulEval's ``elapsed``, OmniSTEval's ``emission_ca``): the
  stream time at which the word was emitted — asr_lab's ``Emission.emitted_at`` on the
  ``wall`` or ``virtual`` clock, which already includes compute and queueing.

SimulEval computes ``elapsed`` as *delay + total compute so far* without letting the
engine idle while waiting for audio, which over-counts for a system that keeps up;
OmniSTEval (Polák, ``fix_emission_ca``) corrects it to a running stream time. A
trace recorded on the virtual or wall clock holds that corrected time directly; on the
``unaware`` clock, :func:`word_delays` rebuilds it from the steps' measured compute
(``t = max(t, fed_until) + compute_sec`` per step, the virtual clock's rule). For
delays imported from SimulEval logs, :func:`corrected_elapsed` applies OmniSTEval's fix.

All functions here take and return **seconds** (SimulEval and OmniSTEval use
milliseconds; every lagging metric is linear in time, so only the unit changes; AP is a
ratio and has none). ``source_length`` |X| is the audio duration; ``reference_length``
|Y*| the number of whitespace-separated words of the reference text (as SimulEval's
``latency_unit="word"``: ``len(reference.split(" "))``); |Y| the number of output words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asr_lab.metrics.word_alignment import _check_time, _show

__all__ = [
    "SIMULEVAL_KEYS",
    "WordDelays",
    "average_lagging",
    "average_proportion",
    "average_token_delay",
    "corrected_elapsed",
    "differentiable_average_lagging",
    "end_offset",
    "length_adaptive_average_lagging",
    "long_yaal",
    "sentence_segments",
    "simuleval_metrics",
    "start_offset",
    "word_delays",
    "yaal",
]

SIMULEVAL_KEYS = ("AL", "LAAL", "DAL", "AP", "ATD", "StartOffset", "EndOffset", "YAAL")
"""Keys of :func:`simuleval_metrics`; each also comes with the suffix ``_CA``."""


# --------------------------------------------------------------------------------------
# the metrics on plain delay lists


def _delays(delays: Sequence[float], name: str = "delays") -> list[float]:
    if isinstance(delays, (str, bytes)) or not hasattr(delays, "__iter__"):
        raise TypeError(f"{name} must be a sequence of seconds, one per output word, got {_show(delays)}")
    return [_check_time(d, f"{name}[{k}]") for k, d in enumerate(delays)]


def _source(source_length: float) -> float:
    x = _check_time(source_length, "source_length")
    if x == 0:
        raise ValueError("source_length must be > 0 seconds (the audio duration); got 0.0")
    return x


def _lagging(delays: list[float], source_length: float, rate_length: float) -> float:
    """Σ_{i≤τ} (d_i − (i−1)·|X|/L) / τ, τ = first i with d_i ≥ |X| (all words if none)."""
    if delays[0] > source_length:
        return delays[0]
    step = source_length / rate_length
    total, tau = 0.0, 0
    for i, d in enumerate(delays):
        total += d - i * step
        tau = i + 1
        if d >= source_length:
            break
    return total / tau


def average_lagging(delays: Sequence[float], *, source_length: float, reference_length: int | None = None) -> float:
    """Average Lagging (AL), seconds.

    Formula: ``AL = 1/τ Σ_{i=1..τ} [d_i − (i−1)·|X|/|Y|]`` with ``τ = min{i : d_i ≥ |X|}``
    (all words when no delay reaches |X|); ``|Y|`` = ``reference_length`` when given, else
    the number of delays. If the first delay already exceeds |X|, AL = d_1.
    Source: Ma et al., "STACL", ACL 2019 (arXiv:1810.08398); SimulEval's ``ALScorer``
    (``simuleval/evaluator/scorers/latency_scorer.py``). ``nan`` without output words.
    """
    d = _delays(delays)
    if not d:
        return math.nan
    return _lagging(d, _source(source_length), reference_length or len(d))


def length_adaptive_average_lagging(
    delays: Sequence[float], *, source_length: float, reference_length: int | None = None
) -> float:
    """Length-Adaptive Average Lagging (LAAL), seconds.

    Formula: AL with ``|Y|`` replaced by ``max(|Y|, |Y*|)`` (output length, reference
    length), so over-generation is not rewarded with a lower lag.
    Source: Papi et al., "Over-Generation Cannot Be Rewarded" (arXiv:2206.05807); Polák
    et al., CUNI-KIT IWSLT 2022 (arXiv:2204.06028); SimulEval's ``LAALScorer``.
    """
    d = _delays(delays)
    if not d:
        return math.nan
    return _lagging(d, _source(source_length), max(len(d), reference_length or 0))


def differentiable_average_lagging(delays: Sequence[float], *, source_length: float) -> float:
    """Differentiable Average Lagging (DAL), seconds.

    Formula: ``g'_1 = d_1``, ``g'_i = max(d_i, g'_{i−1} + |X|/|Y|)``;
    ``DAL = 1/|Y| Σ_i [g'_i − (i−1)·|X|/|Y|]`` with |Y| the number of output words (SimulEval
    uses the output length here even when a reference is given). Every word counts, also
    those after the source ended.
    Source: Arivazhagan et al., "Monotonic Infinite Lookback Attention", ACL 2019
    (arXiv:1906.05218); SimulEval's ``DALScorer``.
    """
    d = _delays(delays)
    if not d:
        return math.nan
    step = _source(source_length) / len(d)
    total, g_prev = 0.0, 0.0
    for i, g in enumerate(d):
        g_prev = g if i == 0 else max(g, g_prev + step)
        total += g_prev - i * step
    return total / len(d)


def average_proportion(delays: Sequence[float], *, source_length: float, reference_length: int | None = None) -> float:
    """Average Proportion (AP), a fraction (no unit).

    Formula: ``AP = Σ_i d_i / (|X|·|Y|)``, |Y| = ``reference_length`` when given, else the
    number of output words. 1 means every word waited for the whole source.
    Source: Cho & Esipova, "Can neural machine translation do simultaneous translation?"
    (arXiv:1606.02012); SimulEval's ``APScorer``.
    """
    d = _delays(delays)
    if not d:
        return math.nan
    return sum(d) / (_source(source_length) * (reference_length or len(d)))


def start_offset(delays: Sequence[float]) -> float:
    """StartOffset: the delay of the first output word, ``d_1`` (seconds). Source: SimulEval."""
    d = _delays(delays)
    return d[0] if d else math.nan


def end_offset(delays: Sequence[float], *, source_length: float) -> float:
    """EndOffset: ``d_|Y| − |X|``, how long after the source ended the last word came (seconds).

    Source: SimulEval's ``EndOffsetScorer`` (text output).
    """
    d = _delays(delays)
    return d[-1] - _source(source_length) if d else math.nan


def yaal(
    delays: Sequence[float],
    *,
    source_length: float,
    reference_length: int | None = None,
    longform: bool = False,
    time_to_recording_end: float | None = None,
) -> float:
    """Yet Another Average Lagging (YAAL; LongYAAL with ``longform=True``), seconds.

    Formula: ``YAAL = 1/τ Σ_{i=1..τ} [d_i − (i−1)·|X|/max(|Y|, |Y*|)]`` where τ counts the
    words *before* the cut-off: short-form, the first word with ``d_i ≥ |X|`` and every
    later one are left out (LAAL would include that first one); long-form, the cut-off is
    ``time_to_recording_end`` (the end of the whole recording, relative to the segment
    start) instead, so words of a segment emitted while later speech plays still count.
    ``nan`` when no word falls before the cut-off (OmniSTEval skips such an instance).
    Source: Polák & Bojar et al., "Better Late Than Never: Evaluation of Latency Metrics
    for Simultaneous Speech-to-Text Translation" (arXiv:2509.17349); OmniSTEval's
    ``YAALScorer`` (``omnisteval/scoring.py``).
    """
    d = _delays(delays)
    x = _source(source_length)
    end = math.inf if time_to_recording_end is None else _check_time(time_to_recording_end, "time_to_recording_end")
    return _yaal(d, x, reference_length, longform, end)


def _yaal(d: list[float], x: float, reference_length: int | None, longform: bool, end: float) -> float:
    if not d or (d[0] >= x and not longform) or d[0] >= end:
        return math.nan
    step = x / max(len(d), reference_length or 0)
    total, tau = 0.0, 0
    for i, v in enumerate(d):
        if (v >= x and not longform) or v >= end:
            break
        total += v - i * step
        tau = i + 1
    return total / tau if tau else math.nan


def average_token_delay(
    delays: Sequence[float], *, elapsed: Sequence[float] | None = None, source_word_sec: float = 0.3
) -> float:
    """Average Token Delay (ATD) for speech input and text output, seconds.

    Formula (Kano et al., "Average Token Delay", Interspeech 2023, arXiv:2211.13173, as
    SimulEval's ``ATDScorer`` applies it to speech → text): the source is cut into the
    chunks read between distinct delays and each chunk into pseudo-words of
    ``source_word_sec`` (SimulEval: 300 ms; the remainder is a last, shorter word); output
    words have no duration and are grouped into chunks of equal delay. Output word t of
    chunk c is paired with source word ``s = t − max(0, Y_<c − X_<c)`` (Y, X: output and
    source words in earlier chunks), capped at the source words read up to chunk c; its
    delay is ``T(y_t) − T(x_s)``, where ``T(x_s)`` is the end time of that source word and
    ``T(y_t) = max(d_t, T(y_{t−1})) + c_t`` with ``c_t`` the compute charged to it
    (computation-aware: the increase of ``elapsed − delay`` since the previous word, as
    SimulEval reads ``elapsed``; unaware: 0). ATD = mean over output words.
    Computed in milliseconds internally (as SimulEval) so the pseudo-word cut is the same.
    """
    d = [x * 1000.0 for x in _delays(delays)]
    if not d:
        return math.nan
    word_ms = _check_time(source_word_sec, "source_word_sec") * 1000.0
    if word_ms <= 0:
        raise ValueError("source_word_sec must be > 0 (SimulEval uses 0.3 s per source word)")
    if elapsed is not None:
        e = [x * 1000.0 for x in _delays(elapsed, "elapsed")]
        if len(e) != len(d):
            raise ValueError(f"delays and elapsed must have one value per word; got {len(d)} and {len(e)}")
        lag = [a - b for a, b in zip(e, d)]
        compute = [lag[0]] + [lag[i] - lag[i - 1] for i in range(1, len(lag))]
    else:
        compute = [0.0] * len(d)

    tgt_sizes, tgt_chunk = [0], [0]
    prev = None
    for x in d:
        if x != prev:
            tgt_sizes.append(1)
        else:
            tgt_sizes[-1] += 1
        prev = x
    for i, size in enumerate(tgt_sizes[1:], 1):
        tgt_chunk += [i] * size
    distinct = list(dict.fromkeys(d))
    src_sizes, src_time = [0], [0.0]
    for start, end in zip([0.0] + distinct[:-1], distinct):
        whole, rest = divmod(end - start, word_ms)
        lens = [word_ms] * int(whole) + ([rest] if rest != 0 else [])
        src_sizes.append(len(lens))
        for n in lens:
            src_time.append(src_time[-1] + n)
    tgt_time = [0.0]
    for x, c in zip(d, compute):
        tgt_time.append(max(x, tgt_time[-1]) + c)

    total = 0.0
    for t in range(1, len(tgt_chunk)):
        c = tgt_chunk[t]
        ahead = sum(tgt_sizes[:c]) - sum(src_sizes[:c])
        s_idx = min(t - max(0, ahead), sum(src_sizes[: c + 1]))
        total += tgt_time[t] - src_time[s_idx]
    return total / (len(tgt_chunk) - 1) / 1000.0


def corrected_elapsed(delays: Sequence[float], elapsed: Sequence[float]) -> list[float]:
    """OmniSTEval's correction of SimulEval's computation-aware times (seconds in, seconds out).

    SimulEval's ``elapsed_i = delay_i + total compute before word i`` charges the engine's
    compute as if it never idled while waiting for audio. OmniSTEval re-times each word
    after the previous one: ``e'_1 = e_1``, ``e''_i = e_i − e_{i−1} + d_{i−1}`` (the compute
    between the two words, counted from when the previous word's audio had been read), then
    ``e'_i = max(e''_i, e'_{i−1})`` to keep times non-decreasing.
    Source: OmniSTEval ``data.fix_emission_ca`` (option ``--fix_simuleval_emission_ca``).
    Not needed for asr_lab traces, whose ``emitted_at`` is a stream time already.
    """
    d, e = _delays(delays), _delays(elapsed, "elapsed")
    if len(d) != len(e):
        raise ValueError(f"delays and elapsed must have one value per word; got {len(d)} and {len(e)}")
    raw = [e[0]] + [e[i] - e[i - 1] + d[i - 1] for i in range(1, len(e))] if e else []
    out: list[float] = []
    for i, v in enumerate(raw):
        out.append(v if i == 0 else max(v, out[-1]))
    return out


# --------------------------------------------------------------------------------------
# from a trace


@dataclass(frozen=True)
class WordDelays:
    """Per output word of a trace: the word, its CU delay and its CA time (seconds).

    ``words``: the committed text split on white space (SimulEval's ``prediction.split()``);
    ``delays``: audio fed when the committing call began (``Emission.audio_fed``);
    ``elapsed``: stream time the word was emitted (``Emission.emitted_at``; rebuilt from
    the steps' compute on the unaware clock); ``source_length``: the audio duration;
    ``elapsed_rebuilt``: whether ``elapsed`` was rebuilt.
    """

    words: tuple[str, ...]
    delays: tuple[float, ...]
    elapsed: tuple[float, ...]
    source_length: float
    elapsed_rebuilt: bool = False


def word_delays(trace: Any) -> WordDelays:
    """The per-word delays of a :class:`~asr_lab.replay.Trace` (see :class:`WordDelays`)."""
    if not hasattr(trace, "emissions") or not hasattr(trace, "meta"):
        raise TypeError(f"word_delays() takes an asr_lab Trace, got {type(trace).__name__} {_show(trace)}")
    rebuilt = trace.meta.get("clock") == "unaware"
    aware_at: dict[int, float] = {}
    if rebuilt:
        t = 0.0
        for s in trace.steps:
            t = max(t, s.fed_until) + s.compute_sec
            aware_at[s.index] = t
    words: list[str] = []
    delays: list[float] = []
    elapsed: list[float] = []
    for e in trace.emissions:
        toks = e.text.split()
        ca = aware_at.get(e.step, e.emitted_at) if rebuilt else e.emitted_at
        words.extend(toks)
        delays.extend([float(e.audio_fed)] * len(toks))
        elapsed.extend([float(ca)] * len(toks))
    return WordDelays(tuple(words), tuple(delays), tuple(elapsed), float(trace.duration), rebuilt)


def _reference_length(reference: Any) -> int | None:
    if reference is None:
        return None
    text = reference if isinstance(reference, str) else (
        reference.get("text") if isinstance(reference, dict) else getattr(reference, "text", None)
    )
    if not isinstance(text, str):
        raise TypeError(
            f"reference must be text, an utterance or a dict with a 'text' string, or None; got {_show(reference)}"
        )
    return len(text.strip().split(" ")) if text.strip() else 0


def simuleval_metrics(trace: Any, reference: Any = None) -> dict[str, float]:
    """AL, LAAL, DAL, AP, ATD, StartOffset, EndOffset and YAAL of one trace, CU and ``_CA``.

    ``reference``: the reference text (or an utterance / dict with ``text``); its word count
    is |Y*| for AL, LAAL, AP and YAAL, as SimulEval does by default (``use_ref_len``);
    without it, the output length is used. Delays are :func:`word_delays`: CU = audio fed
    when the word was committed, CA = stream time it was emitted (OmniSTEval's corrected
    computation-aware time). Values in seconds (AP: a fraction); ``nan`` when the trace
    emitted no words. Each metric's formula and source: the function of the same name in
    this module. YAAL here is short-form; for one utterance replayed whole, LongYAAL (cut
    off at the recording end, which is the source end) is the same number.
    """
    wd = word_delays(trace)
    if wd.source_length <= 0:
        raise ValueError(
            f"the trace has no audio duration (meta['duration'] = {trace.meta.get('duration')!r}); "
            "simultaneous metrics need the source length — replay it with asr_lab.replay"
        )
    ref_len = _reference_length(reference) or None
    out: dict[str, float] = {}
    for suffix, d in (("", list(wd.delays)), ("_CA", list(wd.elapsed))):
        x = wd.source_length
        out["AL" + suffix] = average_lagging(d, source_length=x, reference_length=ref_len)
        out["LAAL" + suffix] = length_adaptive_average_lagging(d, source_length=x, reference_length=ref_len)
        out["DAL" + suffix] = differentiable_average_lagging(d, source_length=x)
        out["AP" + suffix] = average_proportion(d, source_length=x, reference_length=ref_len)
        out["ATD" + suffix] = average_token_delay(list(wd.delays), elapsed=None if not suffix else d)
        out["StartOffset" + suffix] = start_offset(d)
        out["EndOffset" + suffix] = end_offset(d, source_length=x)
        out["YAAL" + suffix] = yaal(d, source_length=x, reference_length=ref_len)
    return {k: out[k] for k in SIMULEVAL_KEYS} | {k + "_CA": out[k + "_CA"] for k in SIMULEVAL_KEYS}


def sentence_segments(words: Sequence[Any], text: str) -> list[tuple[float, float, str]]:
    """Reference segments ``[(offset, duration, sentence)]`` from word timings and the punctuated text.

    The text is cut after ``.``, ``?`` and ``!``; each sentence takes as many timed words as
    it has white-space words, in order (the timings must list the text's words one to one).
    """
    import re

    sentences = [x.strip() for x in re.split(r"(?<=[.?!])\s+", text.strip()) if x.strip()]
    timed = [(float(w[0]), float(w[1])) if isinstance(w, (tuple, list)) else (float(w["start"]), float(w["end"])) for w in words]
    n_words = sum(len(x.split()) for x in sentences)
    if n_words != len(timed):
        raise ValueError(
            f"the text has {n_words} words but {len(timed)} word timings; sentence_segments needs them one to one "
            "(pass the utterance's own text and words)"
        )
    out, k = [], 0
    for sent in sentences:
        n = len(sent.split())
        start, end = timed[k][0], timed[k + n - 1][1]
        out.append((start, end - start, sent))
        k += n
    return out


def long_yaal(trace: Any, segments: Sequence[tuple[float, float, str]], *, normalize: Any = None) -> dict[str, float]:
    """LongYAAL of a long-form trace against reference segments: ``{"LongYAAL": s, "LongYAAL_CA": s}``.

    What
        ``segments``: ``[(offset, duration, reference text)]`` in stream seconds (e.g.
        :func:`sentence_segments`). The committed words are aligned to the reference words
        (:func:`~asr_lab.metrics.align_words`, after ``normalize``, default English);
        a matched or substituted word joins its reference word's segment, an inserted word
        the segment of the aligned word before it (else after it). Per segment, delays are
        taken relative to its offset, |X| = its duration, |Y*| = its reference words, and
        the cut-off is the recording end (the last segment's end) − offset: :func:`yaal`
        with ``longform=True``. LongYAAL = mean over segments that have a word before the
        cut-off (``nan`` if none).
    Source
        Polák et al., "Better Late Than Never" (arXiv:2509.17349); OmniSTEval ``longform``
        (its SoftSegmenter aligns words by character overlap with a time constraint; on
        output without errors both assign every word to the same segment).
    """
    from asr_lab.metrics.word_alignment import align_words
    from asr_lab.metrics.wer import ENGLISH_NORMALIZER, normalize_text

    norm = normalize or ENGLISH_NORMALIZER
    if not segments:
        raise ValueError("segments is empty; give [(offset, duration, reference text), ...], e.g. sentence_segments()")
    segs = []
    for k, seg in enumerate(segments):
        if not isinstance(seg, (tuple, list)) or len(seg) != 3:
            raise TypeError(f"segments[{k}] must be (offset, duration, reference text), got {_show(seg)}")
        offset = _check_time(seg[0], f"segments[{k}] offset")
        duration = _check_time(seg[1], f"segments[{k}] duration")
        segs.append((offset, duration, str(seg[2])))
    ref_tokens, ref_seg = [], []
    for k, (_, _, text) in enumerate(segs):
        toks = normalize_text(text, norm).split()
        ref_tokens.extend(toks)
        ref_seg.extend([k] * len(toks))
    wd = word_delays(trace)
    hyp_tokens, hyp_word = [], []
    for j, w in enumerate(wd.words):
        for tok in normalize_text(w, norm).split():
            hyp_tokens.append(tok)
            hyp_word.append(j)
    owner: dict[int, int] = {}
    pending: list[int] = []
    last = None
    for pair in align_words(reference=ref_tokens, hypothesis=hyp_tokens):
        if pair.hyp_index is None:
            continue
        j = hyp_word[pair.hyp_index]
        if pair.ref_index is not None:
            last = ref_seg[pair.ref_index]
            for p in pending:
                owner.setdefault(p, last)
            pending = []
            owner.setdefault(j, last)
        elif last is not None:
            owner.setdefault(j, last)
        else:
            pending.append(j)
    recording_end = max(o + d for o, d, _ in segs)
    out = {}
    for suffix, times in (("", wd.delays), ("_CA", wd.elapsed)):
        scores = []
        for k, (offset, duration, text) in enumerate(segs):
            d = [times[j] - offset for j in sorted(owner) if owner[j] == k]
            if not d or duration <= 0:
                continue
            v = _yaal(d, duration, len(text.strip().split(" ")), True, recording_end - offset)
            if not math.isnan(v):
                scores.append(v)
        out["LongYAAL" + suffix] = sum(scores) / len(scores) if scores else math.nan
    return out
