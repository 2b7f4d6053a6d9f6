"""The wire protocols the server speaks, one module each, all driven by the one stream handler.

A protocol only translates: it decodes a client's frames into float32 16 kHz audio and
control actions, and renders the handler's events (``segment``, ``partial``, ``done``,
``error``) as the messages its clients expect. Access rules, limits, the engine and the
replay loop belong to the handler (:class:`asr_lab.web.server`), the same for every
protocol.

* :mod:`.asr_lab` — asr_lab's own (JSON ``start``, PCM frames, ``stop``);
* :mod:`.whisperlivekit` — WhisperLiveKit's ``/asr`` (``config`` first, s16le PCM, ``lines``);
* :mod:`.deepgram` — Deepgram's live ``/v1/listen`` (``Results``, ``UtteranceEnd``, ``Metadata``);
* :mod:`.whisper_streaming` — whisper_streaming's raw TCP (PCM in, ``beg_ms end_ms text`` lines);
* :mod:`.openai` — OpenAI's ``POST /v1/audio/transcriptions`` (a whole file, not a stream).
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

__all__ = ["Problem", "StreamProtocol", "STOP", "IGNORE", "decode_pcm"]

Out = Union[dict, str]
"""A message to send: a dict goes as JSON text, a str as it is."""

Problem = tuple  # (close code, error name, message)
STOP, IGNORE = "stop", "ignore"

UNSUPPORTED_DATA, INVALID_PAYLOAD, PROTOCOL_ERROR = 1003, 1007, 1002


class StreamProtocol:
    """What one streaming protocol decides; the handler calls these in this order:
    ``open`` (handshake, before any audio), ``ready`` (the engine is up), then per client
    message ``audio`` or ``control``, and ``render`` for each engine event; ``error`` for a
    fault found before the stream started."""

    name = "?"
    dtype = np.dtype("<i2")
    channels = 1

    async def open(self, conn) -> Optional[Problem]:
        """Handshake before the engine starts (``conn.receive(timeout)`` / ``conn.send(out)``)."""
        return None

    def ready(self, backend: str, separator: str) -> list[Out]:
        return []

    def audio(self, data: bytes) -> tuple[Optional[np.ndarray], Optional[Problem]]:
        """One binary frame: ``(samples, None)``, ``(None, None)`` for end of audio, or ``(None, problem)``."""
        return decode_pcm(data, self.dtype, self.channels)

    def control(self, text: str) -> Union[str, Problem]:
        """One text frame: :data:`STOP`, :data:`IGNORE` or a problem."""
        return (PROTOCOL_ERROR, "bad_message", f"this protocol expects binary audio, got text {text[:80]!r}")

    def render(self, event: dict) -> list[Out]:
        raise NotImplementedError

    def error(self, code: str, message: str) -> list[Out]:
        return self.render({"type": "error", "code": code, "message": message})


def decode_pcm(data: bytes, dtype: np.dtype, channels: int = 1) -> tuple[Optional[np.ndarray], Optional[Problem]]:
    """Little-endian PCM (int16 or float32, ``channels`` interleaved) as float32 mono in [-1, 1]."""
    frame = dtype.itemsize * channels
    if len(data) % frame:
        what = "int16" if dtype.kind == "i" else "float32"
        return None, (INVALID_PAYLOAD, "bad_frame",
                      f"a frame of {len(data)} bytes is not a whole number of {what} samples "
                      f"({dtype.itemsize} bytes each{f', {channels} channels interleaved' if channels > 1 else ''})")
    samples = np.frombuffer(data, dtype=dtype)
    audio = samples.astype(np.float32) / 32768.0 if dtype.kind == "i" else samples.astype(np.float32)
    if channels > 1:
        audio = audio.reshape(-1, channels).mean(axis=1)
    if not np.isfinite(audio).all():
        return None, (INVALID_PAYLOAD, "bad_frame", "a float32 frame holds NaN or infinite samples")
    return audio, None
