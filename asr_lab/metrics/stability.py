"""Stability of what a streaming recogniser displays: erasure, revisions, time to stable.

Input (``snapshots=``): the display over time, as a sequence of ``(time, committed, partial)``
— tuples, or objects/dicts with ``time`` (or ``at``), ``committed`` and ``partial`` (or
``text``) — in time order. :func:`display_snapshots` builds this sequence from a trace's
emissions and partial snapshots.
``time`` is stream seconds (the replay clock), ``committed`` is all text committed so far,
``partial`` the current unconfirmed text (``""`` for an engine without partials). The
displayed text is ``committed + " " + partial``, normalised
(:data:`asr_lab.metrics.ENGLISH_NORMALIZER` by default) and split into words, so a change of
case or punctuation alone is not a revision. The **last snapshot is the final display**:
record one after ``finish()`` with ``partial=""`` so that it holds the whole transcript.

Definitions (D_t = the displayed words of snapshot t, t = 0..T; D_T is the final output F):

* **erased words** between consecutive displays:
  ``erased_t = len(D_{t-1}) − len(LCP(D_{t-1}, D_t))`` (LCP = longest common prefix, word
  level; the display before the first snapshot is empty, so ``erased_0 = 0``).
* **normalized erasure** ``NE = Σ_t erased_t / len(F)`` — Arivazhagan et al. 2020,
  "Re-translation versus Streaming for Simultaneous Translation" (IWSLT 2020). With an
  empty final output it is ``nan`` without erasures and ``inf`` with some (the IEEE quotient,
  as for WER).
* **updates**: snapshots whose display differs from the one before (the first counts when
  it is not empty) — how often the reader's text moves.
* per final position k (``k < len(F)``):

  - **revisions** = how many times the word shown at position k is replaced by a
    *different* word, counting only snapshots where the display reaches position k (a
    display that shrinks and grows back with the same word is erasure, not a revision);
  - **first shown** = time of the first snapshot whose display reaches position k;
  - **stable since** = time of the earliest snapshot from which on position k always shows
    F[k] (never shorter, never different);
  - **time to stable** = stable since − first shown (0 for a word that never changed).

  Positions are compared, not aligned: a word inserted near the start shifts every later
  word, and each shifted position counts as revised — that is what the reader sees move.

Source: NE from Arivazhagan et al. 2020; revisions and time-to-stable are asr_lab's own,
defined above (in the spirit of the "stability" / "flicker" measures of re-translation work).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asr_lab.metrics.word_alignment import Summary, _check_text, _check_time, _field, _show, summarize
from asr_lab.metrics.wer import ENGLISH_NORMALIZER, Normalize, normalize_text

__all__ = [
    "StabilityAccumulator",
    "StabilityReport",
    "WordStability",
    "display_snapshots",
    "displayed_words",
    "erased_words",
    "stability_report",
]


@dataclass(frozen=True)
class WordStability:
    """One position of the final output: its word, revisions and when it settled (see module doc)."""

    position: int
    word: str
    revisions: int
    first_shown: float
    stable_since: float

    @property
    def time_to_stable(self) -> float:
        """stable_since − first_shown (seconds)."""
        return self.stable_since - self.first_shown

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "word": self.word,
            "revisions": self.revisions,
            "first_shown": self.first_shown,
            "stable_since": self.stable_since,
            "time_to_stable": self.time_to_stable,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordStability:
        return cls(
            position=int(data["position"]),
            word=data["word"],
            revisions=int(data["revisions"]),
            first_shown=float(data["first_shown"]),
            stable_since=float(data["stable_since"]),
        )


def _snapshot(item: Any, k: int) -> tuple[float, str, str]:
    where = f"snapshots[{k}]"
    if isinstance(item, (tuple, list)):
        if len(item) != 3:
            raise ValueError(
                f"{where} must be (time, committed_text, partial_text), got {len(item)} items: {_show(item)}"
            )
        time, committed, partial = item
    elif isinstance(item, str):
        raise TypeError(f"{where} must be (time, committed_text, partial_text), got the str {_show(item)}")
    else:  # asr_lab.replay's PartialSnapshot names them at / committed / text
        time = _field(item, "time", where, required=False)
        if time is None:
            time = _field(item, "at", where, required=False)
        if time is None:
            raise TypeError(f"{where} has no 'time' (or 'at'): {_show(item)}; give it the stream time of the display")
        committed = _field(item, "committed", where)
        partial = _field(item, "partial", where, required=False)
        if partial is None:
            partial = _field(item, "text", where, required=False, default="")
    time = _check_time(time, f"{where} time")
    committed = _check_text(committed, f"{where} committed text")
    partial = "" if partial is None else _check_text(partial, f"{where} partial text")
    return time, committed, partial


def displayed_words(
    *, snapshots: Sequence[Any], normalize: Normalize = ENGLISH_NORMALIZER
) -> list[tuple[float, list[str]]]:
    """``[(time, displayed words), ...]``: each snapshot's ``committed + " " + partial``, normalised and split.

    Checks the snapshots (times finite, ≥ 0 and non-decreasing; texts ``str``).
    """
    if isinstance(snapshots, (str, bytes)) or not hasattr(snapshots, "__iter__"):
        raise TypeError(
            f"snapshots must be a sequence of (time, committed_text, partial_text), got "
            f"{type(snapshots).__name__} {_show(snapshots)}"
        )
    out: list[tuple[float, list[str]]] = []
    for k, item in enumerate(snapshots):
        time, committed, partial = _snapshot(item, k)
        if out and time < out[-1][0]:
            raise ValueError(
                f"snapshots must be in time order: snapshots[{k}] time {time!r} is before "
                f"snapshots[{k - 1}] time {out[-1][0]!r}; sort them by time"
            )
        out.append((time, normalize_text(f"{committed} {partial}", normalize).split()))
    return out


def display_snapshots(
    *, emissions: Sequence[Any], partials: Sequence[Any] = (), separator: str = " "
) -> list[tuple[float, str, str]]:
    """What a live display showed, ``[(time, committed, partial), ...]``, from emissions and partials.

    What
        ``emissions``: committed segments with ``emitted_at`` and ``text`` (as for
        :func:`asr_lab.metrics.latency_report`); ``partials``: the engine's unconfirmed text
        over time — objects/dicts with ``at`` (or ``time``) and ``text`` (or ``partial``),
        or ``(time, text)`` pairs — as recorded when it changed. Events are replayed in time
        order (at equal times emissions first, then partials, in input order); the committed
        text is the emissions so far joined by ``separator`` (the engine's ``sep``). One
        snapshot per distinct time, holding the state after every event at that time, so an
        emission and the partial that replaced it in the same step are never seen half-way.
        A last snapshot with an empty partial is added when the last partial is not empty:
        the final display is the committed transcript.
    """
    events: list[tuple[float, int, int, str]] = []
    for k, em in enumerate(emissions):
        where = f"emissions[{k}]"
        if isinstance(em, (tuple, list, str)):
            raise TypeError(f"{where} must be an object or dict with emitted_at and text, got {_show(em)}")
        events.append(
            (
                _check_time(_field(em, "emitted_at", where), f"{where}.emitted_at"),
                0,
                k,
                _check_text(_field(em, "text", where), f"{where}.text"),
            )
        )
    for k, item in enumerate(partials):
        where = f"partials[{k}]"
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise ValueError(f"{where} must be (time, partial_text), got {_show(item)}")
            time, text = item
        elif isinstance(item, str):
            raise TypeError(f"{where} must be (time, partial_text) or an object with at and text, got {_show(item)}")
        else:
            time = _field(item, "at", where, required=False)
            if time is None:
                time = _field(item, "time", where)
            text = _field(item, "text", where, required=False)
            if text is None:
                text = _field(item, "partial", where, required=False, default="")
        text = "" if text is None else _check_text(text, f"{where} text")
        events.append((_check_time(time, f"{where} time"), 1, k, text))
    events.sort(key=lambda e: (e[0], e[1], e[2]))

    committed: list[str] = []
    partial = ""
    out: list[tuple[float, str, str]] = []
    for n, (time, kind, _, text) in enumerate(events):
        if kind == 0:
            committed.append(text)
        else:
            partial = text
        if n + 1 == len(events) or events[n + 1][0] != time:
            out.append((time, separator.join(committed), partial))
    if out and out[-1][2].strip():
        out.append((out[-1][0], out[-1][1], ""))
    return out


def erased_words(*, previous: Sequence[str], current: Sequence[str]) -> int:
    """Words erased going from display ``previous`` to ``current``.

    Formula: ``len(previous) − len(LCP(previous, current))`` — every word after the first
    difference is taken back, even if it reappears later (Arivazhagan et al. 2020).
    """
    lcp = 0
    for a, b in zip(previous, current):
        if a != b:
            break
        lcp += 1
    return len(previous) - lcp


@dataclass(frozen=True)
class StabilityReport:
    """Stability of one utterance's display (or, from :class:`StabilityAccumulator`, a corpus).

    Fields (definitions and sources in the module doc)
        ``snapshots``, ``updates``, ``final_words``, ``erased_words`` (Σ erased_t),
        ``normalized_erasure`` (= erased_words / final_words), ``revised_words`` (final
        words with at least one revision), ``revisions`` and ``time_to_stable``
        (:class:`~asr_lab.metrics.Summary` over final words; ``revisions.mean`` is the
        revisions per word). ``words`` keeps the per-position records (left out of
        ``to_dict`` unless asked).
    """

    snapshots: int
    updates: int
    final_words: int
    erased_words: int
    revised_words: int
    revisions: Summary
    time_to_stable: Summary
    words: tuple[WordStability, ...] = field(default=(), repr=False, compare=False)

    @property
    def normalized_erasure(self) -> float:
        """erased_words / final_words; ``nan`` (0/0) or ``inf`` when there are no final words."""
        if self.final_words == 0:
            return math.inf if self.erased_words else math.nan
        return self.erased_words / self.final_words

    def to_dict(self, *, include_words: bool = False) -> dict[str, Any]:
        """Flat dict (one DataFrame row): counts, ``normalized_erasure``, ``revisions_mean``, ..."""
        out: dict[str, Any] = {
            "snapshots": self.snapshots,
            "updates": self.updates,
            "final_words": self.final_words,
            "erased_words": self.erased_words,
            "normalized_erasure": self.normalized_erasure,
            "revised_words": self.revised_words,
        }
        out.update(self.revisions.to_dict(prefix="revisions_"))
        out.update(self.time_to_stable.to_dict(prefix="time_to_stable_"))
        if include_words:
            out["words"] = [w.to_dict() for w in self.words]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StabilityReport:
        """Inverse of :meth:`to_dict` (``words`` restored only if present)."""
        return cls(
            snapshots=int(data["snapshots"]),
            updates=int(data["updates"]),
            final_words=int(data["final_words"]),
            erased_words=int(data["erased_words"]),
            revised_words=int(data["revised_words"]),
            revisions=Summary.from_dict(data, prefix="revisions_"),
            time_to_stable=Summary.from_dict(data, prefix="time_to_stable_"),
            words=tuple(WordStability.from_dict(w) for w in data.get("words") or ()),
        )


def stability_report(*, snapshots: Sequence[Any], normalize: Normalize = ENGLISH_NORMALIZER) -> StabilityReport:
    """Normalized erasure, updates, revisions and time-to-stable of one streamed display.

    What / formula / source: see the module doc (NE: Arivazhagan et al. 2020). The last
    snapshot is the final output. No snapshots gives an empty report (NE ``nan``).
    """
    displays = displayed_words(snapshots=snapshots, normalize=normalize)
    erased = 0
    updates = 0
    previous: list[str] = []
    for _, words in displays:
        erased += erased_words(previous=previous, current=words)
        updates += words != previous
        previous = words
    final = previous

    records: list[WordStability] = []
    for k, target in enumerate(final):
        first_shown: float | None = None
        last_shown: str | None = None
        revisions = 0
        stable_from = 0  # index of the earliest snapshot of the final unbroken run
        for t, (time, words) in enumerate(displays):
            shown = words[k] if k < len(words) else None
            if shown is not None:
                if first_shown is None:
                    first_shown = time
                elif shown != last_shown:
                    revisions += 1
                last_shown = shown
            if shown != target:
                stable_from = t + 1
        if first_shown is None:  # pragma: no cover - the final display shows every final position
            raise RuntimeError("internal error: a final word was never shown; please report this bug")
        records.append(WordStability(k, target, revisions, first_shown, displays[stable_from][0]))

    return StabilityReport(
        snapshots=len(displays),
        updates=updates,
        final_words=len(final),
        erased_words=erased,
        revised_words=sum(1 for r in records if r.revisions),
        revisions=summarize([r.revisions for r in records]),
        time_to_stable=summarize([r.time_to_stable for r in records]),
        words=tuple(records),
    )


class StabilityAccumulator:
    """Corpus stability: sums erasures and final words, pools the per-word records.

    Formula
        ``corpus NE = Σ erased_words / Σ final_words`` (like corpus WER, never a mean of
        per-utterance NE); ``snapshots``, ``updates``, ``revised_words`` are sums;
        ``revisions`` and ``time_to_stable`` are summaries over the pooled final words.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every report added so far."""
        self._snapshots = self._updates = self._final = self._erased = self._revised = 0
        self._words: list[WordStability] = []
        self._n = 0

    def update(self, *, snapshots: Sequence[Any], normalize: Normalize = ENGLISH_NORMALIZER) -> StabilityReport:
        """``stability_report(...)``, added and returned."""
        report = stability_report(snapshots=snapshots, normalize=normalize)
        self.add(report)
        return report

    def add(self, report: StabilityReport) -> None:
        """Add one utterance's report (it must still hold its per-word records)."""
        if not isinstance(report, StabilityReport):
            raise TypeError(f"add() takes a StabilityReport, got {type(report).__name__} {_show(report)}")
        if report.final_words and len(report.words) != report.final_words:
            raise ValueError(
                "this StabilityReport has no per-word records (made by from_dict without 'words'?), so its "
                "words cannot be pooled; rebuild it with stability_report() or to_dict(include_words=True)"
            )
        self._snapshots += report.snapshots
        self._updates += report.updates
        self._final += report.final_words
        self._erased += report.erased_words
        self._revised += report.revised_words
        self._words.extend(report.words)
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def compute(self) -> StabilityReport:
        """The pooled :class:`StabilityReport` (``words`` = all records, in the order added)."""
        return StabilityReport(
            snapshots=self._snapshots,
            updates=self._updates,
            final_words=self._final,
            erased_words=self._erased,
            revised_words=self._revised,
            revisions=summarize([w.revisions for w in self._words]),
            time_to_stable=summarize([w.time_to_stable for w in self._words]),
            words=tuple(self._words),
        )
