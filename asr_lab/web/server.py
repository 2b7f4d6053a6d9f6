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
    Loads run one at a time, and a request for the configuration already loaded shares it
    (``"reused": true``): concurrent requests never start more than one load, so at most
    ``engine_processes`` new engine processes start at once (plus those of the replaced
    model while its last streams finish).
``GET /backends``, ``GET /health``
    What can be loaded; whether a model is loaded and how many streams are open.
``WS /asr`` (and ``WS /asr_lab``)
    One audio stream per connection, through its own processor (the loaded model is shared
    when the backend allows, see ``OnlineASRProcessor.spawn``). ``/asr`` speaks two
    protocols and the client's first move decides: asr_lab's client sends a JSON ``start``
    at once; WhisperLiveKit's clients and page wait for the server's ``config`` message, so
    a client silent for ``protocol_sniff_sec`` (or sending binary audio first) is served
    WhisperLiveKit's protocol (:mod:`asr_lab.web.protocols.whisperlivekit`). ``/asr_lab``
    speaks asr_lab's protocol only (no wait). asr_lab's protocol: the client first sends
    ``{"type": "start", "format": "int16" | "float32", "sample_rate": 16000}``, then binary
    frames of little-endian mono PCM, then ``{"type": "stop"}`` (or just closes). The server
    answers ``ready``, then ``segment`` events (``start``, ``end``, ``text``, ``emitted_at``,
    ``lag``) as text is committed, ``partial`` events when the processor has ``partial()``,
    ``done`` with a summary (``dropped_chunks``, ``dropped_sec``), or ``error`` (``code``,
    ``message``) before closing with a WebSocket close code. Load shedding: when the engine
    falls more than ``max_lag_sec`` behind real time (or more than ``max_pending_sec`` of audio
    waits for it), new audio is dropped, and the
    client gets ``overload`` events (``dropped_chunks``, ``dropped_sec``, ``message``) at the
    first drop and per further second dropped; while any stream is shedding (dropped within
    ``overload_hold_sec``), new streams are refused with ``error`` ``overloaded`` and close
    code 1013 (try again later). So a busy server bounds its lag and says so. The socket is an audio source arriving in real time, driven by
    the same replay loop as everything else (:func:`asr_lab.replay` on the wall clock).
``WS /v1/listen``
    Deepgram's live transcription protocol (:mod:`asr_lab.web.protocols.deepgram`).
``POST /v1/audio/transcriptions``, ``GET /v1/models``
    OpenAI's transcription API for whole files (:mod:`asr_lab.web.protocols.openai`).
TCP ``tcp_port`` (``asr-lab serve --tcp-port N``)
    whisper_streaming's raw PCM-in, ``beg_ms end_ms text``-out protocol
    (:mod:`asr_lab.web.protocols.whisper_streaming`).
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
``idle_timeout_sec``. Every streaming route, whatever its protocol, is one
:class:`_Stream` (the same limits, engine and replay loop); a protocol only decodes frames
and renders events (:mod:`asr_lab.web.protocols`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Optional

try:
    from fastapi import FastAPI, Request, WebSocket
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.websockets import WebSocketDisconnect, WebSocketState
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"the asr_lab server needs FastAPI ({exc.name} is missing): pip install 'asr-lab[server]'") from exc

from asr_lab.backends.registry import MissingDependencyError, UnknownBackendError, available_backends, call_loader, get_loader
from asr_lab.core.config import ASRConfig, ConfigError, parse_config
from asr_lab.replay import LiveAudio
from asr_lab.web.access import AccessGuard, AccessPolicy
from asr_lab.web.engines import EnginePool, EngineProcessError, Shedder, retire_engine as _retire, run_stream
from asr_lab.web.protocols import IGNORE, STOP, StreamProtocol
from asr_lab.web.protocols.asr_lab import FORMATS, AsrLabProtocol
from asr_lab.web.protocols.deepgram import DeepgramProtocol
from asr_lab.web.protocols.openai import add_openai_routes
from asr_lab.web.protocols.whisper_streaming import TcpConnection, WhisperStreamingProtocol
from asr_lab.web.protocols.whisperlivekit import WhisperLiveKitProtocol
from asr_lab.web.webrtc import add_webrtc_routes

__all__ = ["create_app", "ServerSettings"]

