"""Where each word's latency comes from: recognition, policy hold, compute and queueing.

For every reference word that was committed correctly, four moments on the stream:

1. ``audio_end`` — the word's end in the reference timings;
2. ``first_seen`` — the audio fed (stream s) when a hypothesis the engine showed first
   contained the word correctly: a partial snapshot (``Trace.partials``; the display =
   committed text + partial) or the committing emission itself, whichever came first.
   "Correctly" = the word is an exact match when that hypothesis is aligned to the
   reference (:func:`~asr_lab.metrics.align_words`);
3. ``committed`` — the audio fed when the call that committed it began
   (``Emission.audio_fed``), i.e. when the policy decided;
4. ``emitted`` — the stream time the commit appeared (``Emission.emitted_at``).

The latency splits into three additive parts (seconds)::

    latency  = emitted − audio_end
             = (first_seen − audio_end)      recognition: audio the model needed to get it right
             + (committed − first_seen)      policy hold: audio the policy waited for to confirm it
             + (emitted − committed)         compute & queueing: time spent computing, incl. backlog

On the ``unaware`` clock the last part is 0. The first two are in audio seconds
(computation-unaware); the third is the computation-aware surplus — the same split as
SimulEval's delays vs elapsed (:mod:`asr_lab.metrics.simultaneous`). Recognition is negative
when a hypothesis held the word before the reference says it ended (a guess, or a
forced-alignment error). Without partials (an engine without ``partial()``), the first
correct hypothesis is unknown and ``first_seen = committed``: the hold is folded into
recognition; ``has_partials`` tells which.

Source: the policy-lag / compute-lag split of Whisper-Streaming (Macháček et al. 2023) and
SimulEval's computation-aware latency (Ma et al. 2020), refined with the first correct
partial (the "time to first correct" of stability studies, e.g. Shangguan et al. 2021).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from asr_lab.metrics.word_alignment import Summary, align_words, summarize
from asr_lab.metrics.latency import word_latencies
from asr_lab.metrics.wer import ENGLISH_NORMALIZER, Normalize, normalize_text

__all__ = ["COMPONENTS", "Decomposition", "WordDecomposition", "decompose_results", "latency_decomposition"]

COMPONENTS = ("recognition", "policy_hold", "compute")
"""The three additive parts of a word's latency, in order."""


@dataclass(frozen=True)
class WordDecomposition:
    """One correctly committed reference word and its four moments (module doc)."""

    ref_index: int
    word: str
    audio_end: float
    first_seen: float
    first_seen_at: float
    committed: float
    emitted: float

    @property
    def recognition(self) -> float:
        return self.first_seen - self.audio_end

    @property
    def policy_hold(self) -> float:
        return self.committed - self.first_seen

    @property
    def compute(self) -> float:
        return self.emitted - self.committed

    @property
    def latency(self) -> float:
        return self.emitted - self.audio_end

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {c: getattr(self, c) for c in COMPONENTS} | {"latency": self.latency}


@dataclass(frozen=True)
class Decomposition:
    """The decomposition of one trace (or, from :meth:`pool`, of many).

    ``recognition``/``policy_hold``/``compute``/``latency``: :class:`Summary` of each part
    over ``words``; ``reference_words``: tokens in the reference; ``has_partials``: whether
    partial hypotheses were available (else policy hold is folded into recognition).
    """

    words: tuple[WordDecomposition, ...]
    reference_words: int
    has_partials: bool
    recognition: Summary = field(init=False)
    policy_hold: Summary = field(init=False)
    compute: Summary = field(init=False)
    latency: Summary = field(init=False)

    def __post_init__(self) -> None:
        for name in COMPONENTS + ("latency",):
            object.__setattr__(self, name, summarize([getattr(w, name) for w in self.words]))

    def to_dict(self) -> dict[str, Any]:
        """One flat row: ``recognition_mean``, ``policy_hold_p50``, ... and counts."""
        row: dict[str, Any] = {"decomposed_words": len(self.words), "reference_words": self.reference_words,
                               "has_partials": self.has_partials}
        for name in COMPONENTS + ("latency",):
            row.update(getattr(self, name).to_dict(prefix=f"{name}_"))
        return row

    def to_dataframe(self):
        """One row per word with its moments and parts."""
        import pandas as pd

        return pd.DataFrame([w.to_dict() for w in self.words])

    @classmethod
    def pool(cls, parts: list[Decomposition]) -> Decomposition:
        """Corpus decomposition: the words of all parts pooled (each word counts once)."""
        return cls(
            tuple(w for p in parts for w in p.words),
            sum(p.reference_words for p in parts),
            any(p.has_partials for p in parts),
        )


