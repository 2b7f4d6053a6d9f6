"""OpenAI's transcription REST API: ``POST /v1/audio/transcriptions`` and ``GET /v1/models``.

Facts from OpenAI's API reference and its Python client (``openai`` 3.x,
``client.audio.transcriptions.create``): a multipart form with ``file``, ``model``, and
optional ``language``, ``prompt``, ``response_format`` (``json`` → ``{"text"}``, ``text``,
``srt``, ``vtt``, ``verbose_json`` → ``task``, ``language``, ``duration``, ``text``,
``segments`` and, with ``timestamp_granularities[]=word``, ``words`` ``[{word, start,
end}]``), ``temperature``; errors are ``{"error": {"message", "type", "param", "code"}}``;
the API key arrives as ``Authorization: Bearer KEY`` — which is how this server's token
is sent, so ``OpenAI(base_url=".../v1", api_key=TOKEN)`` works with ``asr-lab serve --token``.

The file is decoded at the one audio edge (:func:`asr_lab.load_audio`: any format it
reads, resampled to 16 kHz mono) and run through the one replay loop on the unaware clock
(as fast as the engine goes, each chunk exactly ``chunk_sec``), with the loaded engine: the
transcript is what it commits, segments are its emissions, words are its word times (or
each segment's span divided evenly when it gives none, as :func:`asr_lab.export.to_ctm`
does). ``model`` must be ``whisper-1`` (what clients send by default), the loaded backend's
name or an id from ``GET /v1/models``: they all mean the loaded engine. ``language``, when
given, must match the loaded engine's. ``prompt`` and ``temperature`` are refused when set
(the streaming policy decides them), rather than silently ignored.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from typing import Any, Optional

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse

__all__ = ["add_openai_routes", "FORMATS", "transcription_body"]

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("word", "segment")


class RequestError(Exception):
    def __init__(self, status: int, message: str, param: Optional[str] = None, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def model_ids(loaded: Any) -> list[str]:
    return ["whisper-1", loaded.backend, f"asr_lab-{loaded.backend}"] if loaded is not None else []


def transcription_body(trace: Any, response_format: str, granularities: list[str], language: str) -> tuple[Any, str]:
    """The answer for a finished trace: ``(body, media type)``."""
    from asr_lab.export import _timed_words, to_srt, to_webvtt

    text = trace.text
    if response_format == "text":
        return text, "text/plain"
    if response_format == "srt":
        return to_srt(trace), "application/x-subrip"
    if response_format == "vtt":
        return to_webvtt(trace), "text/vtt"
    if response_format == "json":
        return {"text": text}, "application/json"
    body: dict = {"task": "transcribe", "language": language, "duration": round(trace.duration, 3), "text": text}
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {"id": k, "seek": 0, "start": round(e.start, 3), "end": round(e.end, 3), "text": e.text, "tokens": [],
             "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0, "no_speech_prob": 0.0}
            for k, e in enumerate(x for x in trace.emissions if x.text.strip())]
    if "word" in granularities:
        body["words"] = [{"word": w, "start": round(a, 3), "end": round(b, 3)} for a, b, w, _ in _timed_words(trace)]
    return body, "application/json"


def add_openai_routes(app, state) -> None:
    """Register the two routes on ``app``; ``state`` is the server's (loaded engine, limits)."""
    def fail(exc: RequestError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.get("/v1/models")
    def models():
        loaded = state.loaded
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "asr_lab"} for m in model_ids(loaded)]}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        try:
            form = await request.form(max_part_size=state.settings.max_upload_bytes)
        except Exception as exc:  # a malformed multipart body
            return fail(RequestError(400, f"the body is not a readable multipart form ({type(exc).__name__}: {exc}); "
                                          f"send multipart/form-data with a 'file' part", None, "bad_form"))
        try:
            options = _options(form, state.loaded)
            upload = form.get("file")
            data = await upload.read()
        except RequestError as exc:
            return fail(exc)
        with state.lock:
            full = state.connections >= state.settings.max_connections
            if not full:
                state.connections += 1
        if full:
            return fail(RequestError(429, f"the server already serves {state.settings.max_connections} streams; try again later",
                                     None, "too_many_streams"))
        try:
            trace = await asyncio.to_thread(_transcribe, state, options["loaded"], data, upload.filename or "upload")
        except RequestError as exc:
            return fail(exc)
        finally:
            with state.lock:
                state.connections -= 1
        body, media = transcription_body(trace, options["response_format"], options["granularities"], options["language"])
        if isinstance(body, dict):
            return JSONResponse(body)
        return PlainTextResponse(body, media_type=media)


