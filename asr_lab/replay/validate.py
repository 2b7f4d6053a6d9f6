"""What a processor may return, checked before anything reaches a trace.

An :class:`~asr_lab.core.protocols.ASRProcessor`'s ``process_iter()``, ``finish()`` and
``partial()`` return ``None``, the reference's ``(None, None, "")`` for "nothing", or one
``(start, end, text)`` segment: ``text`` a ``str``; ``start`` and ``end`` finite numbers of
stream seconds with ``start <= end``, inside the audio fed so far (``[offset, fed]``, give
or take :data:`TIME_SLACK_SEC`, since Whisper pads its window and may overrun by a little).
``last_words()`` returns a list of such triples.

Anything else (a 4-tuple, ``bytes`` or ``None`` as text, NaN times, a segment at 200 s of a
5 s stream) raises :class:`InvalidOutputError`, whose message names the processor, the
call, the step, the value and the rule broken. The replay loop records it as the trace's
error, keeping everything emitted before, so one bad system is one failed run.

:func:`trace_problems` applies the same rules to a trace read back from a file or cache
(written by an older version, or edited by hand), so such a trace is treated as failed
instead of breaking every table it is part of.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Optional

__all__ = ["InvalidOutputError", "TIME_SLACK_SEC", "check_segment", "check_words", "trace_problems"]

TIME_SLACK_SEC = 1.0
"""How far a segment may lie outside the audio fed so far, in seconds."""

_CONTRACT = (
    "an ASRProcessor returns None, (None, None, '') for nothing, or (start_sec, end_sec, text) "
    "with text a str and offset <= start <= end <= audio fed"
)


class InvalidOutputError(ValueError):
    """A processor returned something outside the contract; the message names what and where."""


def check_segment(
    out: Any,
    *,
    processor: str,
    call: str,
    step: int,
    offset: float,
    fed_sec: float,
    slack: float = TIME_SLACK_SEC,
) -> Optional[tuple[float, float, str]]:
    """``out`` as ``(start, end, text)`` with float times, or ``None`` when it says "nothing".

    Empty or blank text counts as nothing (engines return ``(t, t, "")`` when a step
    committed no word). Raises :class:`InvalidOutputError` for anything else outside the
    contract.
    """
    where = f"{processor}.{call}() at step {step}"
    if out is None:
        return None
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        _fail(where, out, f"expected None or a 3-tuple (start, end, text), got {_kind(out)}")
    start, end, text = out
    if start is None and end is None and (text is None or (isinstance(text, str) and not text.strip())):
        return None
    if not isinstance(text, str):
        hint = "; decode bytes first, e.g. text.decode('utf-8')" if isinstance(text, (bytes, bytearray)) else ""
        _fail(where, out, f"text must be a str, got {type(text).__name__}{hint}")
    if not text.strip():
        return None
    a, b = _time(start, "start", where, out), _time(end, "end", where, out)
    if a > b + 1e-9:
        _fail(where, out, f"start {a:.3f} s is after end {b:.3f} s")
    if a < offset - slack or b > fed_sec + slack:
        _fail(
            where,
            out,
            f"the segment [{a:.3f}, {b:.3f}] s lies outside the audio fed so far [{offset:.3f}, {fed_sec:.3f}] s "
            f"(± {slack:g} s); times are stream seconds from the start of the stream, offset included",
        )
    return a, b, text


def check_words(words: Any, *, processor: str, step: int, offset: float, fed_sec: float, slack: float = TIME_SLACK_SEC) -> list:
    """``last_words()``'s answer as a list of ``(start, end, word)`` float triples, each checked like a segment."""
    where = f"{processor}.last_words() at step {step}"
    if words is None:
        return []
    try:
        items = list(words)
    except TypeError:
        _fail(where, words, f"expected a list of (start, end, word), got {_kind(words)}")
    checked = []
    for w in items:
        seg = check_segment(w, processor=processor, call="last_words", step=step, offset=offset, fed_sec=fed_sec, slack=slack)
        if seg is not None:
            checked.append(seg)
    return checked


def trace_problems(trace) -> list[str]:
    """What in a recorded trace breaks the contract (empty list: nothing).

    Checks types and finiteness of every emission, step and partial, ``start <= end``, and
    that no emission ends past the stream's duration (+ :data:`TIME_SLACK_SEC`).
    """
    problems: list[str] = []
    start_at = _num(trace.meta.get("start_at", 0.0))
    duration = _num(trace.meta.get("duration", float("inf")))
    end_of_stream = (start_at or 0.0) + (duration if duration is not None else float("inf"))
    for i, e in enumerate(trace.emissions):
        name = f"emission {i} (step {e.step})"
        if not isinstance(e.text, str):
            problems.append(f"{name}: text is {type(e.text).__name__}, not str: {e.text!r:.60}")
        values = {k: _num(getattr(e, k)) for k in ("start", "end", "emitted_at", "compute_sec", "audio_fed")}
        bad = [k for k, v in values.items() if v is None]
        if bad:
            problems.append(f"{name}: {', '.join(bad)} not finite numbers ({', '.join(repr(getattr(e, k)) for k in bad)})")
            continue
        if values["start"] > values["end"] + 1e-9:
            problems.append(f"{name}: start {values['start']} s is after end {values['end']} s")
        if values["end"] > end_of_stream + TIME_SLACK_SEC:
            problems.append(f"{name}: ends at {values['end']} s, past the end of the stream ({end_of_stream:.3f} s)")
        for w in e.words or []:
            if not (isinstance(w, (tuple, list)) and len(w) == 3 and _num(w[0]) is not None and _num(w[1]) is not None and isinstance(w[2], str)):
                problems.append(f"{name}: word {w!r:.60} is not (start, end, word)")
                break
    for i, s in enumerate(trace.steps):
        if any(_num(getattr(s, k)) is None for k in ("fed_from", "fed_until", "compute_sec", "returned_at")):
            problems.append(f"step {i}: times are not finite numbers")
            break
    for i, p in enumerate(trace.partials):
        if not isinstance(p.text, str) or not isinstance(p.committed, str) or _num(p.at) is None:
            problems.append(f"partial {i}: {p!r:.80} is malformed")
            break
    return problems


def _time(value: Any, name: str, where: str, out: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) and not hasattr(value, "__float__"):
        _fail(where, out, f"{name} must be a number of seconds, got {type(value).__name__}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        _fail(where, out, f"{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(v):
        _fail(where, out, f"{name} must be finite, got {v}")
    return v


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _kind(value: Any) -> str:
    n = f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""
    return f"{type(value).__name__}{n}"


def _fail(where: str, out: Any, rule: str):
    raise InvalidOutputError(f"{where} returned {out!r:.120}: {rule}. ({_CONTRACT})")
