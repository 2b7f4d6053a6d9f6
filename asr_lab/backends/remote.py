"""A running speech server as an engine: replay audio to it and record what it answers.

``{"backend": "remote", "url": "ws://127.0.0.1:8000/asr", "protocol": "asr_lab"}`` makes an
:class:`~asr_lab.ASRProcessor` whose engine is a deployment — asr_lab's own server, a
WhisperLiveKit or WhisperLive server, a Deepgram-compatible endpoint or a whisper_streaming
TCP server — so
:func:`asr_lab.compare` and the CLI score it with the same WER, latency and stability metrics
as an in-process engine, on the same audio.

How it runs
-----------
* ``init()`` connects (one connection per stream) and does the protocol's handshake; a
  reader thread collects the server's answers as they arrive.
* ``insert_audio_chunk()`` sends the audio; ``process_iter()`` returns the text the server
  has *committed* since the last call (as one segment), ``partial()`` its current
  unconfirmed text; ``finish()`` says "no more audio", waits up to ``answer_timeout_sec``
  for the server's last answer and returns the rest.
* What counts as committed is the protocol's own word: asr_lab ``segment`` events;
  WhisperLiveKit ``lines`` (its ``buffer_transcription`` is partial); WhisperLive segments
  with ``completed: true`` (the others are partial); Deepgram ``Results`` with ``is_final``
  (interim ones are partial); every whisper_streaming line.
* The audio must reach the server in real time, as a microphone's would: run it on the
  wall clock (``clock="wall"``, ``--clock wall``). On the virtual or unaware clocks the
  audio would arrive faster than it plays and the server's latencies would mean nothing,
  so the processor refuses, naming the fix. Its cost is elapsed time: the calls wait on
  the network and on the server's engine, which this machine's CPU time cannot measure
  (the loader's metadata says so: ``"compute": "elapsed"``).
* A refused connection, a server error, a closed connection or a server that stays silent
  past ``answer_timeout_sec`` raises :class:`RemoteError`, which ends the run as a failed
  run with that message — never a silent gap in the transcript.

Times from the server are stream seconds from the connection's start (``init(offset)`` is
added). Times past the audio sent so far are clipped to it, and counted (``clipped_times``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from typing import Any, Literal, Optional
from urllib.parse import urlencode, urlsplit

import numpy as np
from pydantic import Field

from asr_lab.core.config import ASRConfig, ConfigError, parse_config
from asr_lab.core.protocols import SAMPLE_RATE

__all__ = ["RemoteConfig", "RemoteError", "RemoteLoader", "RemoteProcessor", "PROTOCOLS"]

PROTOCOLS = ("asr_lab", "whisperlivekit", "whisperlive", "deepgram", "tcp")
REALTIME_SLACK_SEC = 0.5  # audio may run this far (plus one chunk) ahead of real time before the clock is refused


class RemoteError(RuntimeError):
    """The server could not be reached, refused the stream, failed, or did not answer in time."""


class RemoteConfig(ASRConfig):
    """Where the server is and how to talk to it."""

    backend: str = "remote"
    url: str = Field(description="ws://host:port/path for the WebSocket protocols, tcp://host:port for whisper_streaming's")
    protocol: Literal["asr_lab", "whisperlivekit", "whisperlive", "deepgram", "tcp"] = Field(
        default="asr_lab", description="the server's protocol (see asr_lab.web.protocols; whisperlive: Collabora's WhisperLive)")
    token: Optional[str] = Field(default=None, description="sent as Authorization (Bearer; Token for deepgram)")
    min_chunk_size: float = Field(default=0.25, gt=0, le=5, description="seconds of audio per message sent")
    connect_timeout_sec: float = Field(default=10.0, gt=0, le=300)
    answer_timeout_sec: float = Field(default=60.0, gt=0, le=590,
                                      description="longest wait for the server's last answer after the end of audio")
    quiet_sec: float = Field(default=15.0, gt=0, le=120,
                             description="whisperlive: after the audio, end the stream once the server has been silent "
                                         "this long (15 s, as WhisperLive's own client), since it stops at END_OF_AUDIO")


class _Answers:
    """What the reader thread has collected, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.commits: list[tuple[float, float, str]] = []
        self.partial: Optional[tuple[float, float, str]] = None
        self.done = threading.Event()
        self.error: Optional[str] = None

    def commit(self, start: float, end: float, text: str) -> None:
        if text.strip():
            with self.lock:
                self.commits.append((float(start), float(end), text.strip()))
                self.partial = None

    def fail(self, message: str) -> None:
        with self.lock:
            if self.error is None:
                self.error = message
        self.done.set()

    def take(self) -> list[tuple[float, float, str]]:
        with self.lock:
            out, self.commits = self.commits, []
            return out