def _options(form, loaded) -> dict:
    if loaded is None:
        raise RequestError(400, "no model is loaded: POST /load_model first (or start asr-lab serve with --backend)", None, "no_model")
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise RequestError(400, "the form has no 'file' part holding the audio; send it as multipart file 'file'", "file", "missing_file")
    model = form.get("model")
    if not model:
        raise RequestError(400, f"the form has no 'model'; send one of {model_ids(loaded)}", "model", "missing_model")
    if model not in model_ids(loaded):
        raise RequestError(404, f"model={model!r} is not served here; use one of {model_ids(loaded)} (all mean the loaded "
                                f"{loaded.backend!r} engine; POST /load_model to change it)", "model", "model_not_found")
    fmt = form.get("response_format") or "json"
    if fmt not in FORMATS:
        raise RequestError(400, f"response_format={fmt!r} is not supported; use one of {list(FORMATS)}", "response_format", "bad_format")
    granularities = form.getlist("timestamp_granularities[]") or form.getlist("timestamp_granularities")
    bad = [g for g in granularities if g not in GRANULARITIES]
    if bad:
        raise RequestError(400, f"timestamp_granularities={bad!r} is not supported; use 'word' and/or 'segment'",
                           "timestamp_granularities", "bad_granularity")
    if granularities and fmt != "verbose_json":
        raise RequestError(400, f"timestamp_granularities need response_format='verbose_json', not {fmt!r}",
                           "timestamp_granularities", "bad_granularity")
    lan = getattr(loaded.config, "lan", None) or "auto"
    language = form.get("language")
    if language and lan not in ("auto", None) and language != lan:
        raise RequestError(400, f"language={language!r}, but the loaded engine transcribes {lan!r}; "
                                f"load one for {language!r} with POST /load_model", "language", "language_mismatch")
    for name in ("prompt", "temperature"):
        if form.get(name) not in (None, "", "0", "0.0"):
            raise RequestError(400, f"{name}={form.get(name)!r} is not supported: the streaming policy decides it; leave it out",
                               name, f"unsupported_{name}")
    return {"loaded": loaded, "response_format": fmt, "granularities": granularities,
            "language": language or (lan if lan != "auto" else "")}


def _transcribe(state, loaded, data: bytes, filename: str):
    """Decode the upload at the audio edge, replay it through the loaded engine (unaware clock)."""
    from asr_lab.core.audio import AudioError, load_audio
    from asr_lab.replay import replay

    if not data:
        raise RequestError(400, "the uploaded file is empty; send an audio file (wav, flac, mp3, ogg, ...)", "file", "empty_file")
    suffix = os.path.splitext(os.path.basename(filename))[1][:10]
    with tempfile.TemporaryDirectory(prefix="asr_lab_upload_") as tmp:
        path = os.path.join(tmp, "upload" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        try:
            audio = load_audio(path)
        except (AudioError, FileNotFoundError) as exc:
            raise RequestError(400, f"the uploaded file {filename!r} cannot be decoded as audio: {exc}", "file", "bad_audio") from None
    chunk_sec = state.settings.chunk_sec
    separator = loaded.meta.get("separator")
    t0 = time.perf_counter()
    try:
        if loaded.pool is not None:
            trace = loaded.pool.transcribe(audio)
        else:
            processor = loaded.new_processor()
            trace = replay(processor, audio, clock="unaware", chunk_sec=chunk_sec, warmup_sec=0, separator=separator,
                           meta={"backend": loaded.backend, "route": "openai"})
    except Exception as exc:  # a processor that cannot be made, an engine process that died
        raise RequestError(500, f"the engine could not run: {type(exc).__name__}: {exc}", None, "processor_failed") from None
    if trace.error is not None:
        raise RequestError(500, f"the engine failed on this file: {trace.error}", None, "processor_failed")
    trace.meta["request_sec"] = round(time.perf_counter() - t0, 3)
    return trace
