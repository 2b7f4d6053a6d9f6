"""The conformance kit: does a processor keep the :class:`~asr_lab.ASRProcessor` contract?

``check_processor`` drives a processor the way every asr_lab driver does and checks what
comes out, so a prototype can be trusted by the replayer, the metrics and the server:

* it has the four methods (``partial()`` is noted when present);
* chunks from 10 ms to 5 s are accepted, with an empty chunk in between;
* every answer is ``None`` (or whisper_streaming's ``(None, None, "")``, which means the
  same) or ``(start, end, text)`` with finite times, ``start <= end``,
  non-empty text, inside the audio fed so far (± ``tolerance_sec``), in order and not
  overlapping earlier answers (beyond ``overlap_tolerance_sec``);
* ``finish()`` flushes: speech gives some text by the end of the stream;
* ``init(offset)`` starts clean: a stream at offset 1000 s yields times in that stream
  only, and re-running the first stream afterwards gives the same answers
  (``deterministic=True``);
* silence-only input is handled.

The default speech is the bundled ``pauses`` sample (three sentences, 11.4 s, with pauses):
a single short sentence gives most processors one segment, and then segments that overlap
or go back in time cannot show. Each kind of problem is reported once per run, with how
often it happened, and a later run with the same problem only points back to the first.

The result is a :class:`ConformanceReport`: printable, a table in a notebook, and
``report.assert_ok()`` for pytest.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE, ASRProcessor

__all__ = ["Check", "ConformanceError", "ConformanceReport", "check_processor"]

REQUIRED_METHODS = ("init", "insert_audio_chunk", "process_iter", "finish")
DEFAULT_CHUNKS_SEC = (0.01, 0.1, 0.25, 1.0, 5.0)
FAR_OFFSET_SEC = 1000.0


class ConformanceError(AssertionError):
    """A processor failed the conformance checks; the message is the report."""


@dataclass
class Check:
    """One verdict of the kit."""

    name: str
    passed: bool
    detail: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ConformanceReport:
    """All checks run on one processor, plus the answers each run produced."""

    processor: str
    checks: list[Check] = field(default_factory=list)
    outputs: dict[str, list[tuple[float, float, str]]] = field(default_factory=dict)
    has_partial: bool = False

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def assert_ok(self) -> "ConformanceReport":
        """Raise :class:`ConformanceError` with the whole report if any check failed."""
        if not self.ok:
            raise ConformanceError(str(self))
        return self

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame([c.to_dict() for c in self.checks])

    def __str__(self) -> str:
        width = max([len(c.name) for c in self.checks] + [5])
        verdict = "PASS" if self.ok else f"FAIL ({len(self.failures)} of {len(self.checks)} checks)"
        lines = [f"conformance of {self.processor}: {verdict}"]
        for c in self.checks:
            lines.append(f"  {'ok  ' if c.passed else 'FAIL'} {c.name:<{width}}  {c.detail}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><td style='color:{'green' if c.passed else 'crimson'}'>{'✔' if c.passed else '✘'}</td>"
            f"<td>{html.escape(c.name)}</td><td style='text-align:left'>{html.escape(c.detail)}</td>"
            f"<td>{c.seconds:.2f} s</td></tr>"
            for c in self.checks
        )
        head = "PASS" if self.ok else f"FAIL — {len(self.failures)} of {len(self.checks)} checks"
        return (
            f"<b>Conformance of {html.escape(self.processor)}: {head}</b>"
            f"<table><tr><th></th><th>check</th><th>detail</th><th>time</th></tr>{rows}</table>"
        )


def check_processor(
    processor: Union[ASRProcessor, Callable[[], ASRProcessor], dict, Any],
    audio: Optional[np.ndarray] = None,
    *,
    chunk_sizes: Sequence[float] = DEFAULT_CHUNKS_SEC,
    iter_every_sec: Optional[float] = None,
    tolerance_sec: float = 0.5,
    overlap_tolerance_sec: float = 0.1,
    expect_text: bool = True,
    deterministic: bool = True,
    silence_sec: float = 2.0,
) -> ConformanceReport:
    """Run ``processor`` through the contract and return a :class:`ConformanceReport`.

    ``processor`` is a processor instance, a zero-argument factory returning one, or a
    configuration (dict / JSON / ASRConfig) for :func:`asr_lab.load_processor`. ``audio``
    is speech as float32 16 kHz (default: the bundled ``pauses`` sample, see
    :func:`asr_lab.testing.sample_speech`). ``process_iter()`` is called after a chunk
    once ``iter_every_sec`` of new audio has arrived (default: the processor's
    ``min_chunk_sec`` if it has one, else after every chunk) and after the last chunk.
    ``overlap_tolerance_sec`` defaults to 0.1 s, the overlap LocalAgreement-2 allows.
    Exceptions raised by the processor become failed checks; the other checks still run.
    """
    if audio is None:
        from asr_lab.testing.samples import sample_speech

        audio = sample_speech("pauses").audio
    from asr_lab.core.audio import load_audio

    audio = load_audio(audio)
    proc = _instantiate(processor)
    report = ConformanceReport(type(proc).__name__)
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(proc, m, None))]
    report.checks.append(
        Check("has the four methods", not missing, f"missing: {', '.join(missing)}" if missing else "init, insert_audio_chunk, process_iter, finish")
    )
    if missing:
        return report
    report.has_partial = callable(getattr(proc, "partial", None))
    if iter_every_sec is None:
        iter_every_sec = float(getattr(proc, "min_chunk_sec", 0.0) or 0.0)
    run = _Runner(proc, tolerance_sec, overlap_tolerance_sec, iter_every_sec, report)
    duration = len(audio) / SAMPLE_RATE

    first_outputs = None
    for chunk in chunk_sizes:
        name = f"chunks of {_fmt_sec(chunk)}"
        outputs = run(name, audio, chunk, offset=0.0)
        if outputs is not None and expect_text and not any(o[2].strip() for o in outputs):
            if run.rejected:
                why = f"no valid segment: {run.rejected} answers with text were rejected (see '{name}')"
            else:
                why = f"no text at all from {duration:.1f} s of speech"
            report.checks.append(Check(f"{name}: finish flushes", False, why))
        if first_outputs is None:
            first_outputs = (chunk, outputs)

    run(f"re-init at offset {FAR_OFFSET_SEC:g} s", audio, chunk_sizes[0] if chunk_sizes[0] >= 0.1 else 0.25, offset=FAR_OFFSET_SEC)

    if first_outputs is not None and first_outputs[1] is not None:
        chunk, before = first_outputs
        again = run(f"re-init, {_fmt_sec(chunk)} chunks again", audio, chunk, offset=0.0)
        if deterministic and again is not None:
            same = _same_outputs(before, again)
            report.checks.append(
                Check(
                    "re-init starts clean (same answers twice)",
                    same,
                    "identical" if same else f"first run: {_brief(before)}; after re-init: {_brief(again)}",
                )
            )

    silence = np.zeros(int(silence_sec * SAMPLE_RATE), dtype=np.float32)
    run(f"{silence_sec:g} s of silence", silence, 0.25, offset=0.0)
    return report


class _Runner:
    def __init__(self, proc, tolerance, overlap_tolerance, iter_every, report: ConformanceReport):
        self.proc, self.tol, self.overlap_tol, self.iter_every, self.report = proc, tolerance, overlap_tolerance, iter_every, report
        self.first_seen: dict[str, str] = {}  # problem kind -> the run that first reported it
        self.rejected = 0  # answers with text that failed validation in the last run

    def __call__(self, name: str, audio: np.ndarray, chunk_sec: float, offset: float):
        """Stream ``audio`` in ``chunk_sec`` chunks; record one Check; return the answers or None."""
        proc, step = self.proc, max(1, int(round(chunk_sec * SAMPLE_RATE)))
        outputs: list[tuple[float, float, str]] = []
        problems: dict[str, list] = {}  # kind -> [first message, count]
        self.rejected = 0
        t0 = time.perf_counter()
        fed = 0
        since_iter = 0
        try:
            proc.init(offset=offset)
            for k, i in enumerate(range(0, len(audio), step)):
                proc.insert_audio_chunk(audio[i : i + step])
                if k == 1:
                    proc.insert_audio_chunk(np.zeros(0, dtype=np.float32))
                n = len(audio[i : i + step])
                fed += n
                since_iter += n
                last = i + step >= len(audio)
                if last or since_iter >= self.iter_every * SAMPLE_RATE:
                    since_iter = 0
                    self._accept(proc.process_iter(), "process_iter", offset, fed, outputs, problems)
                    if self.report.has_partial:
                        self._validate(proc.partial(), "partial", offset, fed, problems)
            self._accept(proc.finish(), "finish", offset, fed, outputs, problems)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            _note(problems, "raised", f"raised {type(exc).__name__}: {exc} (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})")
            self.report.checks.append(Check(name, False, self._describe(name, problems), time.perf_counter() - t0))
            return None
        self.report.outputs[name] = outputs
        detail = self._describe(name, problems) if problems else f"{len(outputs)} segments, {sum(len(o[2].split()) for o in outputs)} words"
        self.report.checks.append(Check(name, not problems, detail, time.perf_counter() - t0))
        return outputs

    def _describe(self, name: str, problems: dict) -> str:
        """Each kind of problem once, with its count; kinds already reported by an earlier run only point there."""
        parts = []
        for kind, (message, count) in problems.items():
            if kind in self.first_seen and self.first_seen[kind] != name:
                parts.append(f"{kind} again ×{count} (as in '{self.first_seen[kind]}')")
            else:
                self.first_seen.setdefault(kind, name)
                parts.append(message + (f" (×{count} in this run)" if count > 1 else ""))
        return "; ".join(parts)

    def _accept(self, answer, method, offset, fed, outputs, problems) -> None:
        if self._validate(answer, method, offset, fed, problems) and not _is_nothing(answer):
            start, end, text = answer
            if outputs:
                prev_start, prev_end, _ = outputs[-1]
                if start < prev_start:
                    _note(problems, f"{method} went back in time", f"{method} went back in time: {_seg(answer)} starts before {_seg(outputs[-1])}")
                elif start < prev_end - self.overlap_tol:
                    _note(problems, f"{method} overlaps",
                          f"{method} overlaps: {_seg(answer)} starts {prev_end - start:.3f} s before the end of {_seg(outputs[-1])}")
            outputs.append((float(start), float(end), text))

    def _validate(self, answer, method, offset, fed, problems) -> bool:
        if _is_nothing(answer):
            return True
        if not (isinstance(answer, tuple) and len(answer) == 3):
            _note(problems, f"{method} wrong type", f"{method} returned {answer!r:.80}; expected None or a tuple (start, end, text)")
            return False
        start, end, text = answer
        if not isinstance(text, str):
            _note(problems, f"{method} text not str", f"{method} text is {type(text).__name__}, not str: {answer!r:.80}")
            return False
        if not text.strip():
            _note(problems, f"{method} empty text",
                  f"{method} returned empty text with times {answer!r:.80}; return None when there is nothing (or whisper_streaming's (None, None, ''))")
            return False
        self.rejected += method != "partial"
        if not all(isinstance(t, (int, float, np.floating, np.integer)) and math.isfinite(float(t)) for t in (start, end)):
            _note(problems, f"{method} times not finite", f"{method} times are not finite numbers: {answer!r:.80}")
            return False
        fed_end = offset + fed / SAMPLE_RATE
        if start > end + 1e-9:
            _note(problems, f"{method} start after end", f"{method} start after end: {_seg(answer)}")
        elif start < offset - self.tol or end > fed_end + self.tol:
            _note(problems, f"{method} outside the audio fed",
                  f"{method} {_seg(answer)} lies outside the audio fed so far [{offset:.2f}, {fed_end:.2f}] s (± {self.tol} s)")
        else:
            self.rejected -= method != "partial"
            return True
        return False


def _is_nothing(answer) -> bool:
    """``None`` or whisper_streaming's ``(None, None, "")``: no new text (as :func:`asr_lab.replay` reads it)."""
    return answer is None or (
        isinstance(answer, tuple) and len(answer) == 3 and answer[0] is None and answer[1] is None and not answer[2]
    )