__all__ += ["FORMATS"]
UPLOAD_PATHS = ("/v1/audio/transcriptions",)


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
    max_pending_sec: float = 30.0  # audio waiting for the engine before new chunks are dropped (a fast sender)
    max_lag_sec: Optional[float] = 10.0  # an engine this far behind real time has new chunks dropped (reported); None: no limit
    overload_hold_sec: float = 5.0  # new streams are refused until this long after an open stream last dropped audio
    start_timeout_sec: float = 10.0  # time allowed for the first (start) message
    idle_timeout_sec: float = 30.0  # a started stream that sends nothing for this long is closed
    chunk_sec: Optional[float] = None  # replay step; default: the engine's min chunk
    allowed_hosts: tuple = ()  # beyond IP literals and loopback names; ("*",) allows any (see asr_lab.web.access)
    allowed_origins: tuple = ()  # beyond the server's own page and loopback origins
    token: Optional[str] = None  # when set, every request must carry it
    max_body_bytes: int = 64 * 1024
    engine_processes: int = 0  # 0: engines in threads of the server process; N: in N worker processes (asr_lab.web.engines)
    protocol_sniff_sec: float = 1.0  # WS /asr: a client silent this long is served WhisperLiveKit's protocol
    tcp_port: Optional[int] = None  # whisper_streaming's raw TCP protocol on this port (asr_lab.web.protocols.whisper_streaming)
    tcp_host: str = "127.0.0.1"
    max_upload_bytes: int = 64 * 1024 * 1024  # POST /v1/audio/transcriptions


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
            return spawn() if callable(spawn) else call_loader(self.loader, self.config, self.backend)[0]


@dataclass
class _State:
    settings: ServerSettings
    loaded: Optional[_Loaded] = None
    connections: int = 0
    streams: set = field(default_factory=set)  # the open _Stream objects (for load shedding)
    lock: threading.Lock = field(default_factory=threading.Lock)
    load_lock: threading.Lock = field(default_factory=threading.Lock)  # one model load at a time