class _Client:
    """One stream to a server: connect, send audio, end; answers go to ``self.answers``."""

    def __init__(self, cfg: RemoteConfig) -> None:
        self.cfg, self.answers = cfg, _Answers()

    def connect(self) -> None:
        raise NotImplementedError

    def send_audio(self, audio: np.ndarray) -> None:
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _WebSocketClient(_Client):
    def url(self) -> str:
        return self.cfg.url

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.cfg.token}"} if self.cfg.token else {}

    def connect(self) -> None:
        from websockets.sync.client import connect

        self.stack = contextlib.ExitStack()  # websockets wants its connection used as a context manager
        try:
            self.ws = self.stack.enter_context(connect(self.url(), open_timeout=self.cfg.connect_timeout_sec, close_timeout=5,
                                                       additional_headers=self.headers(), max_size=None))
        except Exception as exc:  # refused, DNS, handshake rejected (403: host/origin/token)
            raise RemoteError(f"cannot connect to {self.cfg.url} ({self.cfg.protocol}): {type(exc).__name__}: {exc}") from None
        self.handshake()
        threading.Thread(target=self._read, daemon=True, name="asr_lab-remote-reader").start()

    def handshake(self) -> None:
        pass

    def recv_json(self, timeout: float) -> dict:
        try:
            return json.loads(self.ws.recv(timeout=timeout))
        except TimeoutError:
            raise RemoteError(f"{self.cfg.url} sent nothing within {timeout:g} s of connecting") from None
        except Exception as exc:
            raise RemoteError(f"{self.cfg.url} closed the connection during the handshake: {exc}") from None

    def _read(self) -> None:
        try:
            for message in self.ws:
                if isinstance(message, str):
                    self.on_message(json.loads(message))
                if self.answers.done.is_set():
                    break
        except Exception as exc:  # a closed connection, bad JSON
            if not self.answers.done.is_set():
                self.answers.fail(f"the connection to {self.cfg.url} broke: {type(exc).__name__}: {exc}")
            return
        if not self.answers.done.is_set():
            if self.closed_is_done():
                self.answers.done.set()
                return
            code = getattr(self.ws, "close_code", None)
            self.answers.fail(f"{self.cfg.url} closed the stream (code {code}) before its last answer")

    def closed_is_done(self) -> bool:
        """Whether a normal close, now, is the protocol's end of answers (not a fault)."""
        return False

    def on_message(self, msg: dict) -> None:
        raise NotImplementedError

    def send_audio(self, audio: np.ndarray) -> None:
        try:
            self.ws.send((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
        except Exception as exc:
            self.answers.fail(f"sending audio to {self.cfg.url} failed: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        try:
            self.stack.close()
        except Exception:  # noqa: BLE001 -- closing an already broken connection
            pass


class _AsrLabClient(_WebSocketClient):
    def handshake(self) -> None:
        self.ws.send(json.dumps({"type": "start", "format": "int16", "sample_rate": SAMPLE_RATE}))
        ready = self.recv_json(self.cfg.connect_timeout_sec)
        if ready.get("type") != "ready":
            raise RemoteError(f"{self.cfg.url} refused the stream: {ready.get('message', ready)}")

    def on_message(self, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "segment":
            self.answers.commit(msg["start"], msg["end"], msg["text"])
        elif kind == "partial":
            self.answers.partial = (msg.get("start") or 0.0, msg.get("end") or 0.0, msg.get("text", ""))
        elif kind == "done":
            self.answers.done.set()
        elif kind == "error":
            self.answers.fail(f"{self.cfg.url} reported {msg.get('code')}: {msg.get('message')}")

    def end(self) -> None:
        self.ws.send(json.dumps({"type": "stop"}))


class _WhisperLiveKitClient(_WebSocketClient):
    """Its answers are the whole state each time: new committed words are those beyond the
    words already taken (a rewrite of committed text is counted, not hidden)."""

    rewrites = 0

    def handshake(self) -> None:
        self.words: list[str] = []
        self.last_end = 0.0
        config = self.recv_json(self.cfg.connect_timeout_sec)
        if config.get("type") == "error" or config.get("status") == "error":
            raise RemoteError(f"{self.cfg.url} refused the stream: {config.get('error') or config.get('message')}")
        if config.get("type") == "config" and not config.get("useAudioWorklet", False):
            raise RemoteError(f"{self.cfg.url} expects webm/opus audio (useAudioWorklet: false); start WhisperLiveKit "
                              f"with --pcm-input so it takes raw PCM")

    def on_message(self, msg: dict) -> None:
        from asr_lab.web.protocols.whisperlivekit import parse_time

        if msg.get("type") == "ready_to_stop":
            self.answers.done.set()
            return
        if msg.get("status") == "error" or msg.get("type") == "error":
            self.answers.fail(f"{self.cfg.url} reported: {msg.get('error') or msg.get('message')}")
            return
        lines = [line for line in msg.get("lines", []) if str(line.get("text", "")).strip()]
        words, spans = [], []
        for line in lines:
            tokens = str(line["text"]).split()
            words += tokens
            spans += [(parse_time(line.get("start", 0)), parse_time(line.get("end", 0)))] * len(tokens)
        if words[: len(self.words)] != self.words:
            self.rewrites += 1
            keep = next((k for k, (a, b) in enumerate(zip(words, self.words)) if a != b), min(len(words), len(self.words)))
            self.words = self.words[:keep]
        if len(words) > len(self.words):
            new = slice(len(self.words), len(words))
            # a line grows as words are committed to it: new words start no earlier than the last commit ended
            start = max(spans[new][0][0], self.last_end)
            self.answers.commit(start, max(start, spans[new][-1][1]), " ".join(words[new]))
            self.words, self.last_end = words, spans[new][-1][1]
        buffer = str(msg.get("buffer_transcription", "")).strip()
        last_end = spans[-1][1] if spans else 0.0
        self.answers.partial = (last_end, last_end, buffer) if buffer else None

    def end(self) -> None:
        self.ws.send(b"")


class _DeepgramClient(_WebSocketClient):
    def url(self) -> str:
        query = urlencode({"encoding": "linear16", "sample_rate": SAMPLE_RATE, "channels": 1, "interim_results": "true"})
        return self.cfg.url + ("&" if "?" in self.cfg.url else "?") + query

    def headers(self) -> dict:
        return {"Authorization": f"Token {self.cfg.token}"} if self.cfg.token else {}

    def on_message(self, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "Results":
            alt = (msg.get("channel", {}).get("alternatives") or [{}])[0]
            start = float(msg.get("start", 0.0))
            end = start + float(msg.get("duration", 0.0))
            if alt.get("words"):
                start, end = float(alt["words"][0]["start"]), float(alt["words"][-1]["end"])
            if msg.get("is_final"):
                self.answers.commit(start, end, alt.get("transcript", ""))
            else:
                self.answers.partial = (start, end, alt.get("transcript", "")) if alt.get("transcript") else None
        elif kind == "Metadata":
            self.answers.done.set()
        elif kind == "Error":
            self.answers.fail(f"{self.cfg.url} reported {msg.get('variant')}: {msg.get('description')}")

    def end(self) -> None:
        self.ws.send(json.dumps({"type": "CloseStream"}))


class _WhisperLiveClient(_WebSocketClient):
    """Collabora's WhisperLive (``whisper_live.server``, facts from 0.10.0): the client sends
    its options as JSON (``uid``, ``language``, ``task``, ``model``, ``use_vad``,
    ``audio_format``), waits for ``{"message": "SERVER_READY"}``, sends audio frames and
    ``b"END_OF_AUDIO"``; the server answers ``{"uid", "segments": [{"start", "end", "text",
    "completed"}]}`` carrying its last few segments each time (so completed ones repeat:
    each is recorded once, by its start), and closes the connection when done. A segment
    still not completed when the server closes is what its user saw last: it is recorded
    then, and counted (``uncompleted_at_end``). The server stops transcribing at
    ``END_OF_AUDIO``, so, as WhisperLive's own client does (``wait_before_disconnect``),
    it is sent only once the server has been silent for ``quiet_sec`` (counted from the end
    of the audio at the earliest); that wait is part of the finish delay it is scored with."""

    def handshake(self) -> None:
        import uuid

        self.last_end, self.pending, self.ended, self.uncompleted_at_end = -1.0, None, False, 0
        self.last_answer = time.perf_counter()
        lan = getattr(self.cfg, "lan", None)
        self.ws.send(json.dumps({"uid": str(uuid.uuid4()), "language": None if lan in (None, "auto") else lan,
                                 "task": "transcribe", "model": self.cfg.model or "tiny.en", "use_vad": False,
                                 "audio_format": "int16", "send_last_n_segments": 10}))
        while True:
            msg = self.recv_json(self.cfg.connect_timeout_sec)
            if msg.get("message") == "SERVER_READY":
                return
            if msg.get("status") in ("WAIT", "ERROR", "WARNING"):
                if msg.get("status") == "WARNING":
                    continue
                raise RemoteError(f"{self.cfg.url} refused the stream: {msg.get('status')} {msg.get('message')}")

    def on_message(self, msg: dict) -> None:
        self.last_answer = time.perf_counter()
        if msg.get("message") == "DISCONNECT":
            self._flush()
            self.answers.done.set()
            return
        if msg.get("status") == "ERROR":
            self.answers.fail(f"{self.cfg.url} reported: {msg.get('message')}")
            return
        self.pending = None
        for seg in msg.get("segments", []):
            start, end, text = float(seg["start"]), float(seg["end"]), str(seg.get("text", "")).strip()
            if seg.get("completed"):
                if start >= self.last_end + 1e-6 and text:
                    self.answers.commit(start, end, text)
                    self.last_end = start
            elif start >= self.last_end + 1e-6:
                self.pending = (start, end, text)
        self.answers.partial = self.pending if self.pending and self.pending[2] else None

    def _flush(self) -> None:
        if self.pending and self.pending[2]:
            self.uncompleted_at_end += 1
            self.answers.commit(*self.pending)
            self.pending = None

    def closed_is_done(self) -> bool:
        if self.ended:
            self._flush()
        return self.ended

    def end(self) -> None:
        now = time.perf_counter()
        audio_end, deadline = now, now + self.cfg.answer_timeout_sec
        while time.perf_counter() - max(self.last_answer, audio_end) < self.cfg.quiet_sec \
                and time.perf_counter() < deadline and not self.answers.done.is_set():
            time.sleep(0.05)
        self.ended = True
        self.ws.send(b"END_OF_AUDIO")


class _TcpClient(_Client):
    """whisper_streaming: raw int16 out, ``beg_ms end_ms text`` lines in; EOF ends the answers."""

    def connect(self) -> None:
        parts = urlsplit(self.cfg.url)
        try:
            self.sock = socket.create_connection((parts.hostname, parts.port), timeout=self.cfg.connect_timeout_sec)
        except OSError as exc:
            raise RemoteError(f"cannot connect to {self.cfg.url} (tcp): {exc}") from None
        self.sock.settimeout(None)
        threading.Thread(target=self._read, daemon=True, name="asr_lab-remote-tcp").start()

    def _read(self) -> None:
        from asr_lab.web.protocols.whisper_streaming import parse_line

        buf = b""
        try:
            while chunk := self.sock.recv(65536):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.decode("utf-8", errors="replace").strip("\x00").strip()
                    if text.startswith("ERROR "):
                        self.answers.fail(f"{self.cfg.url} reported {text[6:]}")
                        return
                    if text:
                        self.answers.commit(*parse_line(text))
        except (OSError, ValueError) as exc:
            self.answers.fail(f"the connection to {self.cfg.url} broke: {exc}")
            return
        self.answers.done.set()  # the server closed: everything is said

    def send_audio(self, audio: np.ndarray) -> None:
        try:
            self.sock.sendall((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
        except OSError as exc:
            self.answers.fail(f"sending audio to {self.cfg.url} failed: {exc}")

    def end(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


_CLIENTS = {"asr_lab": _AsrLabClient, "whisperlivekit": _WhisperLiveKitClient, "whisperlive": _WhisperLiveClient,
            "deepgram": _DeepgramClient, "tcp": _TcpClient}


class RemoteProcessor:
    """An :class:`~asr_lab.ASRProcessor` whose engine is a running server (see the module docstring)."""

    def __init__(self, cfg: RemoteConfig) -> None:
        self.cfg = cfg
        self.min_chunk_sec = cfg.min_chunk_size
        self.client: Optional[_Client] = None
        self.clipped_times = 0
        self.offset, self.sent, self.t0 = 0.0, 0, 0.0

    def warmup(self, audio: np.ndarray) -> None:
        """Check that the server is reachable; a stream is opened only by ``init()``."""
        parts = urlsplit(self.cfg.url)
        try:
            socket.create_connection((parts.hostname, parts.port or 80), timeout=self.cfg.connect_timeout_sec).close()
        except OSError as exc:
            raise RemoteError(f"cannot reach {self.cfg.url}: {exc}; is the server running?") from None

    def init(self, offset: float = 0.0) -> None:
        if self.client is not None:
            self.client.close()
        self.offset, self.sent, self.clipped_times = float(offset), 0, 0
        self.client = _CLIENTS[self.cfg.protocol](self.cfg)
        self.client.connect()
        self.t0 = time.perf_counter()

    def insert_audio_chunk(self, audio: np.ndarray) -> None:
        ahead = (self.sent + len(audio)) / SAMPLE_RATE - (time.perf_counter() - self.t0)
        if ahead > REALTIME_SLACK_SEC + max(self.min_chunk_sec, len(audio) / SAMPLE_RATE):
            raise RemoteError(
                f"audio is arriving {ahead:.1f} s ahead of real time: a remote server must hear the stream as it plays, "
                f"so replay it on the wall clock (clock='wall', asr-lab compare --clock wall), not a virtual one")
        self._check()
        self.client.send_audio(np.asarray(audio, dtype=np.float32))
        self.sent += len(audio)

    def _check(self) -> None:
        if self.client is None:
            raise RemoteError("init() was not called: the stream is not connected")
        if self.client.answers.error:
            raise RemoteError(self.client.answers.error)

    def _segment(self, commits: list) -> Optional[tuple[float, float, str]]:
        if not commits:
            return None
        limit = self.sent / SAMPLE_RATE
        start, end = commits[0][0], commits[-1][1]
        if end > limit or start > limit:
            self.clipped_times += 1
            start, end = min(start, limit), min(end, limit)
        return (self.offset + start, self.offset + max(start, end), " ".join(t for _, _, t in commits))

    def process_iter(self) -> Optional[tuple[float, float, str]]:
        self._check()
        return self._segment(self.client.answers.take())

    def partial(self) -> Optional[tuple[float, float, str]]:
        p = self.client.answers.partial if self.client is not None else None
        if not p or not p[2].strip():
            return None
        limit = self.sent / SAMPLE_RATE
        return (self.offset + min(p[0], limit), self.offset + min(max(p[0], p[1]), limit), p[2].strip())

    def finish(self) -> Optional[tuple[float, float, str]]:
        self._check()
        client = self.client
        try:
            client.end()
        except Exception as exc:  # noqa: BLE001 -- the connection is gone: say so
            client.answers.fail(f"ending the stream at {self.cfg.url} failed: {type(exc).__name__}: {exc}")
        if not client.answers.done.wait(self.cfg.answer_timeout_sec):
            client.close()
            raise RemoteError(f"{self.cfg.url} gave no final answer within {self.cfg.answer_timeout_sec:g} s after the "
                              f"end of the audio; raise answer_timeout_sec if the server is slow")
        client.close()
        if client.answers.error:
            raise RemoteError(client.answers.error)
        return self._segment(client.answers.take())


class RemoteLoader:
    """``{"backend": "remote", "url": ..., "protocol": ...}`` → a :class:`RemoteProcessor`."""

    config_class = RemoteConfig
    description = "a running server (asr_lab, WhisperLiveKit, WhisperLive, Deepgram-style, whisper_streaming TCP) streamed to in real time"

    def load(self, config: Any) -> tuple[RemoteProcessor, dict]:
        cfg = parse_config(config, RemoteConfig)
        parts = urlsplit(cfg.url)
        want = ("tcp",) if cfg.protocol == "tcp" else ("ws", "wss")
        if parts.scheme not in want or not parts.hostname or parts.port is None and parts.scheme == "tcp":
            raise ConfigError(f"url={cfg.url!r} does not fit protocol={cfg.protocol!r}; give "
                              + ("tcp://HOST:PORT" if cfg.protocol == "tcp" else "ws://HOST:PORT/PATH (or wss://)"))
        return RemoteProcessor(cfg), {"separator": " ", "remote": cfg.url, "protocol": cfg.protocol, "compute": "elapsed",
                                      "cost": "elapsed time: the calls wait on the network and the server's engine"}
