"""Where the server's engines run: beside the event loop (threads) or in worker processes.

Engines hold the GIL while they decode (pocketsphinx, and much of any Python engine), so an
engine thread in the server process starves its event loop: a real-time client's frames and
``/health`` wait behind a fast sender's decoding. :class:`EnginePool` runs the engines in
``processes`` worker processes instead (``spawn`` start method, so no thread or lock of
the server is inherited). Each worker loads the model once and serves several streams, each
in a thread of its own:

* a stream goes to the worker with the fewest streams;
* a processor comes from the loaded one's ``spawn()`` when the engine has it (the model is
  shared, see ``OnlineASRProcessor.spawn``); otherwise the worker's one idle processor is
  reused (``init()`` resets it) or another one is loaded, and when a stream ends beyond
  that one idle processor its processor is dropped and the memory handed back to the
  system (``malloc_trim``). Memory therefore follows the number of *concurrent* streams
  (pocketsphinx decoders cannot share their models), not the number ever served;
* each stream's audio queue is bounded (``max_pending_sec``): a client sending faster than
  real time has its excess chunks dropped and counted, never queued without end;
* a worker that dies (a crash in native code) ends only its own streams, with an error
  event, and is started again.

The server process keeps the sockets: it forwards audio to the worker through a pipe (by a
sender thread, so the event loop never blocks on a full pipe) and relays events back.
:func:`run_stream` is the one place both modes turn a processor and a live source into the
protocol's events.
"""

from __future__ import annotations

import atexit
import multiprocessing
import queue
import threading
import traceback
import weakref
from itertools import count
from typing import Any, Callable, Optional

import numpy as np

from asr_lab.backends.registry import call_loader
from asr_lab.replay import LiveAudio, replay

__all__ = ["EnginePool", "EngineProcessError", "Shedder", "run_stream"]

NORMAL, INTERNAL_ERROR = 1000, 1011
_POOLS: "weakref.WeakSet[EnginePool]" = weakref.WeakSet()


@atexit.register
def _closing() -> None:  # runs before multiprocessing ends the workers: do not replace them
    for pool in list(_POOLS):
        pool.closed = True


class EngineProcessError(RuntimeError):
    """A worker process could not load the engine; the message is the worker's.
    ``config_error``: the engine refused the configuration (a ConfigError), not a crash."""

    def __init__(self, message: str, config_error: bool = False) -> None:
        super().__init__(message)
        self.config_error = config_error


class Shedder:
    """Feeds a stream's :class:`LiveAudio` and makes its load shedding visible.

    When the engine falls behind real time, LiveAudio drops new chunks (counted): beyond
    ``max_behind_sec`` of lag (the server's ``max_lag_sec``), or beyond ``max_pending_sec``
    of queued audio (a client sending faster than real time). That bounds a stream's lag
    instead of letting it grow without end. Each drop is also *reported*: an ``overload``
    event goes to the client at the first drop and again whenever another
    ``report_every_sec`` of audio has been dropped (one message per second of lost audio,
    not one per chunk), with the totals, the reason and the limit. The server also refuses
    new streams while one is shedding (see :mod:`asr_lab.web.server`)."""

    def __init__(self, live: LiveAudio, post: Callable[[dict], None], report_every_sec: float = 1.0) -> None:
        self.live, self.post, self.report_every_sec = live, post, report_every_sec
        self._reported_sec: Optional[float] = None

    def push(self, samples: np.ndarray) -> bool:
        behind = self.live.behind_sec()  # before the push: a dropped chunk counts as skipped after it
        accepted = self.live.push(samples)
        if not accepted and not self.live.closed:
            dropped = self.live.dropped_sec
            if self._reported_sec is None or dropped - self._reported_sec >= self.report_every_sec:
                self._reported_sec = dropped
                self.post(overload_event(self.live, behind))
        return accepted


def overload_event(live: LiveAudio, behind: float) -> dict:
    """The ``overload`` event: audio dropped because the engine is ``behind`` seconds behind
    real time (or its queue is full), with the totals so far."""
    behind = max(0.0, behind)
    limit = live.max_behind_sec
    why = (f"the engine is {behind:.1f} s behind real time (limit {limit:g} s; machine or server overloaded)"
           if limit is not None and behind > limit else
           f"more than {live.max_pending_sec:g} s of audio wait for the engine (sent faster than real time, or the engine is slow)")
    return {"type": "overload", "code": "engine_behind", "dropped_chunks": live.dropped_chunks,
            "dropped_sec": round(live.dropped_sec, 3), "behind_sec": round(behind, 3), "max_lag_sec": limit,
            "max_pending_sec": live.max_pending_sec,
            "message": (f"{why}: {live.dropped_chunks} chunks ({live.dropped_sec:.1f} s of audio) dropped so far; "
                        f"the transcript has gaps there. Send fewer streams, or use a faster engine")}


