"""Record once, replay many: an engine's answers kept by request, so that policies share them.

A re-decoding policy asks its engine "transcribe this audio with this prompt". Two
policies that ask the same question get the same answer from a deterministic engine, so
it needs computing once. :class:`RecordingASR` wraps any :class:`~asr_lab.ASRBase`: a
request (its audio's float32 bytes and its prompt, under one engine configuration) that
is in the :class:`HypothesisStore` is answered from there — with no model cost — and any
other is computed live and stored. The answer keeps what the policy needs: the timed
words, the segment ends and the compute the engine took.

Exactness is checked, not assumed: a replayed run gets the recorded answers only for
requests that are byte for byte the recorded ones, and computes the rest live. Policies
on :class:`~asr_lab.policies.redecoding.RedecodingProcessor`'s fixed schedule (hold-n,
stable-prefix, local-agreement with n != 2) ask the same questions whatever they commit,
so after one run every other rule replays entirely. The reference LocalAgreement-2 feeds
its commits back (prompt, trimming), so it replays only while its requests coincide
(streams shorter than ``buffer_trimming_sec``). AlignAtt steers its own decoder token by
token and always runs live.

An engine that samples (Whisper's temperature fallback above 0) answers differently from
run to run; replayed, every policy sees the one recorded sample, which makes the policies
comparable on equal input, but is not what separate live runs would each have seen.

Timing: a replayed answer is charged the engine compute recorded for it. The processor
reports it through ``replayed_compute()``, which the replay loop adds to the measured
step time, so on the computation-aware clock a replayed run sees the latencies of a live
run whose engine took exactly the recorded times.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple, Union

import numpy as np

from asr_lab.core.protocols import checked_ts_words

__all__ = ["HypothesisStore", "RecordedAnswer", "RecordingASR", "active_store", "recording"]

Word = Tuple[float, float, str]


@dataclass
class RecordedAnswer:
    """What an engine answered to one request: timed words, segment ends, and its compute time."""

    words: list
    segment_ends: list
    compute_sec: float
    calls: Optional[list] = None
    """What the engine reported about the request (its ``step_info()`` calls: audio seconds, tokens,
    fallbacks), so that a replayed answer tells a cost profile the same as a live one."""

    def __post_init__(self) -> None:
        self.words = [tuple(w) for w in self.words]
        self.segment_ends = [float(e) for e in self.segment_ends]

    @classmethod
    def from_line(cls, d: Any) -> tuple[tuple[str, str, str], "RecordedAnswer"]:
        """``(key, answer)`` of one stored line; ValueError naming the field when it is not one
        :meth:`HypothesisStore.put` writes (a compute time must be finite and >= 0: it is
        charged to the replay clock)."""
        if not isinstance(d, dict):
            raise ValueError(f"a stored answer is a JSON object, not {type(d).__name__}")
        for k in ("engine", "audio", "prompt"):
            if not isinstance(d.get(k), str):
                raise ValueError(f"{k!r} is {d.get(k)!r:.40}; it must be a string")
        words = d.get("words")
        if not isinstance(words, list) or not all(
            isinstance(w, list) and len(w) == 3 and all(_finite(x) for x in w[:2]) and isinstance(w[2], str) for w in words
        ):
            raise ValueError(f"'words' is {words!r:.60}; it must be a list of [start, end, word] with finite times")
        ends = d.get("segment_ends")
        if not isinstance(ends, list) or not all(_finite(e) for e in ends):
            raise ValueError(f"'segment_ends' is {ends!r:.60}; it must be a list of finite times")
        compute = d.get("compute_sec")
        if not _finite(compute) or compute < 0:
            raise ValueError(f"'compute_sec' is {compute!r:.40}; it must be a finite number of seconds >= 0 (it is charged to the clock)")
        calls = d.get("calls")
        if calls is not None and not (isinstance(calls, list) and all(isinstance(c, dict) for c in calls)):
            raise ValueError(f"'calls' is {calls!r:.60}; it must be a list of objects (what the engine reported per call)")
        return (d["engine"], d["audio"], d["prompt"]), cls(words, ends, float(compute), calls)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class HypothesisStore:
    """Recorded answers by request: ``(engine, audio digest, prompt) -> RecordedAnswer``.

    ``path`` (a ``.jsonl`` file) makes it persistent: existing lines are read at start,
    and each new answer is appended as it is recorded. A line that cannot be read (cut by
    a crash mid-write, or edited into wrong types) is skipped with one RuntimeWarning naming
    the file and the lines, as the comparison cache does: its request is just computed
    again. ``live`` / ``replayed`` count the requests answered each way; ``skipped`` the bad lines.
    """

    def __init__(self, path: Union[str, os.PathLike, None] = None) -> None:
        self.answers: dict[tuple[str, str, str], RecordedAnswer] = {}
        self.path = Path(path) if path is not None else None
        self.live = 0
        self.replayed = 0
        self.skipped = 0
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            self._read()

    def _read(self) -> None:
        bad: list[str] = []
        raw = self.path.read_bytes().decode("utf-8", errors="replace")
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                key, answer = RecordedAnswer.from_line(json.loads(line))
            except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                bad.append(f"line {n}: {str(exc)[:120]}")
                continue
            self.answers[key] = answer
        if bad:
            self.skipped = len(bad)
            warnings.warn(
                f"{self.path}: skipped {len(bad)} unreadable stored answer(s) ({'; '.join(bad[:3])}"
                f"{'; …' if len(bad) > 3 else ''}); those requests are computed again and stored anew",
                RuntimeWarning,
                stacklevel=3,
            )

    def __len__(self) -> int:
        return len(self.answers)

    def get(self, key: tuple[str, str, str]) -> Optional[RecordedAnswer]:
        return self.answers.get(key)

    def put(self, key: tuple[str, str, str], answer: RecordedAnswer) -> None:
        with self._lock:
            self.answers[key] = answer
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                line = json.dumps({"engine": key[0], "audio": key[1], "prompt": key[2], **asdict(answer)})
                with open(self.path, "a+b") as f:
                    f.seek(0, os.SEEK_END)
                    if f.tell() > 0:  # a line cut by a crash must not swallow the next one
                        f.seek(-1, os.SEEK_END)
                        if f.read(1) != b"\n":
                            f.write(b"\n")
                    f.write(line.encode("utf-8") + b"\n")


class RecordingASR:
    """An :class:`~asr_lab.ASRBase` that answers recorded requests from ``store`` and records the others.

    ``engine`` names the engine configuration (answers of different engines never mix).
    ``transcribe`` returns a :class:`RecordedAnswer` in both cases, so a policy sees
    exactly the same data whether its request was replayed or computed.
    """

    def __init__(self, asr: Any, store: HypothesisStore, engine: str) -> None:
        self.asr = asr
        self.store = store
        self.engine = engine
        self.sep = asr.sep
        self.thread_safe = getattr(asr, "thread_safe", False)
        self._charged = 0.0
        self._calls: list[dict] = []  # step_info of the requests since the last step, live or replayed
        inner = getattr(asr, "step_info", None)
        self._inner_info = inner if callable(inner) else None

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> RecordedAnswer:
        samples = np.ascontiguousarray(audio, dtype=np.float32)
        key = (self.engine, f"{len(samples)}:{hashlib.sha1(samples.tobytes()).hexdigest()}", init_prompt)
        answer = self.store.get(key)
        if answer is not None:
            self.store.replayed += 1
            self._charged += answer.compute_sec
            self._calls.extend(answer.calls if answer.calls is not None else [{"audio_sec": round(len(samples) / 16000, 3)}])
            return answer
        started = time.perf_counter()
        if self._inner_info is not None:
            self._inner_info()  # what the engine did before this request is not this request's
        result = self.asr.transcribe(samples, init_prompt=init_prompt)
        words = [(float(a), float(b), str(w)) for a, b, w in checked_ts_words(self.asr, result)]
        ends = list(self.asr.segments_end_ts(result))
        info = self._inner_info() if self._inner_info is not None else None
        calls = list(info.get("calls") or []) if info else [{"audio_sec": round(len(samples) / 16000, 3)}]
        self._calls.extend(calls)
        answer = RecordedAnswer(words, ends, time.perf_counter() - started, calls)
        self.store.live += 1
        if all(math.isfinite(x) for w in words for x in w[:2]) and all(math.isfinite(e) for e in answer.segment_ends):
            self.store.put(key, answer)  # an answer with non-finite times is used live, never replayed
        return answer

    def ts_words(self, result: RecordedAnswer) -> list[Word]:
        return list(result.words)

    def segments_end_ts(self, result: RecordedAnswer) -> list[float]:
        return list(result.segment_ends)

    def step_info(self) -> Optional[dict]:
        """The requests since the previous step as the engine reported them (``{"calls": [...],
        "fallbacks": n}``; replayed ones from the store), or ``None`` when there were none."""
        calls, self._calls = self._calls, []
        if not calls:
            return None
        return {"calls": calls, "fallbacks": sum(int(c.get("fallbacks", 0)) for c in calls)}

    def replayed_compute(self) -> float:
        """Recorded compute of the answers replayed since the last call (and reset it)."""
        charged, self._charged = self._charged, 0.0
        return charged


_ACTIVE: list[HypothesisStore] = []


def active_store() -> Optional[HypothesisStore]:
    """The store of the innermost :func:`recording` block, or ``None`` outside one."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextlib.contextmanager
def recording(store: Union[HypothesisStore, str, os.PathLike, None] = None) -> Iterator[HypothesisStore]:
    """Within this block, policy processors built by backends share recorded engine answers.

    ``store``: a :class:`HypothesisStore`, a ``.jsonl`` path for a persistent one, or
    ``None`` for a fresh in-memory one. :func:`asr_lab.compare` opens one by default.
    """
    if not isinstance(store, HypothesisStore):
        store = HypothesisStore(store)
    _ACTIVE.append(store)
    try:
        yield store
    finally:
        _ACTIVE.remove(store)
