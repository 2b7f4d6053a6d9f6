"""The comparison's run records and their append-only cache (``cache_dir/runs.jsonl``).

A :class:`RunRecord` is one replay of one utterance by one system. Its key hashes everything
that shapes the run's output (the system's identity with its provenance, the audio content,
the replay options, the repeat), so a resumed comparison answers finished runs from the file
and runs again whatever changed. The file is appended line by line as runs finish, and read
back line by line, so a run killed mid-write costs only its own line.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from asr_lab.replay import Trace
from asr_lab.replay.trace import TraceFileError
from asr_lab.replay.validate import trace_problems

__all__ = ["CACHE_FILE", "RunRecord"]

CACHE_FILE = "runs.jsonl"


_FORMAT = 1  # bump when a change makes cached traces incomparable


@dataclass
class RunRecord:
    """One replay of one utterance by one system: its trace, or why it failed."""

    system: str
    utterance: str
    repeat: int
    key: str
    trace: Optional[Trace]
    error: Optional[str] = None
    config: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.trace is not None and self.trace.ok

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": _FORMAT,
                "key": self.key,
                "system": self.system,
                "utterance": self.utterance,
                "repeat": self.repeat,
                "config": self.config,
                "error": self.error,
                "trace": None if self.trace is None else list(self.trace.records()),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
            ensure_ascii=False,
            default=_jsonable,
        )

    @classmethod
    def from_json(cls, line: str) -> "RunRecord":
        d = json.loads(line)
        trace = None if d.get("trace") is None else Trace.from_records(d["trace"])
        return cls(d["system"], d["utterance"], d["repeat"], d["key"], trace, d.get("error"), d.get("config"))


def _audio_fingerprint(audio) -> str:
    """Content hash of a path's bytes or of an array's float32 samples (the cache key's audio part)."""
    h = hashlib.sha1()
    if isinstance(audio, str):
        with open(audio, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    else:
        h.update(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    return h.hexdigest()


def _key(identity: str, fingerprint: str, kwargs: dict, repeat: int) -> str:
    blob = json.dumps({"config": identity, "audio": fingerprint, "replay": kwargs, "repeat": repeat, "format": _FORMAT}, sort_keys=True)
    return _identity_hash(identity) + ":" + hashlib.sha256(blob.encode()).hexdigest()[:24]


def _identity_hash(identity: str) -> str:
    """The first part of a run's cache key: which system (config or factory, with its provenance) ran."""
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _read_cache(path: Path) -> dict[str, RunRecord]:
    records: dict[str, RunRecord] = {}
    if not path.exists():
        return records
    if not path.is_file():
        raise ValueError(f"cache {os.fspath(path)!r} is not a regular file; give cache_dir a folder of your own")
    for n, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        if not raw.strip():
            continue
        try:  # line by line: a run killed mid-write may have cut a line inside a UTF-8 character
            rec = RunRecord.from_json(raw.decode("utf-8"))
        except TraceFileError as exc:  # the record is readable, its trace is not: name the run
            d = json.loads(raw)
            warnings.warn(f"{path}:{n}: run {d.get('system')} / {d.get('utterance')} has a malformed trace ({exc}); "
                          f"it will be run again", RuntimeWarning)
            continue
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            warnings.warn(f"{path}:{n}: skipping an unreadable run record ({type(exc).__name__}: {exc}); it will be run again", RuntimeWarning)
            continue
        if rec.ok and rec.trace is not None and trace_problems(rec.trace):
            warnings.warn(f"{path}:{n}: run {rec.system} / {rec.utterance} has a malformed trace; it will be run again", RuntimeWarning)
            continue
        if rec.ok:  # failed runs are tried again on resume
            records[rec.key] = rec
    return records


def _append(path: Path, record: RunRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = record.to_json() + "\n"
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a run killed mid-write left half a line: start a new one
                line = "\n" + line
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()


def _config_json(config) -> Any:
    return config if isinstance(config, dict) else f"factory:{getattr(config, '__qualname__', repr(config))}"


def _jsonable(obj):
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
