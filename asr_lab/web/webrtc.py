"""The WebRTC transport: a browser's (or any WebRTC peer's) microphone track into the same stream handler.

``POST /webrtc/offer``
    Body: the peer's SDP offer as JSON, ``{"type": "offer", "sdp": "v=0..."}``. The offer must
    carry one audio track (the microphone; Opus, 48 kHz) and a data channel (create it before
    the offer). Answer: 200 ``{"type": "answer", "sdp": ...}``; 422 for a body or SDP that is
    not such an offer; 409 when no model is loaded; 503 when the server already serves
    ``max_connections`` streams; 424 when ``aiortc`` is not installed; 500 when the engine
    cannot make a processor. The request passes the same access rules as every route
    (:class:`~asr_lab.web.access.AccessGuard`: Host, Origin, token, JSON body size).

On the data channel the server sends the WebSocket route's events, as JSON text: ``ready``,
``segment``, ``partial``, then ``done`` (or ``error`` with ``code`` and ``message``). The peer
sends ``{"type": "stop"}`` (optionally ``"audio_sec"``: how much audio it sent) when its audio
ends; the server then finishes the stream once that much audio has arrived or none has come
for ``STOP_GRACE_SEC`` (RTP and the data channel are separate paths: the last packets may
arrive after the stop). A peer that leaves (connection failed or closed) ends its stream.

Why it is built this way:

* the audio is decoded by aiortc (Opus → 48 kHz int16 frames) and converted **once**, here at
  the edge, by PyAV's ``AudioResampler`` to the lab's float32 16 kHz mono; engines only see arrays;
* the stream then goes exactly where a WebSocket stream goes: a :class:`~asr_lab.replay.LiveAudio`
  replayed on the wall clock by :func:`~asr_lab.web.engines.run_stream`, in a thread of the
  server or in the :class:`~asr_lab.web.engines.EnginePool`'s worker processes;
* host candidates only (``iceServers=[]``): no STUN or TURN server is contacted, the peers must
  reach each other directly (the same machine or network). aioice gathers the machine's
  non-loopback addresses, so a machine needs one network interface besides ``lo``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, Optional

import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE
from asr_lab.replay import LiveAudio
from asr_lab.web.engines import retire_engine, run_stream

__all__ = ["add_webrtc_routes", "STOP_GRACE_SEC"]

STOP_GRACE_SEC = 0.5  # after the peer's stop, audio still in flight gets this long to arrive
POLL_SEC = 0.05  # how often the audio reader looks at the stop flag between frames
LINGER_SEC = 5.0  # a peer that stays connected after its stream ended is closed after this
INSTALL = "pip install 'asr-lab[server]' (it brings aiortc)"


def add_webrtc_routes(app, state) -> None:
    """Register ``POST /webrtc/offer`` on ``app``; ``state`` is the server's shared state."""
    from fastapi import Body
    from fastapi.responses import JSONResponse

    peers: set = set()

    @app.post("/webrtc/offer")
    async def webrtc_offer(body: Any = Body(...)):
        status, payload = await answer_offer(state, body, peers)
        return JSONResponse(payload, status_code=status)

    async def close_peers() -> None:
        await asyncio.gather(*(peer.shutdown() for peer in list(peers)), return_exceptions=True)

    app.router.on_shutdown.append(close_peers)


async def answer_offer(state, body: Any, peers: set) -> tuple[int, dict]:
    """Check an offer, start its stream's engine, and answer it: ``(status, JSON payload)``."""
    try:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: F401
    except ImportError as exc:
        return 424, {"error": "missing_dependency", "message": f"WebRTC needs aiortc ({exc.name} is missing): {INSTALL}"}
    problem = _offer_problem(body)
    if problem:
        return 422, {"error": "bad_offer", "message": problem}
    loaded = state.loaded
    if loaded is None:
        return 409, {"error": "no_model", "message": "no model is loaded: POST /load_model first"}
    settings = state.settings
    with state.lock:
        full = state.connections >= settings.max_connections
        if not full:
            state.connections += 1
    if full:
        return 503, {"error": "too_many_streams", "message": f"the server already serves {settings.max_connections} streams; try again later"}
    peer = _Peer(state, loaded)
    try:
        problem = await peer.start_engine()
        if problem:
            await peer.shutdown()
            return 500, {"error": "processor_failed", "message": problem}
        try:
            answer = await peer.answer(body["sdp"])
        except ValueError as exc:  # aiortc's parse errors are ValueErrors
            await peer.shutdown()
            return 422, {"error": "bad_offer", "message": f"the SDP offer could not be used: {exc}"}
    except Exception:
        await peer.shutdown()
        raise
    peers.add(peer)
    peer.on_closed = lambda: peers.discard(peer)
    return 200, answer


