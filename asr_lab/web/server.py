"""Serve any registered processor over HTTP and WebSocket — the seed's ``/load_model`` contract.

Endpoints
---------
``POST /load_model``
    Body: an engine configuration (the seed's JSON: ``{"backend": ..., "model": ..., "lan":
    ..., ...}``), validated by the backend's own config class. 200 with the backend and its
    separator; 422 with one message per bad field (also when the engine refuses a value,
    e.g. a ``model_dir`` without a model); 404 listing the known backends; 424 when the
    engine's package is missing (with the pip command); 500 when loading fails. Any request:
    403 for a foreign Host or Origin, 401 without the token (when one is set), 415 for a
    body that is not JSON, 413 for a body over ``max_body_bytes``.
``GET /backends``, ``GET /health``
    What can be loaded; whether a model is loaded and how many streams are open.
``WS /asr``
    One audio stream per connection, through its own processor (the loaded model is shared
    when the backend allows, see ``OnlineASRProcessor.spawn``). The client first sends
    ``{"type": "start", "format": "int16" | "float32", "sample_rate": 16000}``, then binary
    frames of little-endian mono PCM, then ``{"type": "stop"}`` (or just closes). The server
    answers ``ready``, then ``segment`` events (``start``, ``end``, ``text``, ``emitted_at``,
    ``lag``) as text is committed, ``partial`` events when the processor has ``partial()``,
    ``done`` with a summary, or ``error`` (``code``, ``message``) before closing with a
    WebSocket close code. The socket is an audio source arriving in real time, driven by
    the same replay loop as everything else (:func:`asr_lab.replay` on the wall clock).
``POST /webrtc/offer``
    The same stream over WebRTC: an SDP offer with a microphone track and a data channel in,
    the answer out; events come back on the data channel (:mod:`asr_lab.web.webrtc`).
``GET /``
    A page that captures the browser microphone and shows the live transcript.

With ``engine_processes`` > 0 (``asr-lab serve``'s default) the engines run in worker
processes (:mod:`asr_lab.web.engines`), so decoding never holds the event loop's GIL.

The server only instantiates registered backends: a request names a backend, never a module.
Every request first passes :class:`~asr_lab.web.access.AccessGuard` (Host and Origin
allow-lists, optional token, JSON bodies of bounded size), so that only its user's own
pages and programs can drive it; a stream that goes quiet is closed after
``idle_timeout_sec``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Optional

import numpy as np

try:
    from fastapi import Body, FastAPI, WebSocket
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.websockets import WebSocketDisconnect, WebSocketState
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"the asr_lab server needs FastAPI ({exc.name} is missing): pip install 'asr-lab[server]'") from exc

from asr_lab.backends.registry import MissingDependencyError, UnknownBackendError, available_backends, get_loader
from asr_lab.core.config import ASRConfig, ConfigError, parse_config
from asr_lab.core.protocols import SAMPLE_RATE
from asr_lab.replay import LiveAudio
from asr_lab.web.access import AccessGuard, AccessPolicy
from asr_lab.web.engines import EnginePool, EngineProcessError, run_stream
from asr_lab.web.webrtc import add_webrtc_routes

__all__ = ["create_app", "ServerSettings"]

FORMATS = {"int16": np.dtype("<i2"), "float32": np.dtype("<f4")}


class CloseCode:
    """WebSocket close codes (RFC 6455 section 7.4.1) used by this server."""

    NORMAL = 1000
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013


@dataclass
class ServerSettings:
    """Limits of one server: they protect it from a client, and each other's streams."""

    max_message_bytes: int = 1 << 20  # 1 MiB: ~32 s of int16 audio in one frame
    max_connections: int = 16
    max_pending_sec: float = 30.0  # audio waiting for the engine before new chunks are dropped
    start_timeout_sec: float = 10.0  # time allowed for the first (start) message
    idle_timeout_sec: float = 30.0  # a started stream that sends nothing for this long is closed
    chunk_sec: Optional[float] = None  # replay step; default: the engine's min chunk
    allowed_hosts: tuple = ()  # beyond loopback names; ("*",) allows any (see asr_lab.web.access)
    allowed_origins: tuple = ()  # beyond the server's own page and loopback origins
    token: Optional[str] = None  # when set, every request must carry it
    max_body_bytes: int = 64 * 1024
    engine_processes: int = 0  # 0: engines in threads of the server process; N: in N worker processes (asr_lab.web.engines)