def run_stream(processor: Any, live: LiveAudio, stop: threading.Event, post: Callable[[dict], None], *,
               chunk_sec: Optional[float], separator: Optional[str], backend: str):
    """Replay ``live`` into ``processor`` on the wall clock, posting the protocol's events
    (``segment``, ``partial``, then ``done`` or ``error`` with the close code to use)."""

    def on_emission(e) -> None:
        event = {"type": "segment", "start": e.start, "end": e.end, "text": e.text, "emitted_at": round(e.emitted_at, 4),
                 "lag": round(e.emitted_at - e.end, 4), "final": e.final}
        if e.words:
            event["words"] = [list(w) for w in e.words]
        post(event)

    def on_partial(p) -> None:
        post({"type": "partial", "text": p.text, "start": p.start, "end": p.end, "at": round(p.at, 4)})

    trace = replay(processor, live, clock="wall", chunk_sec=chunk_sec, warmup_sec=0, separator=separator,
                   on_emission=on_emission, on_partial=on_partial, stop=stop, meta={"backend": backend})
    if trace.error is not None:
        post({"type": "error", "code": "processor_failed", "message": str(trace.error), "close": INTERNAL_ERROR})
    elif not stop.is_set():
        post({"type": "done", "text": trace.text, "segments": len(trace.emissions), "audio_sec": round(trace.duration, 3),
              "rtf": round(trace.rtf, 4), "dropped_chunks": trace.meta.get("dropped_chunks", 0),
              "dropped_sec": round(live.dropped_sec, 3), "close": NORMAL})
    return trace