def _offer_problem(body: Any) -> Optional[str]:
    """What is wrong with an offer body, or None."""
    example = 'send {"type": "offer", "sdp": pc.localDescription.sdp} from an RTCPeerConnection'
    if not isinstance(body, dict):
        return f"the body must be a JSON object; {example}"
    if body.get("type") != "offer":
        return f"type={body.get('type')!r} is not allowed, only 'offer'; {example}"
    sdp = body.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        return f"sdp={sdp if sdp is None else str(sdp)[:40]!r} is not an SDP offer (it starts with 'v=0'); {example}"
    if "\nm=audio " not in sdp.replace("\r\n", "\n"):
        return "the offer has no audio track: add the microphone with pc.addTrack(track) (or addTransceiver('audio')) before createOffer()"
    if "\nm=application " not in sdp.replace("\r\n", "\n"):
        return "the offer has no data channel (transcripts come back on it): call pc.createDataChannel('asr') before createOffer()"
    return None


class _Peer:
    """One WebRTC peer: its connection, its audio track, and the engine stream it feeds."""

    def __init__(self, state, loaded) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.state, self.loaded, self.settings = state, loaded, state.settings
        self.loop = asyncio.get_running_loop()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # host candidates only
        self.channel = None
        self.waiting: list[str] = []  # events made before the data channel opened
        self.live = LiveAudio(max_pending_sec=self.settings.max_pending_sec)
        self.live.recording = None  # the server saves no sessions
        self.stop = threading.Event()  # the peer left: stop the engine, send nothing more
        self.push = self.live.push
        self.ended = asyncio.Event()  # the engine stream ended (done or error posted)
        self.stopping: Optional[float] = None  # audio_sec announced by the peer's stop, or inf
        self.received = 0  # samples at 16 kHz that reached the engine
        self.worker: Optional[threading.Thread] = None
        self.sid: Optional[int] = None
        self.finished = False
        self.closed = False
        self.tasks: list[asyncio.Task] = []
        self.on_closed = lambda: None

        @self.pc.on("datachannel")
        def on_datachannel(channel) -> None:
            self.channel = channel
            channel.on("message", self._message)
            if channel.readyState == "open":
                self._flush()
            else:
                channel.on("open", self._flush)

        @self.pc.on("track")
        def on_track(track) -> None:
            if track.kind == "audio" and not any(t.get_name() == "audio" for t in self.tasks):
                self.tasks.append(asyncio.ensure_future(self._consume(track)))
                self.tasks[-1].set_name("audio")

        @self.pc.on("connectionstatechange")
        async def on_state() -> None:
            if self.pc.connectionState in ("failed", "closed"):
                await self.shutdown()

    # -- the engine side: the same handler as the WebSocket route ---------------------------
    async def start_engine(self) -> Optional[str]:
        """Make the stream's processor (in its thread, or in a worker process); a problem or None."""
        created: asyncio.Future = self.loop.create_future()
        pool = self.loaded.pool
        if pool is not None:
            def arrive(message) -> None:  # on the event loop
                kind, payload = message
                if kind == "opened" and not created.done():
                    created.set_result(payload)
                elif kind == "event":
                    self._event(payload)
                elif kind == "ended":
                    if not created.done():
                        created.set_result("the engine process ended before the stream started")
                    self.ended.set()

            def relay(message) -> None:  # on the pool's reader thread
                try:
                    self.loop.call_soon_threadsafe(arrive, message)
                except RuntimeError:  # the event loop is gone
                    pass

            self.sid = pool.open(relay)
            self.push = lambda audio: pool.audio(self.sid, audio)
            return await created

        def work() -> None:
            try:
                processor = self.loaded.new_processor()
            except Exception as exc:
                self.loop.call_soon_threadsafe(created.set_result, f"could not create a processor: {type(exc).__name__}: {exc}")
                self.loop.call_soon_threadsafe(self.ended.set)
                return
            self.loop.call_soon_threadsafe(created.set_result, None)
            try:
                run_stream(processor, self.live, self.stop, lambda event: self._post(event), chunk_sec=self.settings.chunk_sec,
                           separator=self.loaded.meta.get("separator"), backend=self.loaded.backend)
            finally:
                self._post_end()

        self.worker = threading.Thread(target=work, daemon=True, name="asr-webrtc-stream")
        self.worker.start()
        return await created

    def _post(self, event: dict) -> None:  # from the engine thread
        try:
            self.loop.call_soon_threadsafe(self._event, event)
        except RuntimeError:
            pass

    def _post_end(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.ended.set)
        except RuntimeError:
            pass

    def _finish_audio(self) -> None:
        """No more audio: the engine finishes the stream and posts ``done``."""
        if self.finished:
            return
        self.finished = True
        if self.loaded.pool is not None and self.sid is not None:
            (self.loaded.pool.stop if self.stop.is_set() else self.loaded.pool.close)(self.sid)
        self.live.close()

    # -- the network side ----------------------------------------------------------------------
    async def answer(self, sdp: str) -> dict:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())  # gathers the host candidates
        self.tasks.append(asyncio.ensure_future(self._watch_start()))
        self.tasks.append(asyncio.ensure_future(self._linger()))
        return {"type": self.pc.localDescription.type, "sdp": self.pc.localDescription.sdp}

    async def _watch_start(self) -> None:
        """A peer that never sends audio must not hold a stream slot."""
        await asyncio.sleep(self.settings.start_timeout_sec)
        if self.received == 0 and not self.finished and not self.closed:
            self._event({"type": "error", "code": "no_audio",
                         "message": f"no audio arrived within {self.settings.start_timeout_sec:g} s of the answer; "
                                    "the offer must carry a live microphone track"})
            self.stop.set()
            self._finish_audio()

    async def _linger(self) -> None:
        """After ``done``/``error`` the peer closes; one that does not is closed after LINGER_SEC."""
        await self.ended.wait()
        await asyncio.sleep(LINGER_SEC)
        await self.shutdown()

    async def _consume(self, track) -> None:
        """Decoded frames (48 kHz int16, from aiortc's Opus decoder) → float32 16 kHz mono, once."""
        import av
        from aiortc.mediastreams import MediaStreamError

        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        idle = self.settings.idle_timeout_sec
        last = self.loop.time()
        try:
            while not self.finished:
                try:  # short waits, so that a stop from the data channel is seen at once
                    frame = await asyncio.wait_for(track.recv(), timeout=POLL_SEC)
                except asyncio.TimeoutError:
                    quiet = self.loop.time() - last
                    if self.stopping is not None and quiet >= STOP_GRACE_SEC:
                        break
                    if self.stopping is None and quiet >= idle:
                        self._event({"type": "error", "code": "idle_timeout",
                                     "message": f"no audio received for {idle:g} s; the stream is closed"})
                        self.stop.set()
                        break
                    continue
                except MediaStreamError:  # the track ended
                    break
                last = self.loop.time()
                for out in resampler.resample(frame):
                    self._push(out)
                if self.stopping is not None and self.received >= self._target():
                    break
            for out in resampler.resample(None):  # what the resampler still holds
                self._push(out)
        finally:
            self._finish_audio()

    def _push(self, frame) -> None:
        samples = frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        if self.stopping is not None and self.stopping != float("inf"):  # the peer said how much it sent: not a sample more
            samples = samples[: max(0, self._target() - self.received)]
        self.received += len(samples)
        self.push(samples)

    def _target(self) -> float:
        """Samples the peer announced with its stop (inf when it did not say)."""
        return self.stopping if self.stopping == float("inf") else int(round(self.stopping * SAMPLE_RATE))

    def _message(self, text) -> None:
        try:
            msg = json.loads(text) if isinstance(text, str) else None
        except json.JSONDecodeError:
            msg = None
        if isinstance(msg, dict) and msg.get("type") == "stop":
            audio_sec = msg.get("audio_sec")
            self.stopping = float(audio_sec) if isinstance(audio_sec, (int, float)) and audio_sec >= 0 else float("inf")
            if not any(t.get_name() == "audio" for t in self.tasks):  # no track ever came
                self._finish_audio()
            return
        self._event({"type": "error", "code": "bad_message",
                     "message": f'the data channel carries {{"type": "stop"}} (optionally with "audio_sec"), got {str(text)[:80]!r}'})
        self.stop.set()
        self._finish_audio()

    def _event(self, event: dict) -> None:  # on the event loop
        event = dict(event)
        event.pop("close", None)  # WebSocket close codes mean nothing here
        text = json.dumps(event)
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(text)
        elif not self.closed:
            self.waiting.append(text)

    def _flush(self) -> None:
        loaded = self.loaded
        self.channel.send(json.dumps({"type": "ready", "backend": loaded.backend, "separator": loaded.meta.get("separator", " "),
                                      "sample_rate": SAMPLE_RATE, "format": "opus", "transport": "webrtc"}))
        for text in self.waiting:
            self.channel.send(text)
        self.waiting.clear()

    async def shutdown(self) -> None:
        """The peer left or the server stops: end the engine stream, close the connection, free the slot."""
        if self.closed:
            return
        self.closed = True
        if not self.finished:
            self.stop.set()
        self._finish_audio()
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if self.worker is not None:
            await asyncio.to_thread(self.worker.join)
        await self.pc.close()
        with self.state.lock:
            self.state.connections -= 1
        retire_engine(self.loaded, self.state)
        self.on_closed()