def create_app(config: Any = None, *, settings: Optional[ServerSettings] = None):
    """The FastAPI application; ``config`` (dict / JSON / ASRConfig) is loaded at start if given."""
    state = _State(settings or ServerSettings())
    @contextlib.asynccontextmanager
    async def lifespan(app):
        tcp = None
        if state.settings.tcp_port is not None:  # whisper_streaming's raw TCP protocol, served by the same handler
            async def on_tcp(reader, writer):
                await _Stream(TcpConnection(reader, writer), state, WhisperStreamingProtocol()).run()

            tcp = await asyncio.start_server(on_tcp, state.settings.tcp_host, state.settings.tcp_port)
        try:
            yield
        finally:
            if tcp is not None:
                tcp.close()
                await tcp.wait_closed()

    if state.settings.tcp_port is not None and state.settings.token:
        raise ConfigError("a raw TCP port (tcp_port) cannot check a token: whisper_streaming's protocol has no place for one; "
                          "serve the TCP port without --token, or leave --tcp-port out")
    app = FastAPI(title="asr_lab server", description="Streaming speech recognition with any registered asr_lab backend.",
                  lifespan=lifespan)
    app.state.asr = state
    s = state.settings
    app.add_middleware(AccessGuard, policy=AccessPolicy(tuple(s.allowed_hosts), tuple(s.allowed_origins), s.token, s.max_body_bytes,
                                                        upload_paths=UPLOAD_PATHS, max_upload_bytes=s.max_upload_bytes))

    def load(body: Any) -> tuple[int, dict]:
        try:
            if isinstance(body, bytes):
                body = _utf8(body)
            data = json.loads(body) if isinstance(body, str) else body
            if not isinstance(data, dict):
                raise ConfigError(f'the body must be a JSON object such as {{"backend": "pocketsphinx"}}, not {data!r:.60}')
            backend = parse_config({"backend": data.get("backend", ASRConfig.model_fields["backend"].default)}).backend
            loader = get_loader(backend)
            cfg = parse_config(data, getattr(loader, "config_class", None) or ASRConfig)
        except UnknownBackendError as exc:
            return 404, {"error": "unknown_backend", "message": str(exc), "known": [b.name for b in available_backends()]}
        except MissingDependencyError as exc:
            return 424, {"error": "missing_dependency", "message": str(exc)}
        except json.JSONDecodeError as exc:
            return 422, {"error": "invalid_config", "fields": [],
                         "message": f"the body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                                    f'send a JSON object such as {{"backend": "pocketsphinx"}}'}
        except ConfigError as exc:
            return 422, {"error": "invalid_config", "message": str(exc), "fields": _field_errors(str(exc))}
        # Loads run one at a time (each may start engine processes and load a model: six at
        # once multiplied memory), and a request for the configuration already loaded shares it.
        with state.load_lock:
            current = state.loaded
            if current is not None and current.backend == backend and current.config == cfg:
                return 200, _loaded_answer(current, reused=True)
            return _load_now(backend, loader, cfg)

    def _load_now(backend: str, loader: Any, cfg: ASRConfig) -> tuple[int, dict]:
        t0 = time.perf_counter()
        pool = None
        try:
            if state.settings.engine_processes:
                pool = EnginePool(loader, cfg, state.settings.engine_processes, max_pending_sec=state.settings.max_pending_sec,
                                  max_lag_sec=state.settings.max_lag_sec,
                                  chunk_sec=state.settings.chunk_sec, backend=backend)
                template, meta = None, pool.meta
            else:
                template, meta = call_loader(loader, cfg, backend)
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
        return 200, _loaded_answer(loaded, reused=False)

    if config is not None:
        status, body = load(config.model_dump() if isinstance(config, ASRConfig) else config)
        if status != 200:
            raise ConfigError(f"cannot load the server's initial model: {body['message']}")

    @app.post("/load_model")
    async def load_model(request: Request):
        status, payload = await run_in_threadpool(load, await request.body())
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
    async def asr_socket(ws: WebSocket):  # asr_lab's protocol or WhisperLiveKit's: the first message decides
        await _Stream(ws, state).run()

    @app.websocket("/asr_lab")
    async def asr_lab_socket(ws: WebSocket):  # asr_lab's protocol only: no wait to tell it apart
        await _Stream(ws, state, AsrLabProtocol()).run()

    @app.websocket("/v1/listen")
    async def deepgram_socket(ws: WebSocket):
        await _Stream(ws, state, DeepgramProtocol(ws.query_params)).run()

    add_openai_routes(app, state)
    add_webrtc_routes(app, state)  # POST /webrtc/offer: the same streams over WebRTC (asr_lab.web.webrtc)

    return app


class _Stream:
    """One stream connection, whatever its protocol: the handshake, audio into a LiveAudio, the
    replay in a thread (or a worker process), the engine's events rendered by the protocol.

    ``conn``: a Starlette WebSocket, or anything with its ``accept``/``receive``/``send_json``/
    ``send_text``/``close`` (the raw TCP route's :class:`~asr_lab.web.protocols.whisper_streaming.TcpConnection`).
    ``protocol``: a :class:`~asr_lab.web.protocols.StreamProtocol`, or ``None`` on ``/asr``,
    where the first message decides (see :meth:`_choose`).
    """

    def __init__(self, ws, state: _State, protocol: Optional[StreamProtocol] = None) -> None:
        self.ws, self.state, self.settings = ws, state, state.settings
        self.protocol = protocol
        self.events: asyncio.Queue = asyncio.Queue()
        self.stop = threading.Event()
        self.live = LiveAudio(max_pending_sec=self.settings.max_pending_sec, max_behind_sec=self.settings.max_lag_sec)
        self.live.recording = None  # the server saves no sessions: a long stream must not grow memory
        self.push = Shedder(self.live, lambda event: self.events.put_nowait(event)).push
        self.last_overload: Optional[float] = None  # monotonic time of the last overload event relayed

    # -- what protocols use during their handshake ---------------------------------------------
    async def receive(self, timeout: float) -> Optional[dict]:
        """The next client message, or ``None`` after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self.ws.receive(), timeout=timeout)
        except asyncio.TimeoutError:
            return None

    async def send(self, out) -> None:
        if isinstance(out, dict):
            await self.ws.send_json(out)
        else:
            await self.ws.send_text(out)

    def _connected(self) -> bool:
        connected = getattr(self.ws, "connected", None)
        if connected is not None:
            return connected
        return self.ws.client_state == WebSocketState.CONNECTED

    async def run(self) -> None:
        ws = self.ws
        await ws.accept()
        with self.state.lock:
            full = self.state.connections >= self.settings.max_connections
            shedding = sum(1 for st in self.state.streams if st.shedding())
            if not full and not shedding:
                self.state.connections += 1
                self.state.streams.add(self)
        if full:
            await self._fail(CloseCode.TRY_AGAIN_LATER, "too_many_streams", f"the server already serves {self.settings.max_connections} streams; try again later")
            return
        if shedding:
            await self._fail(CloseCode.TRY_AGAIN_LATER, "overloaded",
                             f"the server is overloaded: {shedding} of its {self.state.connections} streams are dropping audio "
                             f"because the engine cannot keep up in real time; try again when they end")
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
                self.state.streams.discard(self)
            loaded = getattr(self, "loaded", None)
            if loaded is not None and loaded is not self.state.loaded:
                _retire(loaded, self.state)

    async def _choose(self) -> tuple[Optional[StreamProtocol], list]:
        """``/asr`` serves two protocols: asr_lab's client speaks first (JSON ``start``), a
        WhisperLiveKit client waits for the server's ``config``. So: text within
        ``protocol_sniff_sec`` means asr_lab's protocol; binary audio, or silence that long,
        WhisperLiveKit's (the binary frame is kept as its first audio)."""
        first = await self.receive(self.settings.protocol_sniff_sec)
        if first is None:
            return WhisperLiveKitProtocol(mode=self.ws.query_params.get("mode", "full")), []
        if first.get("type") == "websocket.disconnect":
            return None, []
        if first.get("text") is not None:
            return AsrLabProtocol(first), []
        return WhisperLiveKitProtocol(mode=self.ws.query_params.get("mode", "full")), [first]

    async def _serve(self) -> None:
        loaded = self.state.loaded
        if loaded is None:
            await self._fail(CloseCode.POLICY_VIOLATION, "no_model", "no model is loaded: POST /load_model first")
            return
        pending: list = []
        if self.protocol is None:
            self.protocol, pending = await self._choose()
            if self.protocol is None:
                return
        problem = await self.protocol.open(self)
        if getattr(self.protocol, "disconnected", False):
            return
        if problem:
            await self._fail(problem[0], problem[1], problem[2])
            return
        self.loaded = loaded
        if loaded.pool is not None:
            await self._serve_in_pool(loaded, pending)
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
        await self._ready(loaded)
        sender = asyncio.create_task(self._send_events())
        try:
            await self._receive(pending)
        finally:
            self.live.close()
            await asyncio.to_thread(worker.join)
            await self.events.put(None)
            await sender

    async def _ready(self, loaded: _Loaded) -> None:
        for out in self.protocol.ready(loaded.backend, loaded.meta.get("separator", " ")):
            await self.send(out)

    async def _serve_in_pool(self, loaded: _Loaded, pending: list) -> None:
        """The same stream, with the engine in a worker process: audio goes down a pipe, events come back."""
        pool, loop = loaded.pool, asyncio.get_running_loop()
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
        await self._ready(loaded)
        sender = asyncio.create_task(self._send_events())
        try:
            await self._receive(pending)
        finally:
            (pool.stop if self.stop.is_set() else pool.close)(sid)
            await ended
            await self.events.put(None)
            await sender

    async def _receive(self, pending: list) -> None:
        ws, limit = self.ws, self.settings.max_message_bytes
        while True:
            if pending:
                message = pending.pop(0)
            else:
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
                audio, problem = self.protocol.audio(data)
                if problem:
                    await self._error_event(*problem)
                    self.stop.set()
                    return
                if audio is None:
                    return  # the protocol's end of audio: the worker finishes and sends the rest
                self.push(audio)
            elif text is not None:
                action = self.protocol.control(text)
                if action == STOP:
                    return  # the stream ends: the worker finishes and sends the rest
                if action == IGNORE:
                    continue
                await self._error_event(*action)
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

    def shedding(self) -> bool:
        """Whether this stream dropped audio (engine behind real time) within ``overload_hold_sec``."""
        last = self.last_overload
        return last is not None and time.monotonic() - last < self.settings.overload_hold_sec

    async def _send_events(self) -> None:
        close_code = None
        while (event := await self.events.get()) is not None:
            code = event.pop("close", None)
            if event.get("type") == "overload":
                self.last_overload = time.monotonic()
            if not self._connected():
                continue
            try:
                for out in self.protocol.render(event):
                    await self.send(out)
            except Exception:  # the client went away; keep draining so the worker never blocks
                self.stop.set()
                continue
            if code is not None:
                close_code = code
        if close_code is not None and self._connected():
            await self.ws.close(code=close_code)

    async def _error_event(self, code: int, name: str, message: str) -> None:
        """An input fault: tell the client, then close once everything emitted so far is sent."""
        await self.events.put({"type": "error", "code": name, "message": message, "close": code})

    async def _fail(self, code: int, name: str, message: str) -> None:
        protocol = self.protocol or AsrLabProtocol()
        for out in protocol.error(name, message):
            await self.send(out)
        await self.ws.close(code=code)


def _loaded_answer(loaded: _Loaded, reused: bool) -> dict:
    """The 200 answer of ``/load_model``; ``reused``: the configuration was already loaded, and is shared."""
    return {"status": "loaded", "backend": loaded.backend, "separator": loaded.meta.get("separator", " "),
            "load_sec": round(loaded.load_sec, 3), "config": loaded.config.model_dump(), "reused": reused}


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the body is not UTF-8 text: byte 0x{body[exc.start]:02x} at offset {exc.start} cannot be decoded "
            f"({exc.reason}); send the JSON encoded as UTF-8"
        ) from None


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
