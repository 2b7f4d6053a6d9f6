"""The live microphone panel: the browser's microphone, transcribed in the kernel as you speak.

How the audio travels
---------------------
The front-end (``mic.js``, an anywidget) opens the microphone after a click on Start
(browsers allow audio only after a user gesture), runs it through an AudioWorklet at
16 kHz and sends ``chunk_sec`` of int16 samples per comm message::

    content = {"type": "audio", "seq": 7, "rate": 16000}      buffers = [<int16 little-endian bytes>]

framed by ``{"type": "start", "rate", "chunk_sec"}`` and ``{"type": "stop", "seq": <chunks
sent>}``. In the kernel, :meth:`LiveMicPanel.handle_message` only decodes a chunk and
offers it to a bounded :class:`~asr_lab.replay.LiveAudio` queue — it never runs the
engine, because the kernel delivers widget messages one at a time on its main thread, and
a slow engine there would stall everything. A worker thread runs
``asr_lab.replay(processor, live_audio, clock="wall", ...)`` — the same replay loop as
files, datasets and the CLI — and its ``on_emission`` / ``on_partial`` callbacks feed a
publisher thread that updates the widget. When the engine falls behind by more than
``max_pending_sec`` of audio, new chunks are dropped, counted and shown (never silently).

Numbers on the panel
--------------------
``lag``
    For the newest text on screen: how much audio had been captured when it appeared,
    minus the end of the audio it transcribes (for grey partial text, the end of its last
    word) — :attr:`asr_lab.Emission.latency` measured live. "Captured" counts from the
    arrival of the first chunk in the kernel (that chunk's length, plus the time since), so
    it includes the capture of a chunk but not the browser-to-kernel transport (a few
    milliseconds on one machine), and it is independent of when the engine was ready.
``backlog``
    Audio that reached the kernel and waits for the engine; it stays near one replay step
    when the engine keeps up and grows when it does not.
``received`` / ``dropped``
    Audio accepted in this session; chunks (and seconds) thrown away because the queue held
    ``max_pending_sec`` already. A dropped chunk is missing from the transcript, the trace
    and the saved recording alike, so what is saved is exactly what the engine heard.

Testing without a browser: :meth:`LiveMicPanel.inject_file` sends a file through
:meth:`~LiveMicPanel.handle_message` with exactly the messages the browser sends.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from asr_lab.core.protocols import SAMPLE_RATE
from asr_lab.replay import Emission, LiveAudio, PartialSnapshot, Trace, replay

__all__ = ["LiveMicPanel", "SavedSession", "decode_audio_message", "encode_audio_message"]

MIN_CHUNK_SEC = 0.02
MAX_CHUNK_SEC = 1.0
SEQ_SLACK_SEC = 30.0  # how far ahead of the capture clock a sequence number may run (network bursts)
PUBLISH_EVERY_SEC = 0.25
"""The counters (received, backlog, drops) are refreshed this often; text as soon as it changes."""
_PROCESSOR_METHODS = ("init", "insert_audio_chunk", "process_iter", "finish")
_SESSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# ---------------------------------------------------------------------------- the wire format


def decode_audio_message(content: dict, buffers: Sequence[Any]) -> np.ndarray:
    """One browser ``audio`` message -> float32 16 kHz mono samples.

    ``buffers[0]`` holds little-endian int16 PCM at ``content["rate"]`` Hz (16000 from the
    panel's front-end; other rates are resampled). int16 is scaled by 1/32768, the inverse
    of the front-end's conversion, so a round trip is exact up to int16 quantisation.
    """
    if not buffers:
        raise ValueError(
            f"audio message {content!r:.120} came without a binary buffer; the front-end must send "
            f"model.send({{type: 'audio', seq, rate}}, undefined, [int16 ArrayBuffer])"
        )
    raw = memoryview(buffers[0]).cast("B")
    if raw.nbytes % 2:
        raise ValueError(
            f"audio buffer of {raw.nbytes} bytes is not whole int16 samples (an even byte count); "
            f"send an Int16Array's buffer"
        )
    rate = content.get("rate", SAMPLE_RATE)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0 or rate != int(rate):
        raise ValueError(f"audio message rate={rate!r} must be a positive whole number of Hz, e.g. 16000")
    from asr_lab.core.audio import check_sample_rate

    check_sample_rate(int(rate), "audio message")  # rate=1 would resample one chunk into minutes of audio
    audio = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if int(rate) != SAMPLE_RATE and audio.size:
        from asr_lab.core.audio import load_audio

        audio = load_audio(audio, sr=int(rate))
    return audio


def _seq_problem(session, seq: int, chunk_sec: float) -> str | None:
    """Why ``seq`` cannot be a real chunk number, or None: a browser sends one message per
    ``chunk_sec`` from the session's start, so a number beyond what the time since then
    allows (plus SEQ_SLACK_SEC) or below 0 is a confused or hostile front-end; counting its
    jump as missing chunks would report e.g. 999,999,999 lost chunks for one bad message."""
    limit = int((time.monotonic() - session.opened + SEQ_SLACK_SEC) / chunk_sec) + 1
    if 0 <= seq <= limit:
        return None
    return (
        f"the front-end sent chunk seq={seq}, impossible {time.monotonic() - session.opened:.1f} s into the session "
        f"(one chunk per {chunk_sec:g} s allows 0..{limit}); the message was dropped and not counted as missing "
        f"chunks; restart the capture (Stop, then Start)"
    )


def _in_sequence(session, seq: int) -> bool:
    """Count ``seq`` against the session's sequence: True for the next (or a later) chunk, False
    for a late one (its gap is no longer missing, but its audio comes too late) or a repeat."""
    if seq >= session.next_seq:
        if seq > session.next_seq:
            session.missing_chunks += seq - session.next_seq
            session.gaps.append([session.next_seq, seq])
            del session.gaps[:-64]  # a hostile sender must not grow this without bound
        session.next_seq = seq + 1
        return True
    for gap in session.gaps:
        if gap[0] <= seq < gap[1]:
            session.gaps.remove(gap)
            session.gaps += [g for g in ([gap[0], seq], [seq + 1, gap[1]]) if g[0] < g[1]]
            session.missing_chunks -= 1
            session.late_chunks += 1
            return False
    session.duplicate_chunks += 1
    return False


def encode_audio_message(samples: np.ndarray, seq: int, rate: int = SAMPLE_RATE) -> tuple[dict, list]:
    """float samples in [-1, 1] -> ``(content, buffers)`` exactly as the front-end builds them.

    The conversion is the worklet's: ``s * 32768`` for negative samples, ``s * 32767``
    otherwise, rounded, clipped to [-1, 1] first.
    """
    s = np.clip(np.asarray(samples, dtype=np.float64).reshape(-1), -1.0, 1.0)
    pcm = np.rint(np.where(s < 0, s * 32768.0, s * 32767.0)).astype("<i2")
    return {"type": "audio", "seq": int(seq), "rate": int(rate)}, [memoryview(pcm.tobytes())]


# ---------------------------------------------------------------------------- sessions


class _SessionAudio(LiveAudio):
    """:class:`LiveAudio` that also counts what the replay has read (for the backlog figure) and
    knows how much audio exists at any moment (for the lag figure)."""

    def __init__(self, max_pending_sec: float) -> None:
        super().__init__(max_pending_sec=max_pending_sec)
        self.read_samples = 0
        self.first_chunk_samples = 0

    def push(self, chunk: np.ndarray) -> bool:
        first = self.first_arrival is None
        accepted = super().push(chunk)
        if first and accepted:
            self.first_chunk_samples = int(np.asarray(chunk).size)
        return accepted

    def stream_now(self) -> float | None:
        """Stream seconds captured by now: the first chunk, plus the time since it arrived.

        Audio arrives in real time, so when the first chunk (``c`` seconds) reaches the
        kernel, ``c`` seconds of speech exist, and one more second for every second after.
        Measured from arrival, it does not depend on when the replay's clock started.
        """
        if self.first_arrival is None:
            return None
        return self.first_chunk_samples / SAMPLE_RATE + (time.perf_counter() - self.first_arrival)

    def read(self) -> np.ndarray:
        out = super().read()
        self.read_samples += len(out)  # one reader: the replay thread
        return out


class _Session:
    """One Start..Stop: its audio queue, worker, and what the display shows."""

    def __init__(self, index: int, config: Any, backend: str, max_pending_sec: float, content: dict) -> None:
        self.index = index
        self.config = config
        self.backend = backend
        self.audio = _SessionAudio(max_pending_sec)
        self.stop = threading.Event()
        self.done = threading.Event()
        self.dirty = threading.Event()  # the display state changed: publish now
        self.started_at = _dt.datetime.now().astimezone()
        self.opened = time.monotonic()  # the sequence numbers cannot run ahead of the time since
        self.start_message = dict(content)
        self.next_seq = 0
        self.missing_chunks = 0  # sequence numbers that never arrived (gaps)
        self.late_chunks = 0  # arrived after a later one: dropped, the stream has moved on
        self.duplicate_chunks = 0  # a sequence number seen before: dropped
        self.rejected_chunks = 0  # an impossible sequence number (see _seq_problem): dropped, reported
        self.gaps: list[list[int]] = []  # [first, end) ranges of missing numbers, to tell late from duplicate
        self.chunks_received = 0  # audio messages handled, accepted or dropped
        self.trace: Trace | None = None
        self.meta: dict = {}
        self.failure: BaseException | None = None
        self.worker: threading.Thread | None = None
        self.publisher: threading.Thread | None = None
        # display state, written by the worker, read by the publisher
        self.status = "starting"
        self.committed: list[str] = []
        self.partial = ""
        self.lag: float | None = None
        self.error = ""

    def join(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self.worker, self.publisher):
            if thread is not None:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    return False
        return True


@dataclass(frozen=True)
class SavedSession:
    """What :meth:`LiveMicPanel.save_session` wrote."""

    id: str
    audio: Path
    """The recording, 16 kHz 16-bit WAV: every chunk the engine received."""
    trace: Path
    """The replay's trace as JSONL (:meth:`asr_lab.Trace.from_jsonl` reads it back)."""
    manifest: Path
    """The folder's ``manifest.jsonl``, now with a line for this session."""


# ---------------------------------------------------------------------------- the panel


def _front_end() -> str:
    """The widget's JavaScript: the shared capture code (capture.js), then the panel (mic.js)."""
    from asr_lab.widgets import capture_js

    return capture_js() + "\n" + Path(__file__).with_name("mic.js").read_text(encoding="utf-8")


class LiveMicPanel(anywidget.AnyWidget):
    """Transcribe the browser's microphone live, with any backend, in a notebook.

    ``config_or_processor``: a configuration (dict, JSON text or :class:`~asr_lab.ASRConfig`,
    as for :func:`asr_lab.load_processor`), a backend name such as ``"pocketsphinx"``, a
    ready :class:`~asr_lab.ASRProcessor`, or ``None`` (the first installed backend,
    pocketsphinx when present). With a configuration the panel offers the installed
    backends in a dropdown; another backend chosen there is loaded with its defaults.
    Processors are loaded in the worker thread when Start is clicked and reused by later
    sessions.

    ``chunk_sec``: audio per message from the browser (0.1–0.25 s is a good range: shorter
    costs more messages, longer adds to the lag). ``max_pending_sec``: how much audio may
    wait for the engine before new chunks are dropped. ``step_sec``: new audio the replay
    waits for between engine calls (default: the processor's ``min_chunk_sec``, else
    ``chunk_sec``). ``warmup_sec``: silence run through the engine before the clock starts,
    so one-off costs are not counted as lag. ``preload``: load the engine in the background
    as soon as the panel is built (and when another backend is chosen), so Start is quick.

    After a session (Stop): :attr:`trace`, :meth:`recorded_audio`, :meth:`save_session`.
    The module docstring explains the numbers shown and the message format.
    """

    _esm = _front_end()
    _css = Path(__file__).with_name("mic.css")

    backends = traitlets.List(traitlets.Unicode(), help="backend names offered in the dropdown").tag(sync=True)
    backend = traitlets.Unicode("", help="the backend the next session uses").tag(sync=True)
    backend_locked = traitlets.Bool(False, help="a ready processor was given: no choice").tag(sync=True)
    status = traitlets.Unicode("idle", help="idle | starting | listening | finishing | error").tag(sync=True)
    committed = traitlets.Unicode("", help="the committed transcript of the session").tag(sync=True)
    partial = traitlets.Unicode("", help="the engine's unconfirmed text (shown grey)").tag(sync=True)
    lag_sec = traitlets.Float(None, allow_none=True, help="lag of the newest text, seconds").tag(sync=True)
    backlog_sec = traitlets.Float(0.0, help="audio waiting for the engine, seconds").tag(sync=True)
    received_sec = traitlets.Float(0.0, help="audio accepted this session, seconds").tag(sync=True)
    dropped_chunks = traitlets.Int(0, help="chunks dropped because the queue was full").tag(sync=True)
    dropped_sec = traitlets.Float(0.0, help="seconds of audio dropped").tag(sync=True)
    chunk_sec = traitlets.Float(0.2, help="audio per browser message, seconds").tag(sync=True)
    error = traitlets.Unicode("", help="why the last session failed, if it did").tag(sync=True)

    def __init__(
        self,
        config_or_processor: Any = None,
        *,
        chunk_sec: float = 0.2,
        max_pending_sec: float = 10.0,
        step_sec: float | None = None,
        warmup_sec: float = 1.0,
        preload: bool = True,
        **kwargs: Any,
    ) -> None:
        if (
            isinstance(chunk_sec, bool)
            or not isinstance(chunk_sec, (int, float))
            or not (MIN_CHUNK_SEC <= chunk_sec <= MAX_CHUNK_SEC)
        ):
            raise ValueError(
                f"chunk_sec={chunk_sec!r} must be seconds between {MIN_CHUNK_SEC} and {MAX_CHUNK_SEC}; "
                f"0.1-0.25 keeps messages few and the lag small, e.g. chunk_sec=0.2"
            )
        if isinstance(max_pending_sec, bool) or not isinstance(max_pending_sec, (int, float)) or max_pending_sec <= 0:
            raise ValueError(f"max_pending_sec={max_pending_sec!r} must be a positive number of seconds, e.g. 10")
        if step_sec is not None and (
            isinstance(step_sec, bool) or not isinstance(step_sec, (int, float)) or not 0 < step_sec <= 60
        ):
            raise ValueError(f"step_sec={step_sec!r} must be None or seconds in (0, 60], e.g. 0.2")
        if isinstance(warmup_sec, bool) or not isinstance(warmup_sec, (int, float)) or warmup_sec < 0:
            raise ValueError(f"warmup_sec={warmup_sec!r} must be a number of seconds >= 0, e.g. 1.0")
        self.max_pending_sec = float(max_pending_sec)
        self.step_sec = None if step_sec is None else float(step_sec)
        self.warmup_sec = float(warmup_sec)
        self._processor: Any = None
        self._config: dict | None = None
        self._loaded: dict[str, tuple[Any, dict]] = {}  # config JSON -> (processor, meta)
        self._load_lock = threading.Lock()
        self._preload = False  # not while the traits are first set; see below
        self._sessions: list[_Session] = []
        self._lock = threading.Lock()
        self.stray_chunks = 0
        """Audio messages that arrived with no session open (before Start); not counted as drops."""

        backend, names, locked = self._resolve(config_or_processor)
        super().__init__(backends=names, backend=backend, backend_locked=locked, chunk_sec=float(chunk_sec), **kwargs)
        self.on_msg(self._on_comm_message)
        self._preload = bool(preload) and not locked
        if self._preload:
            self._start_preload(backend)

    # -- configuration -----------------------------------------------------------------
    def _resolve(self, value: Any) -> tuple[str, list[str], bool]:
        from asr_lab.backends.registry import available_backends, get_loader
        from asr_lab.core.config import ASRConfig, config_from_json

        if value is not None and all(callable(getattr(value, m, None)) for m in _PROCESSOR_METHODS):
            self._processor = value
            name = type(value).__name__
            return name, [name], True
        installed = [b.name for b in available_backends() if b.installed]
        if value is None:
            if not installed:
                raise RuntimeError(
                    "no speech recognition backend is installed; install one, e.g. pip install 'asr-lab[pocketsphinx]'"
                )
            config = {"backend": "pocketsphinx" if "pocketsphinx" in installed else installed[0]}
        elif isinstance(value, ASRConfig):
            config = value.model_dump(exclude_unset=True) | {"backend": value.backend}
        elif isinstance(value, dict):
            config = dict(value)
        elif isinstance(value, (str, bytes)):
            text = value.decode() if isinstance(value, bytes) else value
            if text.lstrip().startswith("{"):
                config = config_from_json(text)
            else:
                config = {"backend": text.strip()}
        else:
            raise TypeError(
                f"LiveMicPanel needs a config (dict, JSON text, ASRConfig), a backend name or an ASRProcessor, "
                f"not {type(value).__name__}; e.g. LiveMicPanel({{'backend': 'pocketsphinx'}})"
            )
        backend = config.get("backend", ASRConfig.model_fields["backend"].default)
        get_loader(backend)  # fail now, naming the known backends or the pip install that is missing
        config["backend"] = backend
        self._config = config
        return backend, installed if backend in installed else [backend, *installed], False

    def _config_for(self, backend: str) -> dict:
        """The configuration a session on ``backend`` uses: the given one, or that backend's defaults."""
        assert self._config is not None
        return dict(self._config) if self._config.get("backend") == backend else {"backend": backend}

    def _load(self, config: dict) -> tuple[Any, dict]:
        from asr_lab.backends.registry import load_processor

        key = json.dumps(config, sort_keys=True, default=str)
        with self._load_lock:  # the preloader and a session's worker never load the same engine twice
            if key not in self._loaded:
                self._loaded[key] = load_processor(config)
            return self._loaded[key]

    def _start_preload(self, backend: str) -> None:
        """Load ``backend``'s engine in the background, so that Start does not wait for it.

        While an engine loads, arriving audio queues up and the replay's clock starts only
        when the engine is ready, so the first lags would read too low; loading ahead avoids that.
        """

        def preload() -> None:
            try:
                self._load(self._config_for(backend))
            except Exception as exc:  # noqa: BLE001 -- shown in the panel now; Start tries again and says why
                if self.backend == backend and not self.running:
                    self.error = f"could not load backend {backend!r}: {type(exc).__name__}: {exc}"

        self._preloader = threading.Thread(target=preload, name=f"asr_lab-live-preload-{backend}", daemon=True)
        self._preloader.start()

    @traitlets.observe("backend")
    def _backend_chosen(self, change: dict) -> None:
        if getattr(self, "_preload", False) and change["new"]:
            self.error = ""
            self._start_preload(change["new"])

    # -- the comm handler ----------------------------------------------------------------
    def _on_comm_message(self, widget: Any, content: Any, buffers: Sequence[Any]) -> None:
        self.handle_message(content, buffers)

    def handle_message(self, content: Any, buffers: Sequence[Any] = ()) -> bool | None:
        """Handle one message from the front-end (the comm's handler; tests call it directly).

        ``audio`` is decoded and offered to the session's queue — nothing else happens
        here; returns whether the chunk was accepted. ``start`` opens a session (its worker
        loads the engine and runs the replay), ``stop`` closes the queue (the replay
        finishes what is queued), ``error`` records a front-end failure.
        """
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "audio":
            session = self._sessions[-1] if self._sessions else None
            if session is None:
                self.stray_chunks += 1
                return False
            audio = decode_audio_message(content, buffers)
            seq = content.get("seq")
            session.chunks_received += 1
            if isinstance(seq, int) and not isinstance(seq, bool):
                problem = _seq_problem(session, seq, self.chunk_sec)
                if problem is not None:
                    session.rejected_chunks += 1
                    self.error = problem
                    return False
                if not _in_sequence(session, seq):
                    return False  # late or repeated: counted, and not spliced into a stream that moved on
            return session.audio.push(audio)
        if kind == "start":
            from asr_lab.core.audio import AudioError, check_sample_rate

            try:  # the browser's capture rate: refuse now what every audio message would be refused for
                check_sample_rate(content.get("rate", SAMPLE_RATE), "microphone")
            except AudioError as exc:
                self.error, self.status = str(exc), "error"
                return None
            self._start_session(content)
            return None
        if kind == "stop":
            session = self._sessions[-1] if self._sessions else None
            if session is not None:
                sent = content.get("seq")
                if isinstance(sent, int) and not isinstance(sent, bool) and sent > session.next_seq:
                    problem = _seq_problem(session, sent, self.chunk_sec)
                    if problem is None:
                        session.missing_chunks += sent - session.next_seq
                    else:
                        session.rejected_chunks += 1
                        self.error = problem
                self._close(session)
            return None
        if kind == "error":
            self.error = str(content.get("message", "the front-end reported an error"))
            self.status = "error"
            return None
        raise ValueError(
            f"unknown message from the live panel front-end: type={kind!r} in {content!r:.120}; "
            f"expected one of 'start', 'audio', 'stop', 'error'"
        )

    # -- sessions ------------------------------------------------------------------------
    def _start_session(self, content: dict) -> _Session:
        with self._lock:
            previous = self._sessions[-1] if self._sessions else None
            if previous is not None and not previous.done.is_set():
                self._close(previous, stop=True)  # a second Start: end the first, keep its trace
            backend = self.backend
            config = None if self._processor is not None else self._config_for(backend)
            session = _Session(len(self._sessions), config, backend, self.max_pending_sec, content)
            self._sessions.append(session)
        self.set_trait("status", "starting")
        session.worker = threading.Thread(
            target=self._run, args=(session, previous), name=f"asr_lab-live-{session.index}", daemon=True
        )
        session.publisher = threading.Thread(
            target=self._publish_loop, args=(session,), name=f"asr_lab-live-ui-{session.index}", daemon=True
        )
        session.worker.start()
        session.publisher.start()
        return session

    def _close(self, session: _Session, stop: bool = False) -> None:
        session.audio.close()
        if stop:
            session.stop.set()
        if not session.done.is_set() and session.status != "error":
            session.status = "finishing"
            session.dirty.set()

    def _run(self, session: _Session, previous: _Session | None) -> None:
        """The worker: load the engine, then the one replay loop on the wall clock."""
        try:
            if previous is not None and previous.worker is not None:
                previous.worker.join()  # the engine is shared between sessions: one at a time
            if self._processor is not None:
                processor, meta = self._processor, {"backend": session.backend}
            else:
                processor, meta = self._load(session.config)
            session.meta = meta
            if session.status == "starting":
                session.status = "listening"
                session.dirty.set()
            step = self.step_sec or getattr(processor, "min_chunk_sec", None) or self.chunk_sec
            run_meta = {
                "source": "microphone",
                "backend": session.backend,
                "config": session.config,
                "capture_chunk_sec": self.chunk_sec,
                "capture_rate": session.start_message.get("rate"),
                "browser_context_rate": session.start_message.get("context_rate"),
                "max_pending_sec": self.max_pending_sec,
                "started": session.started_at.isoformat(timespec="seconds"),
            }
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # errors are shown in the panel instead
                trace = replay(
                    processor,
                    session.audio,
                    clock="wall",
                    chunk_sec=float(step),
                    warmup_sec=self.warmup_sec,
                    separator=meta.get("separator"),
                    on_emission=lambda e: self._on_emission(session, e),
                    on_partial=lambda p: self._on_partial(session, p),
                    stop=session.stop,
                    meta=run_meta,
                )
            trace.meta["missing_chunks"] = session.missing_chunks
            trace.meta["late_chunks"] = session.late_chunks
            trace.meta["duplicate_chunks"] = session.duplicate_chunks
            trace.meta["rejected_chunks"] = session.rejected_chunks
            trace.meta["chunks_received"] = session.chunks_received
            session.trace = trace
            if trace.error is not None:
                session.error = f"the engine failed: {trace.error}"
                session.status = "error"
        except Exception as exc:  # noqa: BLE001 -- a failed load is shown in the panel, the kernel lives on
            session.failure = exc
            session.error = f"{type(exc).__name__}: {exc}"
            session.status = "error"
        finally:
            session.audio.close()  # audio arriving now is counted as dropped
            if session.status != "error":
                session.status = "idle"
            session.done.set()
            session.dirty.set()

    # The callbacks run in the worker right after the engine returned: "now" is when the text appeared.
    def _on_emission(self, session: _Session, emission: Emission) -> None:
        session.committed.append(emission.text)
        now = session.audio.stream_now()
        session.lag = None if now is None else now - emission.end
        session.dirty.set()

    def _on_partial(self, session: _Session, snapshot: PartialSnapshot) -> None:
        session.partial = snapshot.text
        now = session.audio.stream_now()
        if snapshot.text and snapshot.end is not None and now is not None:
            session.lag = now - snapshot.end
        session.dirty.set()

    def _publish_loop(self, session: _Session) -> None:
        """The one thread that writes the widget's state for a session (until it is done)."""
        while True:
            session.dirty.wait(PUBLISH_EVERY_SEC)
            session.dirty.clear()
            finished = session.done.is_set()
            if self._sessions and self._sessions[-1] is not session:
                return  # a newer session owns the display
            self._publish(session)
            if finished:
                return

    def _publish(self, session: _Session) -> None:
        audio = session.audio
        sep = session.meta.get("separator", " ") or " "
        values = {
            "committed": sep.join(session.committed).strip(),
            "partial": session.partial,
            "lag_sec": None if session.lag is None else round(float(session.lag), 3),
            "backlog_sec": round(max(0, audio.received_sec * SAMPLE_RATE - audio.read_samples) / SAMPLE_RATE, 2),
            "received_sec": round(audio.received_sec, 2),
            "dropped_chunks": int(audio.dropped_chunks),
            "dropped_sec": round(audio.dropped_sec, 2),
            "error": session.error,
            "status": session.status,
        }
        with self.hold_sync():
            for name, value in values.items():
                if getattr(self, name) != value:
                    self.set_trait(name, value)

    # -- kernel-side API -------------------------------------------------------------------
    @property
    def session(self) -> _Session | None:
        """The current (or last) session, or ``None`` before the first Start."""
        sessions = getattr(self, "_sessions", None)  # absent when __init__ rejected its arguments
        return sessions[-1] if sessions else None

    @property
    def running(self) -> bool:
        """Whether a session is open or still finishing."""
        return bool(self._sessions) and not self._sessions[-1].done.is_set()

    @property
    def trace(self) -> Trace | None:
        """The :class:`~asr_lab.Trace` of the last finished session (``None`` before one has finished)."""
        for session in reversed(self._sessions):
            if session.done.is_set() and session.trace is not None:
                return session.trace
        return None

    @property
    def traces(self) -> list[Trace]:
        """The traces of all finished sessions, oldest first."""
        return [s.trace for s in self._sessions if s.done.is_set() and s.trace is not None]

    @property
    def live_audio(self) -> LiveAudio | None:
        """The current (or last) session's audio queue (``dropped_chunks``, ``received_sec``...)."""
        return self._sessions[-1].audio if self._sessions else None

    def recorded_audio(self) -> np.ndarray:
        """The last session's accepted audio (float32, 16 kHz): exactly what the engine heard."""
        if not self._sessions:
            return np.zeros(0, dtype=np.float32)
        return self._sessions[-1].audio.recorded_audio()

    def stop(self) -> None:
        """End the session from the kernel, as the Stop button does (the front-end stops capturing)."""
        session = self.session
        if session is not None and not session.done.is_set():
            self._close(session)

    def wait(self, timeout: float | None = 60.0) -> Trace:
        """Block until the session has finished (after Stop); return its trace.

        Do not call this while a browser is still sending: the kernel delivers widget
        messages only between cells, so the Stop click could not arrive. Raises
        :class:`TimeoutError` if the session is still running after ``timeout`` seconds and
        the loading error if the engine could not be loaded.
        """
        session = self.session
        if session is None:
            raise RuntimeError("no session yet: click Start in the panel (or call inject_file(path)) first")
        if not session.join(timeout):
            raise TimeoutError(
                f"the live session is still running after {timeout} s; click Stop (or call panel.stop()) and wait again"
            )
        if session.failure is not None:
            raise RuntimeError(f"the live session failed: {session.error}") from session.failure
        assert session.trace is not None
        return session.trace

    def inject_file(
        self,
        path: Any,
        *,
        realtime: bool = True,
        chunk_sec: float | None = None,
        wait: bool = True,
        timeout: float | None = 60.0,
    ) -> Trace | None:
        """Play an audio file (or array) into the panel as if the browser's microphone heard it.

        The samples go through :meth:`handle_message` as the front-end sends them: a
        ``start`` message, one ``audio`` message of int16 bytes per ``chunk_sec`` (default:
        the panel's), then ``stop``. With ``realtime`` each chunk is sent when its audio
        would have been captured; otherwise as fast as possible (then the queue may fill
        and drop chunks, as it would with a slow engine). Returns the session's trace when
        ``wait`` (else ``None``).
        """
        from asr_lab.core.audio import load_audio

        audio = load_audio(path)
        step = float(chunk_sec if chunk_sec is not None else self.chunk_sec)
        if not MIN_CHUNK_SEC <= step <= MAX_CHUNK_SEC:
            raise ValueError(f"chunk_sec={chunk_sec!r} must be seconds between {MIN_CHUNK_SEC} and {MAX_CHUNK_SEC}")
        n = max(1, round(step * SAMPLE_RATE))
        self.handle_message({"type": "start", "rate": SAMPLE_RATE, "chunk_sec": step}, [])
        t0 = time.perf_counter()
        seq = 0
        for seq, first in enumerate(range(0, len(audio), n)):
            piece = audio[first : first + n]
            if realtime:
                due = t0 + (first + len(piece)) / SAMPLE_RATE  # a chunk leaves once it is captured
                time.sleep(max(0.0, due - time.perf_counter()))
            content, buffers = encode_audio_message(piece, seq)
            self.handle_message(content, buffers)
        self.handle_message({"type": "stop", "seq": seq + 1}, [])
        return self.wait(timeout) if wait else None

    def save_session(self, folder: Any, *, name: str | None = None, text: str = "") -> SavedSession:
        """Save the last session so it can be scored again like any dataset utterance.

        Writes ``<folder>/<name>.wav`` (what the engine heard), ``<folder>/<name>.trace.jsonl``
        and adds (or replaces) the line ``name`` in ``<folder>/manifest.jsonl`` — the dataset
        manifest :func:`asr_lab.load_dataset` reads. ``text`` is the reference transcript
        (what was actually said; the engine's output is kept as ``meta["hypothesis"]``, never
        as the reference): fill it in here, or edit the manifest line later. ``name``
        defaults to ``mic-<date>-<time>``.
        """
        from asr_lab.core.audio import save_audio
        from asr_lab.data.dataset import MANIFEST_NAME, Dataset, Utterance, read_manifest

        session = self.session
        if session is None:
            raise RuntimeError("nothing to save: no session yet; click Start, speak, click Stop, then save_session()")
        if not session.done.is_set():
            raise RuntimeError("the session is still running; click Stop (or call panel.stop()), then save_session()")
        if session.trace is None:
            raise RuntimeError(f"the last session produced no trace ({session.error}); nothing to save")
        if not isinstance(text, str):
            raise TypeError(f"text must be the reference transcript as a string, not {type(text).__name__}")
        name = name or f"mic-{session.started_at.strftime('%Y%m%d-%H%M%S')}"
        if not isinstance(name, str) or not _SESSION_NAME.match(name):
            raise ValueError(
                f"name={name!r} must be a file-name-safe id: letters, digits, '.', '_' or '-', e.g. 'mic-take-1'"
            )
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        audio = session.audio.recorded_audio()
        wav = save_audio(folder / f"{name}.wav", audio)
        trace_path = folder / f"{name}.trace.jsonl"
        session.trace.to_jsonl(trace_path)
        utterance = Utterance(
            id=name,
            audio=str(wav.resolve()),
            text=text,
            duration=len(audio) / SAMPLE_RATE,
            meta={
                "source": "microphone",
                "backend": session.backend,
                "config": session.config,
                "hypothesis": session.trace.text,
                "trace": trace_path.name,
                "dropped_chunks": session.audio.dropped_chunks,
                "dropped_sec": round(session.audio.dropped_sec, 3),
                "recorded": session.started_at.isoformat(timespec="seconds"),
                "reference": "given" if text.strip() else "missing: put what was said in 'text'",
            },
        )
        manifest = folder / MANIFEST_NAME
        others = [u for u in read_manifest(manifest, check_audio=False)] if manifest.exists() else []
        dataset = Dataset([u for u in others if u.id != name] + [utterance], root=folder)
        dataset.to_manifest(manifest)
        return SavedSession(name, wav, trace_path, manifest)

    def close(self) -> None:
        """End any running session, then close the widget."""
        self.stop()
        super().close()

    def __repr__(self) -> str:
        return f"LiveMicPanel(backend={self.backend!r}, status={self.status!r}, sessions={len(self._sessions)})"
