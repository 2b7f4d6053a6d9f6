"""whisper_streaming's raw TCP protocol (``asr-lab serve --tcp-port N``).

Facts from ufal/whisper_streaming (``whisper_online_server.py``, ``line_packet.py``): the
client connects and sends raw PCM, signed 16-bit little-endian, 16 kHz mono, with no
header; the server writes one line per committed segment, ``"%1.0f %1.0f %s" % (beg_ms,
end_ms, text)`` + ``\\n`` (UTF-8), where ``beg`` is raised to the previous line's ``end`` so
intervals never overlap. The client ends its audio by closing its sending side
(``shutdown(SHUT_WR)``); this server then sends what ``finish()`` commits and closes.

A raw socket carries no Host, Origin or token, so: the port listens on the server's own
address (loopback unless ``--host``), a server with a token refuses to open it (nothing
could check the token), a stream whose first bytes are an HTTP request (a web page posting
to the port) is refused, and the handler's limits (connections, idle time, pending audio)
hold as on every route. Faults are one line ``ERROR <code>: <message>`` before closing.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from asr_lab.web.protocols import PROTOCOL_ERROR, Out, StreamProtocol, decode_pcm

__all__ = ["WhisperStreamingProtocol", "TcpConnection", "format_line", "parse_line"]

HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"OPTIONS ", b"DELETE ", b"PATCH ", b"CONNECT ")
READ_BYTES = 32000  # up to 1 s of audio per read


def format_line(beg_sec: float, end_sec: float, text: str) -> str:
    """One output line, as whisper_online_server writes it (milliseconds, no decimals)."""
    return "%1.0f %1.0f %s" % (beg_sec * 1000, end_sec * 1000, text.replace("\n", " ").strip())


def parse_line(line: str) -> tuple[float, float, str]:
    """``(beg_sec, end_sec, text)`` from one ``beg_ms end_ms text`` line."""
    parts = line.strip().split(" ", 2)
    if len(parts) < 2:
        raise ValueError(f"not a 'beg_ms end_ms text' line: {line[:80]!r}")
    return float(parts[0]) / 1000, float(parts[1]) / 1000, parts[2] if len(parts) > 2 else ""


class WhisperStreamingProtocol(StreamProtocol):
    name = "whisper_streaming"

    def __init__(self) -> None:
        self.last_end: Optional[float] = None
        self.first = True

    def audio(self, data: bytes):
        if not data:
            return None, None  # the client closed its sending side
        if self.first and data.startswith(HTTP_METHODS):
            self.first = False
            return None, (PROTOCOL_ERROR, "http_on_raw_port",
                          "this port speaks whisper_streaming's raw PCM protocol, not HTTP; use the HTTP port for web requests")
        self.first = False
        return decode_pcm(data, self.dtype)

    def render(self, event: dict) -> list[Out]:
        kind = event.get("type")
        if kind == "segment" and event["text"].strip():
            beg = event["start"] if self.last_end is None else max(event["start"], self.last_end)
            self.last_end = event["end"]
            return [format_line(beg, event["end"], event["text"]) + "\n"]
        if kind == "error":
            return [f"ERROR {event.get('code', 'error')}: {event.get('message', '')}".replace("\n", " ") + "\n"]
        return []


class TcpConnection:
    """A TCP stream with the few WebSocket methods the stream handler uses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.open = True
        self.eof = False
        self.query_params: dict = {}

    async def accept(self) -> None:
        return None

    async def receive(self) -> dict:
        if self.eof:
            await asyncio.Event().wait() if self.open else None  # nothing more will come; the handler stops reading at EOF
            return {"type": "websocket.disconnect"}
        try:
            data = await self.reader.read(READ_BYTES)
        except (ConnectionError, OSError):
            self.open = False
            return {"type": "websocket.disconnect"}
        if not data:
            self.eof = True
        return {"type": "websocket.receive", "bytes": data}

    @property
    def connected(self) -> bool:
        return self.open and not self.writer.is_closing()

    async def send_text(self, text: str) -> None:
        self.writer.write(text.encode("utf-8"))
        await self.writer.drain()

    async def send_json(self, data: dict) -> None:  # no JSON on this protocol: the handler renders lines
        await self.send_text(str(data) + "\n")

    async def close(self, code: int = 1000) -> None:
        self.open = False
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
