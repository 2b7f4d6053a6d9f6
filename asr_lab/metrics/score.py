"""``score(trace, reference)``: every metric of one replayed utterance, in one record.

It wires a :class:`~asr_lab.replay.Trace` to the pure metric functions: WER and CER of
the committed transcript (:mod:`.wer`), word latencies against the reference timings and
the engine's own (:mod:`.latency`), stability of the displayed text (:mod:`.stability`), and
what a viewer sees when (first visible text, finalization, lag behind the source:
:mod:`.responsiveness`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from asr_lab.metrics.latency import LatencyReport, latency_report
from asr_lab.metrics.simultaneous import simuleval_metrics
from asr_lab.metrics.stability import StabilityReport, display_snapshots, stability_report
from asr_lab.metrics.responsiveness import Responsiveness, responsiveness
from asr_lab.metrics.normalizers import DEFAULT_NORMALIZER, NamedNormalizer, get_normalizer, normalizer_name
from asr_lab.metrics.wer import ENGLISH_NORMALIZER, ErrorCounts, Normalize, cer, wer
from asr_lab.replay.trace import as_trace

__all__ = ["Scores", "score"]


@dataclass
class Scores:
    """The metrics of one trace against one reference."""

    wer: ErrorCounts
    cer: ErrorCounts
    latency: LatencyReport
    stability: StabilityReport
    hypothesis: str
    reference: str
    simultaneous: dict = field(default_factory=dict)
    normalizer: str = DEFAULT_NORMALIZER
    wer_raw: Optional[ErrorCounts] = None
    responsiveness: Optional[Responsiveness] = None

    def to_dict(self) -> dict:
        """One flat row: ``wer``, S/D/I/hits, ``cer``, ``latency_*``, ``rtf``, stability columns,
        and the simultaneous-translation family ``AL`` ... ``YAAL_CA`` (seconds; AP a fraction)."""
        w = self.wer
        row = {
            "wer": w.rate,
            "normalizer": self.normalizer,
            "wer_raw": self.wer_raw.rate if self.wer_raw is not None else float("nan"),
            "word_errors": w.errors,
            "substitutions": w.substitutions,
            "deletions": w.deletions,
            "insertions": w.insertions,
            "reference_words": w.reference_length,
            "cer": self.cer.rate,
            "char_errors": self.cer.errors,
            "reference_chars": self.cer.reference_length,
        }
        row.update(self.latency.to_dict())
        st = self.stability
        row.update(
            {
                "normalized_erasure": st.normalized_erasure,
                "erased_words": st.erased_words,
                "final_words": st.final_words,
                "display_updates": st.updates,
                "revised_words": st.revised_words,
                "revisions_per_word": st.revisions.mean,
                "time_to_stable_mean": st.time_to_stable.mean,
                "time_to_stable_p90": st.time_to_stable.p90,
            }
        )
        row.update(self.simultaneous)
        if self.responsiveness is not None:
            row.update(self.responsiveness.to_dict())
        return row


def score(
    trace,
    reference: Any,
    *,
    normalize: Normalize = DEFAULT_NORMALIZER,
    word_normalize: Normalize | None = None,
    matching: str = "exact",
) -> Scores:
    """Score a replay ``trace`` (a :class:`~asr_lab.replay.Trace`, or the path of one saved
    with ``Trace.to_jsonl``) against ``reference``.

    ``reference``: an utterance-like object (``text`` and optional ``words`` timings
    ``[(start, end, word)]``), a dict with those keys, or the reference text alone (then
    latency against the reference is unavailable; latency against the engine's own word
    times still is). WER/CER use ``normalize``: a name from
    :data:`~asr_lab.metrics.normalizers.NORMALIZER_NAMES` (default ``"whisper-english"``,
    Whisper's English normaliser: numbers, contractions, spellings) or a callable; its name
    is kept in ``Scores.normalizer`` and ``wer_raw`` is the rate without normalisation.
    Latency and stability match single words with ``word_normalize`` (default: ``"basic"``
    for the named normalisers, which work on whole texts; the same callable for a custom
    ``normalize``, and none for ``normalize=None``). ``simultaneous``: :func:`~asr_lab.metrics.simuleval_metrics` (AL, LAAL,
    DAL, AP, StartOffset, EndOffset, YAAL; ``_CA`` computation-aware). ``matching``: which words get a reference latency, ``"exact"`` (default)
    or ``"aligned"`` (ufal/asr_latency's pairing; :mod:`asr_lab.metrics.latency`). Corpus figures come from accumulating these, never from averaging rates.
    """
    name = normalizer_name(normalize)
    normalize = get_normalizer(normalize)
    if word_normalize is None:
        word_normalize = ENGLISH_NORMALIZER if isinstance(normalize, NamedNormalizer) else normalize
    else:
        word_normalize = get_normalizer(word_normalize)
    trace = as_trace(trace)  # a Trace, or the path of its .jsonl
    text, words = _reference(reference)
    sep = trace.separator
    hypothesis = sep.join(e.text for e in trace.emissions)
    ref_for_latency = words if words is not None else text
    return Scores(
        wer=wer(reference=text, hypothesis=hypothesis, normalize=normalize),
        cer=cer(reference=text, hypothesis=hypothesis, normalize=normalize),
        latency=latency_report(
            reference=ref_for_latency,
            hypothesis=trace.emissions,
            audio_duration=trace.duration or None,
            compute_sec=[s.compute_sec for s in trace.steps],
            normalize=word_normalize,
            clock=trace.meta.get("clock"),
            matching=matching,
        ),
        stability=stability_report(
            snapshots=display_snapshots(emissions=trace.emissions, partials=trace.partials, separator=sep),
            normalize=word_normalize,
        ),
        hypothesis=hypothesis,
        reference=text,
        simultaneous=simuleval_metrics(trace, text) if trace.duration > 0 else {},
        normalizer=name,
        wer_raw=wer(reference=text, hypothesis=hypothesis, normalize=None),
        responsiveness=responsiveness(trace, {"text": text, "words": words}),
    )


def _reference(reference: Any) -> tuple[str, Optional[list]]:
    if isinstance(reference, str):
        return reference, None
    if isinstance(reference, dict):
        text, words = reference.get("text"), reference.get("words")
    else:
        text, words = getattr(reference, "text", None), getattr(reference, "words", None)
    if not isinstance(text, str):
        raise TypeError(
            f"reference must be text, or an utterance / dict with a 'text' string (and optional 'words'); "
            f"got {type(reference).__name__} with text={text!r:.60}"
        )
    return text, (list(words) if words else None)
