"""A Deepgram-compatible live transcription WebSocket (``WS /v1/listen``).

Facts from Deepgram's API reference and its Python SDK (``deepgram-sdk`` 7, types
``ListenV1Results``, ``ListenV1UtteranceEnd``, ``ListenV1Metadata``, ``ListenV1Error``):

* options are query parameters: ``encoding=linear16`` (raw little-endian int16; this server
  takes no containers), ``sample_rate`` (16000 here: audio is not resampled mid-stream),
  ``channels`` (interleaved; mixed down to mono), ``interim_results``, ``utterance_end_ms``;
  others (``model``, ``language``, ``punctuate``, ``smart_format``, ...) are accepted and
  have no effect — the loaded engine decides;
* the client sends binary audio and the text messages ``{"type": "KeepAlive"}`` and
  ``{"type": "CloseStream"}`` (flush and close); ``Finalize`` is refused (a streaming
  engine here cannot flush and go on);
* the server sends ``Results`` (``start``, ``duration``, ``is_final``, ``speech_final``,
  ``channel.alternatives[0].transcript`` / ``words``), ``UtteranceEnd`` (``last_word_end``),
  ``Metadata`` at the end, ``Error`` (``variant``, ``description``) before closing.

Mapping: a committed segment is a ``Results`` with ``is_final: true``; the engine's
unconfirmed text (``partial()``) is one with ``is_final: false`` (only with
``interim_results=true``); ``speech_final: true`` marks the last segment (from
``finish()``) — this server has no endpointer of its own. ``UtteranceEnd`` is derived from
committed word times: it is sent when the next committed words start at least
``utterance_end_ms`` after the last word's end, or when the engine shows no pending text
that long after it, and once at the end of the stream. Word times are the engine's; a
segment without them has its span divided evenly between its words (as
:func:`asr_lab.export.to_ctm` does). ``confidence`` is 1.0: the engines report none.
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Mapping, Optional, Union

from asr_lab.core.protocols import SAMPLE_RATE
from asr_lab.web.protocols import IGNORE, PROTOCOL_ERROR, STOP, UNSUPPORTED_DATA, Out, Problem, StreamProtocol

__all__ = ["DeepgramProtocol", "segment_words"]

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def segment_words(event: dict) -> list[tuple[float, float, str]]:
    """The words of a segment event: the engine's times, else its span divided evenly."""
    if event.get("words"):
        return [(float(s), float(e), str(w).strip()) for s, e, w in event["words"] if str(w).strip()]
    tokens = event.get("text", "").split()
    if not tokens:
        return []
    start, end = float(event["start"]), float(event["end"])
    step = max(end - start, 0.0) / len(tokens)
    return [(start + k * step, start + (k + 1) * step, w) for k, w in enumerate(tokens)]