def latency_decomposition(trace: Any, reference: Any, *, normalize: Normalize = ENGLISH_NORMALIZER) -> Decomposition:
    """Split each correctly committed word's latency into recognition, policy hold and compute.

    ``trace``: an :class:`asr_lab.replay.Trace` (its partials and steps are used);
    ``reference``: word timings ``[(start, end, word), ...]`` or an utterance / dict with
    ``words``. Formula and source: module doc. Cost: one alignment per distinct displayed
    hypothesis, O(snapshots × reference words × hypothesis words).
    """
    words_ref = reference
    if isinstance(reference, dict) or hasattr(reference, "words"):
        words_ref = reference["words"] if isinstance(reference, dict) else reference.words
    if not words_ref or isinstance(words_ref, str):
        raise ValueError(
            "latency_decomposition needs reference word timings [(start, end, word), ...] (an utterance with .words); "
            f"got {reference!r:.80}"
        )
    committed = word_latencies(reference=words_ref, hypothesis=trace.emissions, normalize=normalize, clock=trace.meta.get("clock"))
    ref_tokens: list[str] = []
    for item in words_ref:
        word = item[2] if isinstance(item, (tuple, list)) else (item["word"] if isinstance(item, dict) else item.word)
        ref_tokens.extend(normalize_text(word, normalize).split())

    fed_of_step = {s.index: s.fed_until for s in trace.steps}
    first_seen: dict[int, tuple[float, float]] = {}  # ref index -> (audio fed, stream time)
    seen_texts: set[str] = set()
    for snap in trace.partials:
        display = normalize_text(f"{snap.committed} {snap.text}", normalize)
        if display in seen_texts or not display.strip():
            continue
        seen_texts.add(display)
        fed = fed_of_step.get(snap.step, snap.at)
        for pair in align_words(reference=ref_tokens, hypothesis=display.split()):
            if pair.op == "match" and pair.ref_index not in first_seen:
                first_seen[pair.ref_index] = (fed, snap.at)

    out: list[WordDecomposition] = []
    for w in committed:
        if w.ref_index is None or w.ref_end is None:
            continue
        e = trace.emissions[w.emission_index]
        fed, at = first_seen.get(w.ref_index, (e.audio_fed, e.emitted_at))
        if fed > e.audio_fed:  # the partial came later than the commit (re-shown): the commit was first
            fed, at = e.audio_fed, e.emitted_at
        out.append(WordDecomposition(w.ref_index, w.word, w.ref_end, fed, at, e.audio_fed, e.emitted_at))
    return Decomposition(tuple(out), len(ref_tokens), bool(trace.partials))


def decompose_results(results: Any, *, normalize: Normalize = ENGLISH_NORMALIZER) -> dict[str, Decomposition]:
    """``{system: pooled Decomposition}`` of an :class:`asr_lab.Results` (utterances with
    reference word timings only; every repeat's words pooled)."""
    parts: dict[str, list[Decomposition]] = {s: [] for s in results.systems}
    for (system, utt, _rep), trace in results.traces.items():
        ref = results.references.get(utt)
        if ref is None or not getattr(ref, "words", None) or not trace.ok:
            continue
        parts[system].append(latency_decomposition(trace, ref, normalize=normalize))
    return {s: Decomposition.pool(p) for s, p in parts.items()}