class EnginePool:
    """``processes`` worker processes serving streams for one loaded engine (see the module docstring).

    ``open(on_message)`` starts a stream and returns its id; ``on_message`` is called from a
    reader thread with ``("opened", problem_or_None)``, ``("event", dict)`` and finally
    ``("ended", None)``. ``audio(sid, samples)``, ``close(sid)`` (no more audio: finish)
    and ``stop(sid)`` (the client left) never block.
    """

    def __init__(self, loader: Any, config: Any, processes: int, *, max_pending_sec: float,
                 chunk_sec: Optional[float], backend: str, max_lag_sec: Optional[float] = None) -> None:
        if processes < 1:
            raise ValueError(f"processes={processes!r} must be at least 1")
        self._args = (loader, config, {"max_pending_sec": max_pending_sec, "chunk_sec": chunk_sec, "backend": backend,
                                       "max_lag_sec": max_lag_sec})
        self.meta: dict = {}
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._ids = count(1)
        self._handlers: dict[int, Callable] = {}
        self._where: dict[int, "_Worker"] = {}
        self.closed = False
        _POOLS.add(self)
        try:
            self._workers = [self._start() for _ in range(processes)]
        except Exception as exc:  # e.g. a loader that cannot be pickled for the worker
            raise EngineProcessError(f"cannot start an engine process for this backend ({type(exc).__name__}: {exc}); "
                                     f"serve it in-process with --engine-processes 0") from None
        answers = [w.wait_loaded() for w in self._workers]
        problem = next((a for a in answers if "error" in a), None)
        if problem is not None:
            self.shutdown()
            raise EngineProcessError(problem["error"], problem.get("config_error", False))
        self.meta = answers[0]["meta"]

    @property
    def streams(self) -> int:
        with self._lock:
            return len(self._where)

    def open(self, on_message: Callable[[tuple], None], kind: str = "open") -> int:
        """``kind="file"``: reserve a stream for :meth:`transcribe`, whose message starts it."""
        with self._lock:
            sid = next(self._ids)
            worker = min(self._workers, key=lambda w: w.load) if self._workers else None
            if worker is not None:
                worker.load += 1
                self._handlers[sid], self._where[sid] = on_message, worker
        if worker is None:  # every worker died and the replacements are still loading
            on_message(("opened", "the engine processes are restarting after a crash; try again in a few seconds"))
            on_message(("ended", None))
        else:
            if kind == "open":  # a file's stream starts with its ("file", sid, audio) message
                worker.send(("open", sid))
        return sid

    def transcribe(self, audio: np.ndarray, timeout: Optional[float] = None):
        """A whole recording through a worker's engine on the unaware clock; the Trace."""
        from asr_lab.replay.trace import Trace

        answers: queue.SimpleQueue = queue.SimpleQueue()
        sid = self.open(answers.put, kind="file")
        self._send(sid, ("file", sid, np.ascontiguousarray(audio, dtype=np.float32).tobytes()))
        trace, problem = None, None
        while True:
            kind, payload = answers.get(timeout=timeout)
            if kind == "opened" and payload:
                problem = payload
            elif kind == "event" and payload.get("type") == "trace":
                trace = Trace.from_jsonl(payload["trace"])
            elif kind == "event" and payload.get("type") == "error":
                problem = payload.get("message")
            elif kind == "ended":
                break
        if trace is None:
            raise RuntimeError(problem or "the engine process returned no transcript")
        return trace

    def audio(self, sid: int, samples: np.ndarray) -> None:
        self._send(sid, ("audio", sid, np.ascontiguousarray(samples, dtype=np.float32).tobytes()))

    def close(self, sid: int) -> None:
        self._send(sid, ("close", sid))

    def stop(self, sid: int) -> None:
        self._send(sid, ("stop", sid))

    def shutdown(self) -> None:
        """End the workers (their streams end with them)."""
        self.closed = True
        for w in self._workers:
            w.send(None)
        for w in self._workers:
            w.process.join(timeout=5)
            if w.process.is_alive():
                w.process.kill()

    # -- inside ----------------------------------------------------------------------------
    def _send(self, sid: int, message: tuple) -> None:
        worker = self._where.get(sid)
        if worker is not None:
            worker.send(message)

    def _start(self) -> "_Worker":
        ours, theirs = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, args=(theirs, *self._args), daemon=True, name="asr_lab-engine")
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        threading.Thread(target=self._read, args=(worker,), daemon=True, name="asr_lab-engine-reader").start()
        return worker

    def _read(self, worker: "_Worker") -> None:
        while True:
            try:
                kind, sid, payload = worker.conn.recv()
            except (EOFError, OSError):
                break
            if kind == "loaded":
                worker.loaded.put(payload)
                continue
            self._dispatch(sid, kind, payload)
        worker.loaded.put({"error": f"the engine process exited while loading (exit code {worker.process.exitcode})"})
        worker.send(None)
        worker.process.join(timeout=5)
        # the process died (or was shut down): no new stream goes to it; end its streams; replace it
        with self._lock:
            self._workers = [w for w in self._workers if w is not worker]
            orphans = [sid for sid, w in self._where.items() if w is worker]
        for sid in orphans:
            self._dispatch(sid, "event", {"type": "error", "code": "engine_process_died", "close": INTERNAL_ERROR,
                                          "message": f"the engine process ended (exit code {worker.process.exitcode}); "
                                                     f"this stream is lost, the others go on"})
            self._dispatch(sid, "ended", None)
        if not self.closed:
            replacement = self._start()
            if "error" not in replacement.wait_loaded():  # else leave it out rather than loop
                with self._lock:
                    self._workers.append(replacement)

    def _dispatch(self, sid: int, kind: str, payload: Any) -> None:
        with self._lock:
            handler = self._handlers.get(sid)
            if kind == "ended":
                self._handlers.pop(sid, None)
                worker = self._where.pop(sid, None)
                if worker is not None:
                    worker.load -= 1
        if handler is not None:
            handler((kind, payload))


class _Worker:
    """The server's side of one worker process: its pipe, with a sender thread so callers never block."""

    def __init__(self, process, conn) -> None:
        self.process, self.conn = process, conn
        self.load = 0
        self.loaded: queue.SimpleQueue = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._send_loop, daemon=True, name="asr_lab-engine-sender").start()

    def send(self, message) -> None:
        self._outbox.put(message)

    def wait_loaded(self) -> dict:
        return self.loaded.get()

    def _send_loop(self) -> None:
        while True:
            message = self._outbox.get()
            try:
                self.conn.send(message)
            except (OSError, ValueError):
                return
            if message is None:
                return


# -- the worker process ------------------------------------------------------------------------


