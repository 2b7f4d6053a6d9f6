"""Clients that stream audio to a running asr_lab server and record its answers as a Trace.

Two transports carry the same audio to the same handler:

* :func:`stream_websocket` — raw 16 kHz int16 PCM over the ``/asr`` WebSocket;
* :func:`stream_webrtc` — an Opus-encoded WebRTC audio track (``POST /webrtc/offer``), the
  transcript coming back on a data channel.

Both send at real-time pace (``chunk_sec`` of audio every ``chunk_sec`` seconds) and time the
events **at the client**: an emission's ``emitted_at`` is the seconds since the client sent its
first audio, when the event arrived — so network, codec and jitter-buffer delays are in the
latency, which is what "what the transport costs" has to measure. The server's own stream time
for each segment is kept in ``trace.meta["server_emitted_at"]``. The trace has no steps (the
engine's compute is the server's); score it like any other with :func:`asr_lab.score`.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from fractions import Fraction
from typing import Any, Optional

import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE
from asr_lab.replay.trace import Emission, PartialSnapshot, Trace

__all__ = ["stream_websocket", "stream_webrtc", "TransportError"]


class TransportError(RuntimeError):
    """The server refused the stream or did not finish it (the message says which and why)."""


class _Recorder:
    """Server events → a Trace, each timed on the client's clock."""

    def __init__(self, transport: str, duration: float) -> None:
        self.transport, self.duration = transport, duration
        self.t0: Optional[float] = None  # perf_counter() when the first audio was sent
        self.events: list[dict] = []
        self.trace = Trace(meta={"clock": "wall", "transport": transport, "duration": duration, "server_emitted_at": []})
        self.committed: list[str] = []

    def sent_first(self) -> None:
        if self.t0 is None:
            self.t0 = time.perf_counter()

    def now(self) -> float:
        return 0.0 if self.t0 is None else time.perf_counter() - self.t0

    def add(self, event: dict) -> None:
        at = self.now()
        self.events.append(dict(event, client_at=round(at, 4)))
        kind, meta = event.get("type"), self.trace.meta
        if kind == "ready":
            meta.update(backend=event.get("backend"), separator=event.get("separator", " "))
        elif kind == "segment":
            step = len(self.trace.emissions)
            self.trace.emissions.append(Emission(start=float(event["start"]), end=float(event["end"]), text=event["text"],
                                                 emitted_at=at, compute_sec=0.0, audio_fed=min(at, self.duration), step=step,
                                                 final=bool(event.get("final", False))))
            meta["server_emitted_at"].append(event.get("emitted_at"))
            self.committed.append(event["text"])
        elif kind == "partial":
            self.trace.partials.append(PartialSnapshot(at=at, text=event.get("text", ""), committed=meta.get("separator", " ").join(self.committed),
                                                       start=event.get("start"), end=event.get("end"), step=len(self.trace.partials)))
        elif kind == "done":
            meta.update(server_rtf=event.get("rtf"), dropped_chunks=event.get("dropped_chunks"), server_audio_sec=event.get("audio_sec"))

    @property
    def last(self) -> Optional[str]:
        return self.events[-1].get("type") if self.events else None

    def result(self) -> Trace:
        if self.last == "error":
            e = self.events[-1]
            raise TransportError(f"the server ended the {self.transport} stream with {e.get('code')}: {e.get('message')}")
        if self.last != "done":
            raise TransportError(f"the {self.transport} stream ended without a 'done' event (last event: {self.last!r})")
        return self.trace


