"""asr_lab's own stream protocol (``WS /asr`` when the client speaks first, and ``WS /asr_lab``).

The client sends ``{"type": "start", "format": "int16" | "float32", "sample_rate": 16000}``,
then binary frames of little-endian mono PCM, then ``{"type": "stop"}`` (or just closes).
The server answers ``ready``, then ``segment`` events (``start``, ``end``, ``text``,
``emitted_at``, ``lag``, ``final``) as text is committed, ``partial`` events when the
processor has ``partial()``, ``done`` with a summary, or ``error`` (``code``, ``message``)
before closing with a WebSocket close code. The events are the handler's own, unchanged.
"""

from __future__ import annotations

import json
from typing import Optional, Union

import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE
from asr_lab.web.protocols import IGNORE, PROTOCOL_ERROR, STOP, UNSUPPORTED_DATA, Out, Problem, StreamProtocol

__all__ = ["AsrLabProtocol", "FORMATS", "parse_start"]

FORMATS = {"int16": np.dtype("<i2"), "float32": np.dtype("<f4")}
POLICY_VIOLATION = 1008


class AsrLabProtocol(StreamProtocol):
    name = "asr_lab"

    def __init__(self, first: Optional[dict] = None) -> None:
        self.first = first  # the start message when the handler already read it (sniffing /asr)
        self.disconnected = False

    async def open(self, conn) -> Optional[Problem]:
        first = self.first
        if first is None:
            first = await conn.receive(conn.settings.start_timeout_sec)
            if first is None:
                return POLICY_VIOLATION, "no_start", f"no start message within {conn.settings.start_timeout_sec:g} s"
        if first.get("type") == "websocket.disconnect":
            self.disconnected = True
            return None
        dtype, problem = parse_start(first)
        if problem:
            code = UNSUPPORTED_DATA if "format" in problem or "sample_rate" in problem else PROTOCOL_ERROR
            return code, "bad_start", problem
        self.dtype = dtype
        return None

    def ready(self, backend: str, separator: str) -> list[Out]:
        fmt = next(name for name, d in FORMATS.items() if d == self.dtype)
        return [{"type": "ready", "backend": backend, "separator": separator, "sample_rate": SAMPLE_RATE, "format": fmt}]

    def control(self, text: str) -> Union[str, Problem]:
        try:
            msg = json.loads(text)
        except json.JSONDecodeError:
            msg = None
        if isinstance(msg, dict) and msg.get("type") == "stop":
            return STOP
        if isinstance(msg, dict) and msg.get("type") == "keepalive":
            return IGNORE
        return PROTOCOL_ERROR, "bad_message", f"expected binary audio or {{\"type\": \"stop\"}}, got {text[:80]!r}"

    def render(self, event: dict) -> list[Out]:
        return [event]


def parse_start(message: dict) -> tuple[Optional[np.dtype], Optional[str]]:
    """The audio format a ``start`` message asks for, or what is wrong with it."""
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
    if not isinstance(fmt, str) or fmt not in FORMATS:  # a list or dict is not hashable: name it, do not crash
        return None, f"format={fmt!r} is not supported; use 'int16' or 'float32' (little-endian mono PCM)"
    rate = start.get("sample_rate", SAMPLE_RATE)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate != SAMPLE_RATE:
        return None, f"sample_rate={rate!r} is not supported; resample to {SAMPLE_RATE} Hz before sending"
    return FORMATS[fmt], None