@dataclass
class _Loaded:
    backend: str
    config: ASRConfig
    template: Any
    meta: dict
    loader: Any
    load_sec: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    pool: Optional[EnginePool] = None  # the engines run in worker processes

    def new_processor(self) -> Any:
        # one at a time: model loading is not generally safe to run concurrently
        with self.lock:
            spawn = getattr(self.template, "spawn", None)
            return spawn() if callable(spawn) else self.loader.load(self.config)[0]


@dataclass
class _State:
    settings: ServerSettings
    loaded: Optional[_Loaded] = None
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def create_app(config: Any = None, *, settings: Optional[ServerSettings] = None):
    """The FastAPI application; ``config`` (dict / JSON / ASRConfig) is loaded at start if given."""
    state = _State(settings or ServerSettings())
    app = FastAPI(title="asr_lab server", description="Streaming speech recognition with any registered asr_lab backend.")
    app.state.asr = state
    s = state.settings
    app.add_middleware(AccessGuard, policy=AccessPolicy(tuple(s.allowed_hosts), tuple(s.allowed_origins), s.token, s.max_body_bytes))

    def load(body: Any) -> tuple[int, dict]:
        try:
            data = json.loads(body) if isinstance(body, (str, bytes)) else body
            if not isinstance(data, dict):
                raise ConfigError(f'the body must be a JSON object such as {{"backend": "pocketsphinx"}}, not {data!r:.60}')
            backend = parse_config({"backend": data.get("backend", ASRConfig.model_fields["backend"].default)}).backend
            loader = get_loader(backend)
            cfg = parse_config(data, getattr(loader, "config_class", None) or ASRConfig)
        except UnknownBackendError as exc:
            return 404, {"error": "unknown_backend", "message": str(exc), "known": [b.name for b in available_backends()]}
        except MissingDependencyError as exc:
            return 424, {"error": "missing_dependency", "message": str(exc)}
        except (ConfigError, json.JSONDecodeError) as exc:
            return 422, {"error": "invalid_config", "message": str(exc), "fields": _field_errors(str(exc))}
        t0 = time.perf_counter()
        pool = None
        try:
            if state.settings.engine_processes:
                pool = EnginePool(loader, cfg, state.settings.engine_processes, max_pending_sec=state.settings.max_pending_sec,
                                  chunk_sec=state.settings.chunk_sec, backend=backend)
                template, meta = None, pool.meta
            else:
                template, meta = loader.load(cfg)
        except EngineProcessError as exc:
            if exc.config_error:
                return 422, {"error": "invalid_config", "message": str(exc), "fields": _fields_named(str(exc), cfg)}
            return 500, {"error": "load_failed", "message": str(exc)}
        except ConfigError as exc:  # e.g. model_dir="/etc": a folder without a model is the request's fault
            return 422, {"error": "invalid_config", "message": str(exc), "fields": _fields_named(str(exc), cfg)}
        except Exception as exc:
            return 500, {"error": "load_failed", "message": f"{type(exc).__name__}: {exc}"}
        loaded = _Loaded(backend, cfg, template, dict(meta), loader, time.perf_counter() - t0, pool=pool)
        with state.lock:
            old, state.loaded = state.loaded, loaded
        _retire(old, state)
        return 200, {"status": "loaded", "backend": backend, "separator": meta.get("separator", " "),
                     "load_sec": round(loaded.load_sec, 3), "config": cfg.model_dump()}

    if config is not None:
        status, body = load(config.model_dump() if isinstance(config, ASRConfig) else config)
        if status != 200:
            raise ConfigError(f"cannot load the server's initial model: {body['message']}")

    @app.post("/load_model")
    def load_model(body: Any = Body(...)):
        status, payload = load(body)
        return JSONResponse(payload, status_code=status)

    @app.get("/backends")
    def backends():
        return [b.to_dict() for b in available_backends()]

    @app.get("/health")
    def health():
        loaded = state.loaded
        return {"status": "ok", "loaded": loaded.backend if loaded else None, "connections": state.connections}

    @app.get("/", response_class=HTMLResponse)
    def page():
        return resources.files("asr_lab.web").joinpath("page.html").read_text(encoding="utf-8").replace(
            "/*CAPTURE_JS*/", _capture_js()
        )

    @app.websocket("/asr")
    async def asr_socket(ws: WebSocket):
        await _Stream(ws, state).run()

    add_webrtc_routes(app, state)  # POST /webrtc/offer: the same streams over WebRTC (asr_lab.web.webrtc)

    return app


