"""Traces and comparison results in other tools' formats, and SimulEval logs back in.

Writers (each returns the text and writes ``path`` when given):

* :func:`to_simuleval_log` — SimulEval's ``instances.log``: one JSON object per utterance
  with ``prediction``, ``delays`` (ms, computation-unaware: audio fed when each word was
  committed), ``elapsed`` (ms, computation-aware: stream time each word was emitted),
  ``source_length`` (ms), ``reference``, ``source``. SimulEval's ``--score-only`` and its
  latency scorers read it. Our ``elapsed`` is a stream time already (OmniSTEval's
  *corrected* computation-aware delay): do **not** apply OmniSTEval's
  ``--fix_simuleval_emission_ca`` to it.
* :func:`to_omnisteval` — a folder OmniSTEval evaluates: ``instances.log`` (as above),
  ``references.txt`` (one reference per line) and ``segmentation.yaml`` (one segment per
  utterance: ``wav``, ``offset`` 0, ``duration``) for ``omnisteval shortform`` or
  ``omnisteval longform --speech_segmentation``.
* :func:`to_ctm` — NIST CTM of the committed words: ``<utterance> <channel> <start>
  <duration> <word>`` (seconds; the engine's word times, or each segment's span split
  evenly when it gave none) — for sclite / asclite and forced-alignment comparisons.
* :func:`to_srt`, :func:`to_webvtt` — subtitles of the committed words, one cue per
  emission (its audio span; ``show="emitted"`` times each cue from when it appeared on
  screen instead — what a live viewer saw).

Reader:

* :func:`read_simuleval_log` — SimulEval (or OmniSTEval-input) JSONL back into
  :class:`~asr_lab.replay.Trace` objects, one emission per group of words that share a delay,
  so results of other tools can be scored (:func:`asr_lab.metrics.simuleval_metrics`,
  :func:`asr_lab.score` without timings), audited and plotted in the lab.
  ``fix_elapsed=True`` applies OmniSTEval's correction to SimulEval's ``elapsed``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

__all__ = [
    "read_simuleval_log",
    "simuleval_instance",
    "to_ctm",
    "to_omnisteval",
    "to_simuleval_log",
    "to_srt",
    "to_webvtt",
]

PathLike = Union[str, os.PathLike]


def _text(value: Any) -> str:
    """``value`` as text that any UTF-8 file can hold: surrogate pairs joined, a lone surrogate
    (from a decoder's bad byte, ``surrogateescape``) replaced by U+FFFD."""
    return str(value).encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _seconds(t: Any, what: str) -> float:
    """A time for a file: negative clamped to 0 (before the stream start nothing is shown);
    NaN or infinite refused, naming ``what``."""
    t = float(t)
    if not math.isfinite(t):
        raise ValueError(
            f"{what} has time {t!r}; subtitles and CTM need finite times — the trace is damaged "
            "(check Trace.audit()) or the engine gave no time; fix or drop that emission"
        )
    return max(0.0, t)


def _yaml_quoted(value: str) -> str:
    """A YAML double-quoted scalar of ``value`` (any text: quotes, backslashes, controls escaped)."""
    out = []
    for ch in _text(value):
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _write(text: str, path: PathLike | None) -> str:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    return text


def _reference_text(reference: Any) -> str | None:
    if reference is None or isinstance(reference, str):
        return reference
    if isinstance(reference, dict):
        return reference.get("text")
    return getattr(reference, "text", None)


def _items(source: Any, references: Any) -> list[tuple[str, Any, str | None]]:
    """``[(name, trace, reference text)]`` from a Trace, a list of traces, ``{name: trace}`` or Results."""
    from asr_lab.replay import Trace

    if isinstance(source, Trace):
        name = str(source.meta.get("utterance") or "utt0")
        ref = references.get(name) if isinstance(references, dict) else references
        return [(name, source, _reference_text(ref))]
    refs = dict(references or {})
    if isinstance(source, dict):
        pairs = list(source.items())
    elif isinstance(source, (list, tuple)):
        pairs = [(str(t.meta.get("utterance") or f"utt{i}"), t) for i, t in enumerate(source)]
    else:
        raise TypeError(f"expected a Trace, a list of traces, {{name: trace}} or Results; got {type(source).__name__}")
    for name, t in pairs:
        if not isinstance(t, Trace):
            raise TypeError(f"{name!r} is a {type(t).__name__}, not an asr_lab Trace")
    return [(str(n), t, _reference_text(refs.get(n))) for n, t in pairs]


def _from_results(results: Any, system: str | None, repeat: int) -> tuple[dict, dict]:
    systems = results.systems
    if system is None:
        if len(systems) != 1:
            raise ValueError(f"these Results hold {len(systems)} systems ({', '.join(systems)}); pass system=<one of them>")
        system = systems[0]
    if system not in systems:
        raise ValueError(f"unknown system {system!r}; these were compared: {', '.join(systems)}")
    traces = {utt: t for (s, utt, r), t in results.traces.items() if s == system and r == repeat}
    return traces, {u: results.references.get(u) for u in traces}


def simuleval_instance(trace: Any, *, index: int = 0, reference: Any = None, source: str | None = None) -> dict:
    """One SimulEval ``instances.log`` record of ``trace`` (see the module doc; times in ms)."""
    from asr_lab.metrics.simultaneous import word_delays

    wd = word_delays(trace)
    return {
        "index": index,
        "prediction": _text(" ".join(wd.words)),
        "delays": [d * 1000.0 for d in wd.delays],
        "elapsed": [e * 1000.0 for e in wd.elapsed],
        "prediction_length": len(wd.words),
        "reference": _text(_reference_text(reference) or ""),
        "source": [_text(source or str(trace.meta.get("utterance") or f"utt{index}"))],
        "source_length": wd.source_length * 1000.0,
    }


def to_simuleval_log(
    source: Any, path: PathLike | None = None, *, references: Any = None, system: str | None = None, repeat: int = 0
) -> str:
    """SimulEval ``instances.log`` JSONL of a trace, a list / dict of traces, or one system of a Results.

    ``references``: ``{name: text or utterance}`` (a single text for a single trace).
    """
    if hasattr(source, "traces") and hasattr(source, "references"):
        source, references = _from_results(source, system, repeat)
    lines = [
        json.dumps(simuleval_instance(t, index=i, reference=ref, source=name), ensure_ascii=False)
        for i, (name, t, ref) in enumerate(_items(source, references))
    ]
    return _write("".join(line + "\n" for line in lines), path)


def to_omnisteval(
    source: Any, out_dir: PathLike, *, references: Any = None, system: str | None = None, repeat: int = 0,
    segments: dict | None = None,
) -> Path:
    """Write ``instances.log``, ``references.txt`` and ``segmentation.yaml`` for OmniSTEval into ``out_dir``.

    Then: ``omnisteval shortform --hypothesis_file instances.log --ref_sentences_file
    references.txt`` (per-utterance AL/LAAL/YAAL..., CU and CA), or ``omnisteval longform
    --speech_segmentation segmentation.yaml --ref_sentences_file references.txt
    --hypothesis_file instances.log --lang en`` (LongYAAL after resegmentation).
    Every utterance needs a reference text. ``segments``: ``{name: [(offset, duration,
    text), ...]}`` (e.g. :func:`asr_lab.metrics.simultaneous.sentence_segments`) writes one
    reference segment per entry for long-form evaluation, instead of one per utterance.
    """
    if hasattr(source, "traces") and hasattr(source, "references"):
        source, references = _from_results(source, system, repeat)
    items = _items(source, references)
    missing = [n for n, _, ref in items if not ref]
    if missing:
        raise ValueError(f"OmniSTEval needs a reference text for every utterance; missing for {missing[:5]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    to_simuleval_log(dict((n, t) for n, t, _ in items), out / "instances.log", references={n: r for n, _, r in items})
    segs = segments or {}
    rows = [(n, o, d, txt) for n, t, r in items for (o, d, txt) in (segs.get(n) or [(0.0, t.duration, r)])]
    (out / "references.txt").write_text("".join(_text(" ".join(txt.split())) + "\n" for *_, txt in rows), encoding="utf-8")
    seg = "".join(
        f"- {{wav: {_yaml_quoted(n)}, offset: {_seconds(o, f'segment of {n!r}')!r}, duration: {_seconds(d, f'segment of {n!r}')!r}}}\n"
        for n, o, d, _ in rows
    )
    (out / "segmentation.yaml").write_text(seg, encoding="utf-8")
    return out


def _split_evenly(a: float, b: float, text: str) -> list[tuple[float, float, str]]:
    """The white-space separated tokens of ``text``, the span ``a``–``b`` shared evenly among them."""
    toks = _text(text).split()
    step = (b - a) / len(toks) if toks else 0.0
    return [(a + i * step, a + (i + 1) * step, w) for i, w in enumerate(toks)]


def _timed_words(trace: Any) -> list[tuple[float, float, str, Any]]:
    """One ``(start, end, token, emission)`` per CTM token: an engine "word" holding white space
    (``"New York"``) becomes one token per part, its span shared evenly."""
    out = []
    for k, e in enumerate(trace.emissions):
        where = f"emission {k} ({_text(e.text)[:30]!r})"
        if e.words:
            for a, b, w in e.words:
                a, b = _seconds(a, where), _seconds(b, where)
                out.extend((x, y, t, e) for x, y, t in _split_evenly(a, b, str(w)))
        else:
            a, b = _seconds(e.start, where), _seconds(e.end, where)
            out.extend((x, y, t, e) for x, y, t in _split_evenly(a, b, e.text))
    return out


def to_ctm(trace: Any, path: PathLike | None = None, *, utterance: str | None = None, channel: str = "1") -> str:
    """NIST CTM of the committed words: ``utt channel start duration word`` (seconds, 3 decimals).

    Always five fields: an engine word holding white space is written as one line per part.
    Negative times are clamped to 0; NaN or infinite ones raise ValueError naming the emission.
    """
    utt = utterance or str(trace.meta.get("utterance") or "utt0")
    if not utt or any(c.isspace() for c in utt):
        raise ValueError(f"utterance={utt!r} must be one token without white space (CTM fields are space-separated)")
    if not channel or any(c.isspace() for c in str(channel)):
        raise ValueError(f"channel={channel!r} must be one token without white space (CTM fields are space-separated)")
    lines = [f"{_text(utt)} {channel} {a:.3f} {max(0.0, b - a):.3f} {w}\n" for a, b, w, _ in _timed_words(trace)]
    return _write("".join(lines), path)


def _cues(trace: Any, show: str) -> list[tuple[float, float, str]]:
    if show not in ("audio", "emitted"):
        raise ValueError(f"show={show!r} must be 'audio' (cue = the words' audio span) or 'emitted' (cue from when it appeared)")
    cues = []
    ems = [e for e in trace.emissions if e.text.strip()]
    for k, e in enumerate(ems):
        where = f"emission {k} ({_text(e.text)[:30]!r})"
        if show == "audio":
            a = _seconds(e.start, where)
            b = max(_seconds(e.end, where), a + 0.001)
        else:
            a = _seconds(e.emitted_at, where)
            nxt = (_seconds(ems[k + 1].emitted_at, f"emission {k + 1}") if k + 1 < len(ems)
                   else a + max(1.0, _seconds(e.end, where) - _seconds(e.start, where)))
            b = max(nxt, a + 0.001)
        cues.append((a, b, _text(" ".join(e.text.split()))))
    return cues


def _vtt_escape(text: str) -> str:
    """WebVTT cue text with ``&``, ``<`` and ``>`` as character references: the cue keeps its
    words (``<`` would open a tag, ``-->`` would end the cue's text)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _stamp(t: float, sep: str) -> str:
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(trace: Any, path: PathLike | None = None, *, show: str = "audio") -> str:
    """SubRip subtitles: one numbered cue per emission (``HH:MM:SS,mmm --> HH:MM:SS,mmm``)."""
    blocks = [f"{i}\n{_stamp(a, ',')} --> {_stamp(b, ',')}\n{text}\n" for i, (a, b, text) in enumerate(_cues(trace, show), 1)]
    return _write("\n".join(blocks), path)


def to_webvtt(trace: Any, path: PathLike | None = None, *, show: str = "audio") -> str:
    """WebVTT subtitles: ``WEBVTT`` header, one cue per emission (``HH:MM:SS.mmm``); ``&``, ``<``,
    ``>`` in the text are written as ``&amp;``, ``&lt;``, ``&gt;`` (the WebVTT spec's escapes)."""
    blocks = [f"{_stamp(a, '.')} --> {_stamp(b, '.')}\n{_vtt_escape(text)}\n" for a, b, text in _cues(trace, show)]
    return _write("WEBVTT\n\n" + "\n".join(blocks), path)


def read_simuleval_log(
    source: PathLike | Iterable[str], *, fix_elapsed: bool = False, clock: str = "virtual"
) -> dict[str, tuple[Any, str]]:
    """SimulEval ``instances.log`` JSONL → ``{name: (Trace, reference text)}``.

    Each run of words with the same ``delays`` value becomes one emission: ``audio_fed`` =
    the delay, ``emitted_at`` = the last word's ``elapsed`` (or the delay when absent),
    ``start``/``end`` = the previous delay and this one (SimulEval logs no word times, so
    the span is the audio read in between; audits of spans are not meaningful here).
    ``source_length`` (ms) becomes ``meta["duration"]``. ``fix_elapsed``: apply
    OmniSTEval's correction (:func:`asr_lab.metrics.simultaneous.corrected_elapsed`) to
    ``elapsed`` written by SimulEval itself. ``name`` = the ``source`` entry, or the index.
    """
    from asr_lab.metrics.simultaneous import corrected_elapsed
    from asr_lab.replay import Emission, Trace

    if isinstance(source, (str, os.PathLike)) and "\n" not in str(source):
        lines = Path(source).read_text(encoding="utf-8").splitlines()
    else:
        lines = str(source).splitlines() if isinstance(source, str) else list(source)
    out: dict[str, tuple[Any, str]] = {}
    lines_of: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {n} of the SimulEval log is not JSON ({exc}); expected one instance per line") from None
        words, delays, elapsed, source_length = _checked_instance(rec, n)
        if fix_elapsed:
            elapsed = corrected_elapsed(delays, elapsed)
        src = rec.get("source")
        name = str(src[0] if isinstance(src, list) and src else src if src else rec.get("index", n - 1))
        if name in lines_of:
            raise ValueError(
                f"line {n}: source {name!r} was already read on line {lines_of[name]}; each instance needs its own "
                "source (merging them would score two utterances as one) — give each line a distinct 'source'"
            )
        lines_of[name] = n
        emissions, i, prev = [], 0, 0.0
        while i < len(words):
            j = i
            while j + 1 < len(words) and delays[j + 1] == delays[i] and elapsed[j + 1] == elapsed[i]:
                j += 1
            d = delays[i]
            emissions.append(Emission(min(prev, d), d, " ".join(words[i : j + 1]), emitted_at=elapsed[j],
                                      compute_sec=max(0.0, elapsed[j] - d), audio_fed=d, step=len(emissions)))
            prev, i = d, j + 1
        meta = {"duration": source_length, "clock": clock, "utterance": name,
                "imported_from": "simuleval", "separator": " "}
        out[name] = (Trace(emissions=emissions, meta=meta), str(rec.get("reference") or ""))
    return out


def _ms_list(rec: dict, key: str, n: int) -> list[float] | None:
    """``rec[key]`` as seconds: a JSON list of finite, non-negative numbers in ms (booleans refused)."""
    value = rec.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(
            f"line {n}: {key!r} is {value!r:.60} ({type(value).__name__}); it must be a JSON list of numbers "
            f"(milliseconds, one per predicted word), e.g. [500, 1200]"
        )
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(
                f"line {n}: {key}[{i}] = {v!r:.40} is not a finite non-negative number of milliseconds; "
                f"fix the value (booleans, strings, NaN and negative times are refused)"
            )
        out.append(float(v) / 1000.0)
    return out


def _checked_instance(rec: Any, n: int) -> tuple[list[str], list[float], list[float], float]:
    """Validate one SimulEval record: ``(words, delays s, elapsed s, source_length s)`` or a
    ValueError naming line ``n``, the field and what is allowed."""
    if not isinstance(rec, dict):
        raise ValueError(
            f"line {n}: a SimulEval instance is a JSON object with 'prediction', 'delays' and 'source_length', "
            f"not {type(rec).__name__} {rec!r:.60}"
        )
    prediction = rec.get("prediction", "")
    if not isinstance(prediction, str):
        raise ValueError(f"line {n}: 'prediction' is {type(prediction).__name__} {prediction!r:.60}; it must be the predicted text (a string)")
    words = prediction.split()
    delays = _ms_list(rec, "delays", n) or []
    if len(delays) != len(words):
        raise ValueError(
            f"line {n}: {len(words)} predicted words but {len(delays)} delays; each word needs one delay "
            "(was the log written with latency_unit other than 'word'?)"
        )
    for i in range(1, len(delays)):
        if delays[i] < delays[i - 1]:
            raise ValueError(
                f"line {n}: delays[{i}] = {delays[i] * 1000:g} ms is before delays[{i - 1}] = {delays[i - 1] * 1000:g} ms; "
                "delays are the audio read when each word was written, so they never decrease"
            )
    elapsed = _ms_list(rec, "elapsed", n) or list(delays)
    if len(elapsed) != len(delays):
        raise ValueError(f"line {n}: {len(delays)} delays but {len(elapsed)} elapsed values")
    for i, (d, e) in enumerate(zip(delays, elapsed)):
        if e < d - 1e-9:
            raise ValueError(
                f"line {n}: elapsed[{i}] = {e * 1000:g} ms is before delays[{i}] = {d * 1000:g} ms; a word cannot be "
                "emitted before the audio it was written after (elapsed = delay + computation time)"
            )
    length = rec.get("source_length")
    if length is None:
        raise ValueError(f"line {n} has no source_length (ms); SimulEval logs always carry it")
    if isinstance(length, bool) or not isinstance(length, (int, float)) or not math.isfinite(length) or length < 0:
        raise ValueError(f"line {n}: source_length = {length!r:.40} must be a finite non-negative number of milliseconds")
    reference = rec.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise ValueError(f"line {n}: 'reference' is {type(reference).__name__} {reference!r:.60}; it must be the reference text (a string) or absent")
    return words, delays, elapsed, float(length) / 1000.0
