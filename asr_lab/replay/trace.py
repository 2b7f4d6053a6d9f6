"""What a replay records: every emission, partial snapshot and step, on the replay clock.

A :class:`Trace` is the raw material of every metric: it can be saved as JSONL and
scored again later without re-running the engine. All times are stream seconds: the
position in the audio stream, on the clock the replay ran with (see ``asr_lab.replay``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Optional, Union

__all__ = ["Emission", "PartialSnapshot", "Step", "ReplayError", "Trace", "TraceFileError", "as_trace"]


class TraceFileError(ValueError):
    """A trace file or text that cannot be read; the message names the file, the line and the fix."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_TYPE_CHECKS = {
    "float": _is_number,
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "dict": lambda v: isinstance(v, dict),
}
_TYPE_NAMES = {"float": "a number", "int": "an integer", "str": "a string", "bool": "true or false",
               "list": "a list", "dict": "a JSON object"}


class _Record:
    """``to_dict``/``from_dict`` for the flat dataclasses below."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def _checked(cls, data: dict, where: str):
        """:meth:`from_dict` after checking each field's JSON type against the dataclass's
        annotation; a wrong one raises TraceFileError naming ``where`` and the field."""
        kind = cls.__name__
        for f in fields(cls):
            if f.name not in data:
                continue
            value, want = data[f.name], str(f.type)
            optional = want.startswith("Optional[")
            base = want[len("Optional["):-1] if optional else want
            if value is None and optional:
                continue
            ok = _TYPE_CHECKS.get(base, lambda v: True)(value)
            if ok and f.name == "words":
                ok = all(isinstance(w, (list, tuple)) and len(w) == 3 and _is_number(w[0]) and _is_number(w[1])
                         and isinstance(w[2], str) for w in value)
                base = "list of [start, end, word] triples"
            if not ok:
                raise TraceFileError(
                    f"{where}: {kind.lower()} field {f.name!r} is {value!r:.60} ({type(value).__name__}); "
                    f"it must be {'null or ' if optional else ''}{_TYPE_NAMES.get(base, base)} — the file was not "
                    "written by Trace.to_jsonl or was edited; fix or re-create that line"
                )
        return cls.from_dict(data)


@dataclass
class Emission(_Record):
    """A committed segment and when it appeared.

    ``start``/``end``: the audio span the engine attributes it to; ``emitted_at``: stream
    time when ``process_iter()`` (or ``finish()``) returned it; ``audio_fed``: stream time
    up to which audio had been given to the engine; ``compute_sec``: measured duration of
    the call that produced it; ``final``: it came from ``finish()``.
    """

    start: float
    end: float
    text: str
    emitted_at: float
    compute_sec: float
    audio_fed: float
    step: int
    final: bool = False
    words: Optional[list] = None

    def __post_init__(self) -> None:
        if self.words is not None:  # JSON gives lists; keep tuples so traces compare equal
            self.words = [tuple(w) for w in self.words]

    @property
    def latency(self) -> float:
        """``emitted_at - end``: how long after its audio ended the segment appeared."""
        return self.emitted_at - self.end


@dataclass
class PartialSnapshot(_Record):
    """The engine's unconfirmed text (``partial()``) after a step, recorded when it changed.

    ``committed`` is the committed text displayed at that moment, so ``committed`` +
    ``text`` is what a live display showed at stream time ``at``.
    """

    at: float
    text: str
    committed: str
    start: Optional[float]
    end: Optional[float]
    step: int


@dataclass
class Step(_Record):
    """One iteration of the replay loop: what was fed, how long the engine took, when it returned.

    ``compute_sec`` is the cost the clock counted (the run's ``meta["compute"]`` measure);
    ``wall_sec``, ``thread_sec`` and ``process_sec`` are the call's elapsed time, calling-thread
    CPU time and process CPU time, all recorded so that a run can be re-timed or audited
    under another measure (``None`` in traces recorded before they existed).
    """

    index: int
    fed_from: float
    fed_until: float
    compute_sec: float
    returned_at: float
    wall_sec: Optional[float] = None
    thread_sec: Optional[float] = None
    process_sec: Optional[float] = None
    info: Optional[dict] = None
    """What the processor reported about this step (its ``step_info()``; e.g. Whisper calls and fallbacks)."""
    features: Optional[dict] = None
    """What the step did, as the counts a cost profile weighs (:func:`asr_lab.replay.profile.step_features`)."""


@dataclass
class ReplayError(_Record):
    """The processor raised, answered outside the contract, or hung: what, where in the
    stream, the traceback text, and which processor."""

    type: str
    message: str
    step: int
    at: float
    traceback: str = ""
    processor: str = ""

    def __str__(self) -> str:
        return f"{self.type}: {self.message} (step {self.step}, stream time {self.at:.2f} s)"


@dataclass
class Trace:
    """Everything one replay of one stream through one processor produced.

    ``meta`` holds the settings and facts of the run (clock, chunk_sec, speed, duration,
    processor name, warm-up and wall time...). ``error`` is set when the processor raised;
    what it emitted before that is kept.
    """

    emissions: list[Emission] = field(default_factory=list)
    partials: list[PartialSnapshot] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    error: Optional[ReplayError] = None

    # -- reading ---------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def separator(self) -> str:
        return self.meta.get("separator", " ")

    @property
    def text(self) -> str:
        """The committed transcript, segments joined by the engine's separator."""
        return self.separator.join(e.text for e in self.emissions).strip()

    @property
    def duration(self) -> float:
        """Seconds of audio in the stream."""
        return float(self.meta.get("duration", 0.0))

    @property
    def compute_sec(self) -> float:
        """Total measured engine time over all steps (``finish()`` included, warm-up excluded)."""
        return sum(s.compute_sec for s in self.steps)

    @property
    def rtf(self) -> float:
        """Real-time factor: engine compute time / audio duration (< 1 keeps up with live audio)."""
        return self.compute_sec / self.duration if self.duration > 0 else float("nan")

    def raise_for_error(self) -> "Trace":
        """Raise the recorded processor error as a RuntimeError, if there is one."""
        if self.error is not None:
            raise RuntimeError(f"the processor failed during replay: {self.error}\n{self.error.traceback}")
        return self

    def audit(self, **kwargs) -> list:
        """Impossible or suspicious events (:func:`asr_lab.replay.audit.audit`): ``[Finding, ...]``."""
        from asr_lab.replay.audit import audit

        return audit(self, **kwargs)

    def to_dataframe(self):
        """Emissions as a pandas DataFrame (one row each, with ``latency``)."""
        import pandas as pd

        rows = [dict(e.to_dict(), latency=e.latency) for e in self.emissions]
        columns = [f.name for f in fields(Emission)] + ["latency"]
        return pd.DataFrame(rows, columns=columns)

    # -- JSONL -------------------------------------------------------------------------
    def records(self) -> Iterator[dict]:
        """The trace as JSON-able records, ``{"record": kind, ...}``, meta first."""
        yield {"record": "meta", **self.meta}
        for kind, items in (("emission", self.emissions), ("partial", self.partials), ("step", self.steps)):
            for item in items:
                yield {"record": kind, **item.to_dict()}
        if self.error is not None:
            yield {"record": "error", **self.error.to_dict()}

    @classmethod
    def from_records(cls, records) -> "Trace":
        return cls._from_numbered(((f"record {n}", rec) for n, rec in enumerate(records, 1)))

    @classmethod
    def _from_numbered(cls, records) -> "Trace":
        """Build from ``(where, record)`` pairs; a bad record raises TraceFileError naming ``where``."""
        trace = cls()
        kinds = {"emission": (Emission, trace.emissions), "partial": (PartialSnapshot, trace.partials), "step": (Step, trace.steps)}
        for where, rec in records:
            if not isinstance(rec, dict):
                raise TraceFileError(f"{where}: a trace record is a JSON object like {{\"record\": \"emission\", ...}}, not {rec!r:.60}")
            rec = dict(rec)
            kind = rec.pop("record", None)
            try:
                if kind == "meta":
                    duration = rec.get("duration")
                    if duration is not None and not _is_number(duration):
                        raise TraceFileError(f"{where}: meta field 'duration' is {duration!r:.40}; it must be a number of seconds")
                    trace.meta = rec
                elif kind == "error":
                    trace.error = ReplayError._checked(rec, where)
                elif kind in kinds:
                    cls_, target = kinds[kind]
                    target.append(cls_._checked(rec, where))
                else:
                    raise TraceFileError(f"{where}: unknown trace record type {kind!r}; expected meta, emission, partial, step or error")
            except TypeError as exc:  # a field missing
                raise TraceFileError(f"{where}: {kind} record {rec!r:.100} is incomplete ({exc})") from None
        return trace

    def to_jsonl(self, path: Union[str, os.PathLike, None] = None) -> str:
        """The trace as JSON Lines; written to ``path`` too when given."""
        text = "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in self.records())
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_jsonl(cls, source: Union[str, os.PathLike]) -> "Trace":
        """Read a trace from a JSONL file path, or from JSONL text.

        Raises :class:`FileNotFoundError` for a missing file and :class:`TraceFileError`
        naming the file and the line for a file that is not UTF-8, not JSON Lines, empty,
        or has no ``meta`` record.
        """
        if isinstance(source, str) and "\n" in source:
            text, name = source, "trace text"
        else:
            path = Path(source)
            name = os.fspath(source)
            if not path.exists():
                raise FileNotFoundError(f"trace file not found: {name!r} (absolute: {path.resolve()})")
            if not path.is_file():
                raise TraceFileError(f"{name!r} is not a regular file; give a .jsonl file written by Trace.to_jsonl")
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = raw.count(b"\n", 0, exc.start) + 1
                raise TraceFileError(
                    f"{name}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                    f"a trace is JSON Lines written by Trace.to_jsonl — is this the right file?"
                ) from None

        def numbered():
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    yield f"{name}:{n}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TraceFileError(f"{name}:{n}: not valid JSON ({exc.msg} at column {exc.colno}): {line.strip()[:80]!r}") from None

        trace = cls._from_numbered(numbered())
        if not trace.meta and not trace.emissions and not trace.steps:
            raise TraceFileError(f"{name}: holds no trace records (the file is empty); a trace file is written by Trace.to_jsonl")
        if not trace.meta:
            raise TraceFileError(f"{name}: has no meta record (the first line Trace.to_jsonl writes); the file is not a whole trace")
        return trace

    def __repr__(self) -> str:
        status = "ok" if self.ok else f"error={self.error}"
        return (
            f"Trace({self.meta.get('processor', '?')}, clock={self.meta.get('clock')}, "
            f"{len(self.emissions)} emissions, {self.duration:.1f} s audio, rtf={self.rtf:.3f}, {status})"
        )


def as_trace(obj: Any, what: str = "trace") -> Trace:
    """``obj`` if it is a :class:`Trace`, the trace read from it if it is a JSONL path or text;
    otherwise TypeError saying what to pass."""
    if isinstance(obj, Trace) or hasattr(obj, "emissions"):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return Trace.from_jsonl(obj)
    raise TypeError(
        f"{what} must be a Trace (from asr_lab.replay) or the path of a trace .jsonl file, not {type(obj).__name__}"
    )


def _json_default(obj: Any):
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to a trace")