class _Stream:
    """One WebSocket connection: decode frames into a LiveAudio, replay it in a thread, send events."""

    def __init__(self, ws, state: _State) -> None:
        self.ws, self.state, self.settings = ws, state, state.settings
        self.events: asyncio.Queue = asyncio.Queue()
        self.stop = threading.Event()
        self.live = LiveAudio(max_pending_sec=self.settings.max_pending_sec)
        self.live.recording = None  # the server saves no sessions: a long stream must not grow memory
        self.push = self.live.push

    async def run(self) -> None:
        ws = self.ws
        await ws.accept()
        with self.state.lock:
            full = self.state.connections >= self.settings.max_connections
            if not full:
                self.state.connections += 1
        if full:
            await self._fail(CloseCode.TRY_AGAIN_LATER, "too_many_streams", f"the server already serves {self.settings.max_connections} streams; try again later")
            return
        try:
            await self._serve()
        except WebSocketDisconnect:
            pass  # the client left: the worker is stopped below, nothing is left to send
        finally:
            self.stop.set()
            self.live.close()
            with self.state.lock:
                self.state.connections -= 1
            loaded = getattr(self, "loaded", None)
            if loaded is not None and loaded is not self.state.loaded:
                _retire(loaded, self.state)

    async def _serve(self) -> None:
        ws = self.ws
        loaded = self.state.loaded
        if loaded is None:
            await self._fail(CloseCode.POLICY_VIOLATION, "no_model", "no model is loaded: POST /load_model first")
            return
        try:
            first = await asyncio.wait_for(ws.receive(), timeout=self.settings.start_timeout_sec)
        except asyncio.TimeoutError:
            await self._fail(CloseCode.POLICY_VIOLATION, "no_start", f"no start message within {self.settings.start_timeout_sec:g} s")
            return
        if first.get("type") == "websocket.disconnect":
            return
        dtype, problem = _parse_start(first)
        if problem:
            await self._fail(CloseCode.UNSUPPORTED_DATA if "format" in problem or "sample_rate" in problem else CloseCode.PROTOCOL_ERROR, "bad_start", problem)
            return
        self.loaded = loaded
        if loaded.pool is not None:
            await self._serve_in_pool(loaded, dtype)
            return
        loop = asyncio.get_running_loop()
        created: asyncio.Future = loop.create_future()
        # the stream's own thread builds its processor and then replays into it, so an
        # engine's objects are made and used on one thread
        worker = threading.Thread(target=self._work, args=(loaded, loop, created), daemon=True, name="asr-stream")
        worker.start()
        problem = await created
        if problem:
            await asyncio.to_thread(worker.join)
            await self._fail(CloseCode.INTERNAL_ERROR, "processor_failed", problem)
            return
        await ws.send_json({"type": "ready", "backend": loaded.backend, "separator": loaded.meta.get("separator", " "),
                            "sample_rate": SAMPLE_RATE, "format": first_format(dtype)})
        sender = asyncio.create_task(self._send_events())
        try:
            await self._receive(dtype)
        finally:
            self.live.close()
            await asyncio.to_thread(worker.join)
            await self.events.put(None)
            await sender

    async def _serve_in_pool(self, loaded: _Loaded, dtype: np.dtype) -> None:
        """The same stream, with the engine in a worker process: audio goes down a pipe, events come back."""
        ws, pool, loop = self.ws, loaded.pool, asyncio.get_running_loop()
        created, ended = loop.create_future(), loop.create_future()

        def arrive(message) -> None:  # on the event loop
            kind, payload = message
            if kind == "opened" and not created.done():
                created.set_result(payload)
            elif kind == "event":
                self.events.put_nowait(payload)
            elif kind == "ended":
                if not created.done():
                    created.set_result("the engine process ended before the stream started")
                if not ended.done():  # cancelled when the connection's task was
                    ended.set_result(None)

        def relay(message) -> None:  # on the pool's reader thread
            try:
                loop.call_soon_threadsafe(arrive, message)
            except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
                pass

        sid = pool.open(relay)
        try:
            problem = await created
        except asyncio.CancelledError:  # the server is stopping: do not leave the worker waiting for audio
            pool.stop(sid)
            raise
        if problem:
            await ended
            await self._fail(CloseCode.INTERNAL_ERROR, "processor_failed", problem)
            return
        self.push = lambda audio: pool.audio(sid, audio)
        await ws.send_json({"type": "ready", "backend": loaded.backend, "separator": loaded.meta.get("separator", " "),
                            "sample_rate": SAMPLE_RATE, "format": first_format(dtype)})
        sender = asyncio.create_task(self._send_events())
        try:
            await self._receive(dtype)
        finally:
            (pool.stop if self.stop.is_set() else pool.close)(sid)
            await ended
            await self.events.put(None)
            await sender

    async def _receive(self, dtype: np.dtype) -> None:
        ws, limit = self.ws, self.settings.max_message_bytes
        while True:
            try:
                message = await asyncio.wait_for(ws.receive(), timeout=self.settings.idle_timeout_sec)
            except asyncio.TimeoutError:  # a silent client must not hold a slot forever
                await self._error_event(CloseCode.POLICY_VIOLATION, "idle_timeout",
                                        f"nothing received for {self.settings.idle_timeout_sec:g} s; the stream is closed")
                self.stop.set()
                return
            kind = message.get("type")
            if kind == "websocket.disconnect":
                self.stop.set()  # a client that left mid-stream gets nothing more
                return
            data, text = message.get("bytes"), message.get("text")
            if data is not None:
                if len(data) > limit:
                    await self._error_event(CloseCode.TOO_BIG, "message_too_big", f"a frame of {len(data)} bytes exceeds the limit of {limit}; send smaller chunks (e.g. 100-500 ms)")
                    self.stop.set()
                    return
                if len(data) % dtype.itemsize:
                    await self._error_event(CloseCode.INVALID_PAYLOAD, "bad_frame",
                                            f"a frame of {len(data)} bytes is not a whole number of {first_format(dtype)} samples ({dtype.itemsize} bytes each)")
                    self.stop.set()
                    return
                samples = np.frombuffer(data, dtype=dtype)
                audio = samples.astype(np.float32) / 32768.0 if dtype.kind == "i" else samples.astype(np.float32)
                if not np.isfinite(audio).all():
                    await self._error_event(CloseCode.INVALID_PAYLOAD, "bad_frame", "a float32 frame holds NaN or infinite samples")
                    self.stop.set()
                    return
                self.push(audio)
            elif text is not None:
                try:
                    msg = json.loads(text)
                except json.JSONDecodeError:
                    msg = None
                if isinstance(msg, dict) and msg.get("type") == "stop":
                    return  # the stream ends: the worker finishes and sends the rest
                await self._error_event(CloseCode.PROTOCOL_ERROR, "bad_message", f"expected binary audio or {{\"type\": \"stop\"}}, got {text[:80]!r}")
                self.stop.set()
                return

    def _work(self, loaded: _Loaded, loop, created: asyncio.Future) -> None:
        """The stream's thread: create the processor, report, then run the replay loop."""
        try:
            processor = loaded.new_processor()
        except Exception as exc:
            loop.call_soon_threadsafe(created.set_result, f"could not create a processor: {type(exc).__name__}: {exc}")
            return
        loop.call_soon_threadsafe(created.set_result, None)
        self._replay(processor, loaded, loop)

    def _replay(self, processor, loaded: _Loaded, loop) -> None:
        run_stream(processor, self.live, self.stop, lambda event: loop.call_soon_threadsafe(self.events.put_nowait, event),
                   chunk_sec=self.settings.chunk_sec, separator=loaded.meta.get("separator"), backend=loaded.backend)

    async def _send_events(self) -> None:
        close_code = None
        while (event := await self.events.get()) is not None:
            code = event.pop("close", None)
            if self.ws.client_state != WebSocketState.CONNECTED:
                continue
            try:
                await self.ws.send_json(event)
            except Exception:  # the client went away; keep draining so the worker never blocks
                self.stop.set()
                continue
            if code is not None:
                close_code = code
        if close_code is not None and self.ws.client_state == WebSocketState.CONNECTED:
            await self.ws.close(code=close_code)

    async def _error_event(self, code: int, name: str, message: str) -> None:
        """An input fault: tell the client, then close once everything emitted so far is sent."""
        await self.events.put({"type": "error", "code": name, "message": message, "close": code})

    async def _fail(self, code: int, name: str, message: str) -> None:
        await self.ws.send_json({"type": "error", "code": name, "message": message})
        await self.ws.close(code=code)