class DeepgramProtocol(StreamProtocol):
    name = "deepgram"

    def __init__(self, query: Mapping[str, str]) -> None:
        self.query = dict(query)
        self.interim = False
        self.utterance_end_sec: Optional[float] = None
        self.request_id = str(uuid.uuid4())
        self.last_word_end: Optional[float] = None
        self.utterance_open = False
        self.problem = self._parse(self.query)

    def _parse(self, q: dict) -> Optional[Problem]:
        encoding = q.get("encoding")
        if encoding != "linear16":
            return (UNSUPPORTED_DATA, "bad_encoding",
                    f"encoding={encoding!r} is not supported; send raw PCM with encoding=linear16&sample_rate={SAMPLE_RATE}")
        rate = q.get("sample_rate")
        if rate != str(SAMPLE_RATE):
            return (UNSUPPORTED_DATA, "bad_sample_rate",
                    f"sample_rate={rate!r} is not supported; resample to {SAMPLE_RATE} Hz and pass sample_rate={SAMPLE_RATE}")
        channels = q.get("channels", "1")
        if not channels.isdigit() or not 1 <= int(channels) <= 8:
            return UNSUPPORTED_DATA, "bad_channels", f"channels={channels!r} must be a whole number from 1 to 8"
        self.channels = int(channels)
        interim = q.get("interim_results", "false").lower()
        if interim not in TRUE + FALSE:
            return PROTOCOL_ERROR, "bad_option", f"interim_results={interim!r} must be true or false"
        self.interim = interim in TRUE
        gap = q.get("utterance_end_ms")
        if gap is not None:
            if not gap.isdigit() or not 0 < int(gap) <= 60000:
                return PROTOCOL_ERROR, "bad_option", f"utterance_end_ms={gap!r} must be a whole number of milliseconds, e.g. 1000"
            self.utterance_end_sec = int(gap) / 1000
        return None

    async def open(self, conn) -> Optional[Problem]:
        return self.problem

    def control(self, text: str) -> Union[str, Problem]:
        try:
            kind = json.loads(text).get("type")
        except (json.JSONDecodeError, AttributeError):
            kind = None
        if kind == "KeepAlive":
            return IGNORE
        if kind == "CloseStream":
            return STOP
        if kind == "Finalize":
            return (PROTOCOL_ERROR, "finalize_not_supported",
                    "Finalize is not supported: this server's engines cannot flush and go on; send CloseStream to flush and close")
        return PROTOCOL_ERROR, "bad_message", f"expected binary audio, KeepAlive or CloseStream, got {text[:80]!r}"

    def _results(self, start: float, end: float, words: list, transcript: str, is_final: bool, speech_final: bool) -> dict:
        return {
            "type": "Results", "channel_index": [0, 1], "duration": round(max(end - start, 0.0), 3), "start": round(start, 3),
            "is_final": is_final, "speech_final": speech_final, "from_finalize": False,
            "channel": {"alternatives": [{"transcript": transcript, "confidence": 1.0, "words": [
                {"word": w, "start": round(s, 3), "end": round(e, 3), "confidence": 1.0, "punctuated_word": w} for s, e, w in words]}]},
            "metadata": {"request_id": self.request_id, "model_info": {"name": "asr_lab", "version": "", "arch": ""},
                         "model_uuid": ""},
        }

    def _utterance_end(self) -> list[Out]:
        if self.utterance_end_sec is None or not self.utterance_open or self.last_word_end is None:
            return []
        self.utterance_open = False
        return [{"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(self.last_word_end, 3)}]

    def render(self, event: dict) -> list[Out]:
        kind = event.get("type")
        if kind == "segment":
            words = segment_words(event)
            out: list[Out] = []
            if words and self.last_word_end is not None and self.utterance_end_sec is not None \
                    and words[0][0] - self.last_word_end >= self.utterance_end_sec:
                out += self._utterance_end()
            if words:
                self.last_word_end, self.utterance_open = words[-1][1], True
            final = bool(event.get("final"))
            out.append(self._results(event["start"], event["end"], words, " ".join(w for _, _, w in words), True, final))
            return out
        if kind == "partial":
            text = event.get("text", "").strip()
            out = []
            if not text and self.last_word_end is not None and self.utterance_end_sec is not None \
                    and event.get("at", 0.0) - self.last_word_end >= self.utterance_end_sec:
                out += self._utterance_end()
            if self.interim and text:
                start = event.get("start") if event.get("start") is not None else (self.last_word_end or 0.0)
                end = event.get("end") if event.get("end") is not None else start
                out.append(self._results(start, end, [], text, False, False))
            return out
        if kind == "done":
            created = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
            return [*self._utterance_end(), {
                "type": "Metadata", "transaction_key": "deprecated", "request_id": self.request_id, "sha256": "",
                "created": created, "duration": event.get("audio_sec", 0.0), "channels": self.channels,
                "models": [], "model_info": {}}]
        if kind == "error":
            return [{"type": "Error", "variant": event.get("code", "error"), "description": event.get("message", ""),
                     "message": event.get("message", "")}]
        return []