def _note(problems: dict, kind: str, message: str) -> None:
    if kind in problems:
        problems[kind][1] += 1
    else:
        problems[kind] = [message, 1]


def _instantiate(processor: Any) -> Any:
    from asr_lab.core.config import ASRConfig

    if isinstance(processor, (dict, str, bytes, ASRConfig)):
        from asr_lab.backends.registry import load_processor

        return load_processor(processor)[0]
    if isinstance(processor, type) or (callable(processor) and not hasattr(processor, "process_iter")):
        return processor()  # a class or a factory function
    return processor  # an instance: the method check reports what it lacks


def _same_outputs(a, b, tol: float = 1e-6) -> bool:
    return len(a) == len(b) and all(x[2] == y[2] and abs(x[0] - y[0]) <= tol and abs(x[1] - y[1]) <= tol for x, y in zip(a, b))


def _seg(s) -> str:
    return f"({float(s[0]):.3f}, {float(s[1]):.3f}, {s[2]!r:.40})"


def _brief(outputs) -> str:
    return " | ".join(_seg(o) for o in outputs[:3]) + (" …" if len(outputs) > 3 else "") if outputs else "nothing"


def _fmt_sec(sec: float) -> str:
    return f"{sec * 1000:g} ms" if sec < 1 else f"{sec:g} s"