def _release_memory() -> None:
    """Collect, then ask glibc to return freed heap pages to the system (a no-op elsewhere)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _worker_main(conn, loader, config, options: dict) -> None:
    send_lock = threading.Lock()

    def send(kind: str, sid: Optional[int], payload: Any) -> None:
        with send_lock:
            try:
                conn.send((kind, sid, payload))
            except (OSError, ValueError):
                pass  # the server is gone; the main loop ends on its own

    try:
        template, meta = call_loader(loader, config, options.get("backend"))
    except BaseException as exc:  # noqa: BLE001 -- reported to the server, which answers the request
        from asr_lab.core.config import ConfigError

        config_error = isinstance(exc, ConfigError)
        send("loaded", None, {"error": str(exc) if config_error else f"{type(exc).__name__}: {exc}", "config_error": config_error})
        return
    meta = dict(meta)
    send("loaded", None, {"meta": meta})
    spawn = getattr(template, "spawn", None)
    idle = [] if callable(spawn) else [template]
    idle_lock = threading.Lock()
    streams: dict[int, tuple[LiveAudio, threading.Event, Shedder]] = {}

    def processor():
        if callable(spawn):
            return spawn()
        with idle_lock:
            if idle:
                return idle.pop()
        return call_loader(loader, config, options.get("backend"))[0]

    def opened(sid: int):
        """A processor for stream ``sid``, its opening reported either way (None if it could not be made)."""
        try:
            proc = processor()
        except Exception as exc:  # noqa: BLE001
            send("opened", sid, f"could not create a processor: {type(exc).__name__}: {exc}")
            send("ended", sid, None)
            return None
        send("opened", sid, None)
        return proc

    def serve_file(sid: int, audio: np.ndarray) -> None:
        """A whole recording on the unaware clock (the OpenAI-style REST route)."""
        proc = opened(sid)
        if proc is None:
            return
        try:
            trace = replay(proc, audio, clock="unaware", chunk_sec=options["chunk_sec"], warmup_sec=0,
                           separator=meta.get("separator"), meta={"backend": options["backend"], "route": "file"})
            send("event", sid, {"type": "trace", "trace": trace.to_jsonl()})
            if not callable(spawn):
                with idle_lock:
                    if not idle:
                        idle.append(proc)
        except Exception:  # noqa: BLE001 -- replay records processor errors; this is a bug of ours
            send("event", sid, {"type": "error", "code": "internal", "message": traceback.format_exc(limit=3), "close": INTERNAL_ERROR})
        finally:
            send("ended", sid, None)

    def serve(sid: int, live: LiveAudio, stop: threading.Event) -> None:
        proc = opened(sid)
        if proc is None:
            return
        try:
            trace = run_stream(proc, live, stop, lambda event: send("event", sid, event), chunk_sec=options["chunk_sec"],
                               separator=meta.get("separator"), backend=options["backend"])
            if trace.ok and not callable(spawn):
                with idle_lock:
                    if not idle:
                        idle.append(proc)  # init() at the next stream's start resets it
                        proc = None
            del proc
            _release_memory()
        except Exception:  # noqa: BLE001 -- run_stream records processor errors; this is a bug of ours
            send("event", sid, {"type": "error", "code": "internal", "message": traceback.format_exc(limit=3), "close": INTERNAL_ERROR})
        finally:
            streams.pop(sid, None)
            send("ended", sid, None)

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message is None:
            break
        kind, sid = message[0], message[1]
        if kind == "file":  # ("file", sid, float32 bytes): a whole recording, not a stream
            audio = np.frombuffer(message[2], dtype=np.float32).copy()
            threading.Thread(target=serve_file, args=(sid, audio), daemon=True, name=f"asr_lab-file-{sid}").start()
            continue
        if kind == "open":
            live = LiveAudio(max_pending_sec=options["max_pending_sec"], max_behind_sec=options.get("max_lag_sec"))
            stop = threading.Event()
            live.recording = None  # the server keeps no recording; memory stays bounded
            streams[sid] = (live, stop, Shedder(live, lambda event, sid=sid: send("event", sid, event)))
            threading.Thread(target=serve, args=(sid, live, stop), daemon=True, name=f"asr_lab-stream-{sid}").start()
            continue
        stream = streams.get(sid)
        if stream is None:
            continue
        if kind == "audio":
            stream[2].push(np.frombuffer(message[2], dtype=np.float32))
        elif kind == "close":
            stream[0].close()
        elif kind == "stop":
            stream[1].set()
            stream[0].close()
    for live, stop, _ in list(streams.values()):
        stop.set()
        live.close()


def retire_engine(loaded: Any, state: Any) -> None:
    """Stop a replaced engine's worker processes once its last stream has ended.

    ``loaded``: the server's record of a loaded engine (its ``pool``), ``state``: the server's
    state (its current ``loaded``). Here, beside the pool, so that the WebSocket and the WebRTC
    transports both reach it without importing each other.
    """
    if loaded is not None and loaded.pool is not None and loaded is not state.loaded and loaded.pool.streams == 0 and not loaded.pool.closed:
        loaded.pool.shutdown()