def _retire(loaded: Optional[_Loaded], state: _State) -> None:
    """Stop a replaced engine's worker processes once its last stream has ended."""
    if loaded is not None and loaded.pool is not None and loaded is not state.loaded and loaded.pool.streams == 0 and not loaded.pool.closed:
        loaded.pool.shutdown()


def first_format(dtype: np.dtype) -> str:
    return next(name for name, d in FORMATS.items() if d == dtype)


def _parse_start(message: dict) -> tuple[Optional[np.dtype], Optional[str]]:
    text = message.get("text")
    if text is None:
        return None, 'the first message must be JSON text {"type": "start", "format": "int16"|"float32", "sample_rate": 16000}, not binary audio'
    try:
        start = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"the first message is not valid JSON ({exc.msg}); send {{\"type\": \"start\", \"format\": \"int16\", \"sample_rate\": 16000}}"
    if not isinstance(start, dict) or start.get("type") != "start":
        return None, f'the first message must have "type": "start", got {text[:80]!r}'
    fmt = start.get("format", "int16")
    if fmt not in FORMATS:
        return None, f"format={fmt!r} is not supported; use 'int16' or 'float32' (little-endian mono PCM)"
    rate = start.get("sample_rate", SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        return None, f"sample_rate={rate!r} is not supported; resample to {SAMPLE_RATE} Hz before sending"
    return FORMATS[fmt], None


def _field_errors(message: str) -> list[dict]:
    """The per-field lines of a ConfigError message, as ``{"field", "message"}`` records."""
    out = []
    for line in message.splitlines()[1:] or message.splitlines():
        head, sep, rest = line.strip().partition(": ")
        if sep:
            out.append({"field": head.split("=")[0], "message": rest})
    return out


def _fields_named(message: str, cfg) -> list[dict]:
    """``{"field", "message"}`` for each config field the message names as ``field=...``."""
    named = [f for f in type(cfg).model_fields if f"{f}=" in message]
    return [{"field": f, "message": message} for f in named] or [{"field": None, "message": message}]


def _capture_js() -> str:
    """The browser capture code shared with the notebook's live panel."""
    from asr_lab.widgets import capture_js

    return capture_js()