def _pcm16(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")


def stream_websocket(address: str, audio: np.ndarray, *, chunk_sec: float = 0.02, token: Optional[str] = None,
                     timeout_sec: float = 60.0) -> Trace:
    """Send ``audio`` (float32, 16 kHz mono) to ``ws://{address}/asr`` as int16 PCM in real time."""
    from websockets.sync.client import connect

    rec = _Recorder("websocket", len(audio) / SAMPLE_RATE)
    pcm, step = _pcm16(audio), max(1, int(round(chunk_sec * SAMPLE_RATE)))
    headers = {"Authorization": f"Bearer {token}"} if token else None
    with connect(f"ws://{address}/asr", open_timeout=10, close_timeout=5, additional_headers=headers) as ws:
        ws.send(json.dumps({"type": "start", "format": "int16", "sample_rate": SAMPLE_RATE}))
        rec.add(json.loads(ws.recv(timeout=timeout_sec)))
        if rec.last != "ready":
            return rec.result()
        for k, i in enumerate(range(0, len(pcm), step)):
            ws.send(pcm[i : i + step].tobytes())
            rec.sent_first()
            while True:  # take what has arrived without waiting
                try:
                    rec.add(json.loads(ws.recv(timeout=0)))
                except TimeoutError:
                    break
            time.sleep(max(0.0, rec.t0 + (k + 1) * chunk_sec - time.perf_counter()))
        ws.send(json.dumps({"type": "stop"}))
        deadline = time.perf_counter() + timeout_sec
        while rec.last not in ("done", "error"):
            try:
                rec.add(json.loads(ws.recv(timeout=max(0.1, deadline - time.perf_counter()))))
            except TimeoutError:
                break
            except Exception:  # closed
                break
    return rec.result()


def stream_webrtc(address: str, audio: np.ndarray, *, token: Optional[str] = None, timeout_sec: float = 60.0) -> Trace:
    """Send ``audio`` (float32, 16 kHz mono) to ``http://{address}/webrtc/offer`` as a WebRTC track in real time.

    20 ms frames (Opus's frame) of int16 at 16 kHz; aiortc's Opus encoder takes them to 48 kHz.
    Host candidates only, as the server offers."""
    return asyncio.run(_stream_webrtc(address, audio, token=token, timeout_sec=timeout_sec))


def _file_track(audio: np.ndarray, rec: _Recorder, ended: asyncio.Event):
    """An aiortc audio track that plays ``audio`` once at real-time pace, then silence until closed."""
    import av
    from aiortc import MediaStreamTrack
    frame_samples = SAMPLE_RATE // 50  # 20 ms
    pcm = _pcm16(audio)

    class FileAudioTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.k = 0

        async def recv(self):
            i = self.k * frame_samples
            if rec.t0 is not None:  # frame k leaves when its audio has been "spoken"
                await asyncio.sleep(max(0.0, rec.t0 + self.k * frame_samples / SAMPLE_RATE - time.perf_counter()))
            if i >= len(pcm):
                # after the audio, silence: a receiver's jitter buffer releases the last real
                # packets only when later ones arrive; the server cuts at the announced audio_sec
                ended.set()
                chunk = np.zeros(frame_samples, dtype=pcm.dtype)
            else:
                chunk = pcm[i : i + frame_samples]
            if len(chunk) < frame_samples:
                chunk = np.concatenate([chunk, np.zeros(frame_samples - len(chunk), dtype=chunk.dtype)])
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, i, Fraction(1, SAMPLE_RATE)
            rec.sent_first()
            self.k += 1
            return frame

    return FileAudioTrack()


async def _stream_webrtc(address: str, audio: np.ndarray, *, token: Optional[str], timeout_sec: float) -> Trace:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    rec = _Recorder("webrtc", len(audio) / SAMPLE_RATE)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    finished, ended = asyncio.Event(), asyncio.Event()
    channel = pc.createDataChannel("asr", ordered=True)

    @channel.on("message")
    def on_message(text) -> None:
        rec.add(json.loads(text))
        if rec.last in ("done", "error"):
            finished.set()

    pc.addTrack(_file_track(audio, rec, ended))
    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await asyncio.to_thread(_post_offer, address, {"type": "offer", "sdp": pc.localDescription.sdp}, token)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        try:
            await asyncio.wait_for(_first(ended, finished), timeout=len(audio) / SAMPLE_RATE + timeout_sec)
            if not finished.is_set():
                channel.send(json.dumps({"type": "stop", "audio_sec": round(len(audio) / SAMPLE_RATE, 4)}))
                await asyncio.wait_for(finished.wait(), timeout=timeout_sec)
        except asyncio.TimeoutError:
            pass  # result() says what is missing
    finally:
        await pc.close()
    return rec.result()


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()


def _post_offer(address: str, offer: dict, token: Optional[str]) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://{address}/webrtc/offer", data=json.dumps(offer).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            body: Any = json.load(exc)
        except Exception:
            body = {}
        raise TransportError(f"the server refused the WebRTC offer ({exc.code} {body.get('error', '')}): {body.get('message', exc.reason)}") from None
