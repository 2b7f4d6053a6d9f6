"""WhisperLiveKit's ``WS /asr`` protocol, so its web page and clients stream to asr_lab.

Facts from WhisperLiveKit 0.2.26 (``basic_server.py``, ``timed_objects.py``,
``test_client.py``, ``web/live_transcription.js``):

* on connect the server sends ``{"type": "config", "useAudioWorklet": bool, "mode": "full"}``;
  ``useAudioWorklet: true`` (its ``--pcm-input``) makes the page and ``test_client`` send
  raw PCM s16le, 16 kHz mono; otherwise they send a MediaRecorder webm/opus stream for the
  server's ffmpeg. This server always asks for PCM: audio is decoded once, at the edge,
  and a webm stream is refused with a message saying so;
* an empty binary frame means "no more audio";
* the server answers with the whole state each time: ``{"status", "lines": [{"speaker",
  "text", "start", "end"}], "buffer_transcription", ...}`` (times ``H:MM:SS.cc``), where
  ``lines`` is committed text and ``buffer_transcription`` the unconfirmed tail, and
  ``{"type": "ready_to_stop"}`` once everything is processed; errors as
  ``{"status": "error", "error": ...}``.

Each committed segment becomes one line (speaker 1: there is no diarization here).
"""

from __future__ import annotations

from typing import Optional, Union


from asr_lab.web.protocols import IGNORE, PROTOCOL_ERROR, UNSUPPORTED_DATA, Out, Problem, StreamProtocol, decode_pcm

__all__ = ["WhisperLiveKitProtocol", "format_time", "parse_time"]

EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # the first bytes of a webm (Matroska) stream


def format_time(seconds: float) -> str:
    """``H:MM:SS.cc`` as WhisperLiveKit writes times (centiseconds, rounded)."""
    cs = int(round(max(seconds, 0.0) * 100))
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def parse_time(text: Union[str, float, int]) -> float:
    """Seconds from ``H:MM:SS.cc`` (or a number, which newer versions may send)."""
    if isinstance(text, (int, float)):
        return float(text)
    parts = [float(p) for p in str(text).split(":")]
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


class WhisperLiveKitProtocol(StreamProtocol):
    name = "whisperlivekit"

    def __init__(self, mode: str = "full", first_audio: Optional[bytes] = None) -> None:
        self.mode = mode
        self.first_audio = first_audio
        self.lines: list[dict] = []
        self.buffer = ""
        self.disconnected = False

    async def open(self, conn) -> Optional[Problem]:
        if self.mode != "full":
            return (UNSUPPORTED_DATA, "bad_mode",
                    f"mode={self.mode!r} is not supported; this server sends WhisperLiveKit's full state (mode=full)")
        await conn.send({"type": "config", "useAudioWorklet": True, "mode": "full"})
        return None

    def audio(self, data: bytes):
        if not data:
            return None, None  # the client's end-of-audio signal
        if data[:4] == EBML_MAGIC:
            return None, (UNSUPPORTED_DATA, "webm_not_supported",
                          "this server takes raw PCM s16le, 16 kHz mono (its config says useAudioWorklet: true); "
                          "a webm/opus stream came: use WhisperLiveKit's AudioWorklet/--pcm-input capture")
        return decode_pcm(data, self.dtype)

    def control(self, text: str) -> Union[str, Problem]:
        if text.strip() in ("", "{}"):
            return IGNORE
        return PROTOCOL_ERROR, "bad_message", f"WhisperLiveKit's protocol carries binary audio only, got text {text[:80]!r}"

    def _state(self, status: str = "active_transcription", error: str = "") -> dict:
        out = {"status": status, "lines": list(self.lines), "buffer_transcription": self.buffer,
               "buffer_diarization": "", "buffer_translation": "", "remaining_time_transcription": 0.0,
               "remaining_time_transcription_processing": 0.0, "remaining_time_transcription_policy": 0.0,
               "remaining_time_diarization": 0.0}
        if error:
            out["error"] = error
        return out

    def render(self, event: dict) -> list[Out]:
        kind = event.get("type")
        if kind == "segment":
            text = event["text"].strip()
            if text:
                self.lines.append({"speaker": 1, "text": text, "start": format_time(event["start"]), "end": format_time(event["end"])})
            self.buffer = ""
            return [self._state()]
        if kind == "partial":
            self.buffer = event.get("text", "").strip()
            return [self._state()]
        if kind == "done":
            self.buffer = ""
            return [self._state(), {"type": "ready_to_stop"}]
        if kind == "error":
            message = f"{event.get('code', 'error')}: {event.get('message', '')}"
            return [{**self._state("error", message), "type": "error"}]
        return []
