"""The server's other protocols, in process: WhisperLiveKit's /asr, Deepgram's /v1/listen,
OpenAI's transcriptions, whisper_streaming's lines — their message formats and their faults.

The engine is a stand-in (:class:`ScriptedProcessor`) so each mapping can be checked exactly;
the real clients against a real server and engine are in ``test_protocol_clients.py``."""

import io
import json
import wave

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

import asr_lab  # noqa: E402
from asr_lab.backends import registry  # noqa: E402
from asr_lab.web.protocols.deepgram import DeepgramProtocol, segment_words  # noqa: E402
from asr_lab.web.protocols.whisper_streaming import WhisperStreamingProtocol, format_line, parse_line  # noqa: E402
from asr_lab.web.protocols.whisperlivekit import format_time, parse_time  # noqa: E402
from asr_lab.web.server import ServerSettings, create_app  # noqa: E402

SR = 16000
SCRIPT = [(0.0, 0.5, "one"), (0.5, 1.0, "two"), (2.5, 3.0, "three")]  # a 1.5 s pause before "three"


class ScriptedProcessor:
    """Stand-in engine: commits each scripted segment once the audio has reached its end;
    its partial is the next segment's text once half of it has arrived; finish() commits the
    rest of what the audio covers."""

    def __init__(self):
        self.init()

    def init(self, offset=0.0):
        self.fed, self.next = 0, 0

    def insert_audio_chunk(self, audio):
        self.fed += len(audio)

    def process_iter(self):
        if self.next < len(SCRIPT) and SCRIPT[self.next][1] <= self.fed / SR:
            self.next += 1
            return SCRIPT[self.next - 1]
        return None

    def partial(self):
        if self.next < len(SCRIPT) and self.fed / SR >= (SCRIPT[self.next][0] + SCRIPT[self.next][1]) / 2:
            s, e, t = SCRIPT[self.next]
            return (s, e, t)
        return None

    def finish(self):
        rest = [seg for seg in SCRIPT[self.next:] if seg[1] <= self.fed / SR]
        self.next = len(SCRIPT)
        if not rest:
            return None
        return (rest[0][0], rest[-1][1], " ".join(t for _, _, t in rest))


class ScriptedLoader:
    description = "stand-in scripted engine"

    def load(self, config):
        return ScriptedProcessor(), {"separator": " "}


@pytest.fixture(autouse=True)
def scripted_backend():
    asr_lab.register_loader("scripted", ScriptedLoader())
    yield
    registry.unregister_loader("scripted")


def client(**settings):
    settings.setdefault("allowed_hosts", ("testserver",))
    settings.setdefault("chunk_sec", 0.25)
    c = TestClient(create_app({"backend": "scripted"}, settings=ServerSettings(**settings)))
    return c


def pcm16(seconds, amplitude=0.1):
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()


def wav_bytes(seconds):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(SR)
        w.writeframes(pcm16(seconds))
    return buf.getvalue()


def receive_until(ws, stop):
    out = []
    while True:
        try:
            msg = ws.receive_json()
        except WebSocketDisconnect:
            return out
        out.append(msg)
        if stop(msg):
            return out


# -- WhisperLiveKit's /asr ------------------------------------------------------------------

def test_times_in_whisperlivekit_format_round_trip():
    assert format_time(0) == "0:00:00.00" and format_time(3725.456) == "1:02:05.46"
    for t in (0.0, 1.23, 59.99, 61.0, 3725.46):
        assert parse_time(format_time(t)) == pytest.approx(t, abs=0.005)


def lockstep(ws, steps):
    """Send each step's audio, then wait for the answer it must bring: the engine sees the
    audio in these portions whatever the machine's speed (frames sent at once are batched)."""
    out = []
    for seconds, until in steps:
        ws.send_bytes(pcm16(seconds))
        out += receive_until(ws, until)
    return out


def n_lines(n):
    return lambda m: len(m.get("lines", [])) == n


WLK_STEPS = [(0.5, n_lines(1)), (0.5, n_lines(2)), (1.75, lambda m: m.get("buffer_transcription") == "three"), (0.25, n_lines(3))]


def test_a_silent_client_on_asr_gets_whisperlivekits_config_and_lines():
    c = client(protocol_sniff_sec=0.2)
    with c.websocket_connect("/asr") as ws:
        config = ws.receive_json()  # a WhisperLiveKit client waits for this before sending audio
        assert config == {"type": "config", "useAudioWorklet": True, "mode": "full"}
        msgs = lockstep(ws, WLK_STEPS)
        ws.send_bytes(b"")  # WhisperLiveKit's end of audio
        msgs += receive_until(ws, lambda m: m.get("type") == "ready_to_stop")
    assert msgs[-1] == {"type": "ready_to_stop"}
    last = msgs[-2]
    assert [(line["text"], line["start"], line["end"]) for line in last["lines"]] == [
        ("one", "0:00:00.00", "0:00:00.50"), ("two", "0:00:00.50", "0:00:01.00"), ("three", "0:00:02.50", "0:00:03.00")]
    assert last["buffer_transcription"] == "" and last["status"] == "active_transcription"
    assert any(m.get("buffer_transcription") == "three" for m in msgs)  # the partial showed as the buffer first


def test_binary_audio_first_on_asr_is_whisperlivekit_and_asr_labs_start_still_works():
    c = client(protocol_sniff_sec=5)
    with c.websocket_connect("/asr") as ws:
        ws.send_bytes(pcm16(1.0))  # no start message: WhisperLiveKit's protocol, this frame kept as audio
        assert ws.receive_json()["type"] == "config"
        ws.send_bytes(b"")
        msgs = receive_until(ws, lambda m: m.get("type") == "ready_to_stop")
    assert " ".join(line["text"] for line in msgs[-2]["lines"]) == "one two"  # 1 s of audio
    with c.websocket_connect("/asr") as ws:
        ws.send_text(json.dumps({"type": "start", "format": "int16", "sample_rate": 16000}))
        assert ws.receive_json()["type"] == "ready"  # asr_lab's own protocol, as before
        ws.send_bytes(pcm16(1.0))
        ws.send_text(json.dumps({"type": "stop"}))
        events = receive_until(ws, lambda m: m["type"] in ("done", "error"))
    assert " ".join(e["text"] for e in events if e["type"] == "segment") == "one two"  # 1 s of audio: "three" never came


def test_asr_lab_path_speaks_only_asr_labs_protocol():
    with client().websocket_connect("/asr_lab") as ws:
        ws.send_bytes(pcm16(0.5))
        err = ws.receive_json()
    assert err["type"] == "error" and err["code"] == "bad_start" and "not binary audio" in err["message"]


def test_a_webm_stream_to_whisperlivekits_route_is_refused_with_the_fix():
    c = client(protocol_sniff_sec=0.1)
    with c.websocket_connect("/asr") as ws:
        assert ws.receive_json()["type"] == "config"
        ws.send_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 63)
        msgs = receive_until(ws, lambda m: m.get("status") == "error")
    assert msgs[-1]["status"] == "error" and "webm_not_supported" in msgs[-1]["error"] and "PCM" in msgs[-1]["error"]


# -- Deepgram's /v1/listen --------------------------------------------------------------------

LISTEN = "/v1/listen?encoding=linear16&sample_rate=16000&channels=1&interim_results=true&utterance_end_ms=1000"


def final(n):
    return lambda m: m["type"] == "Results" and m["is_final"] and m["channel"]["alternatives"][0]["transcript"] == n


DG_STEPS = [(0.5, final("one")), (0.5, final("two")), (1.75, lambda m: m["type"] == "Results" and not m["is_final"]),
            (0.25, final("three"))]


def test_deepgram_results_interims_utterance_end_and_metadata():
    with client().websocket_connect(LISTEN) as ws:
        msgs = lockstep(ws, DG_STEPS)
        ws.send_text(json.dumps({"type": "KeepAlive"}))
        ws.send_text(json.dumps({"type": "CloseStream"}))
        msgs += receive_until(ws, lambda m: m["type"] == "Metadata")
    finals = [m for m in msgs if m["type"] == "Results" and m["is_final"]]
    assert [m["channel"]["alternatives"][0]["transcript"] for m in finals] == ["one", "two", "three"]
    assert [(m["start"], m["duration"]) for m in finals] == [(0.0, 0.5), (0.5, 0.5), (2.5, 0.5)]
    words = finals[2]["channel"]["alternatives"][0]["words"]
    assert [(w["word"], w["start"], w["end"]) for w in words] == [("three", 2.5, 3.0)]
    interims = [m for m in msgs if m["type"] == "Results" and not m["is_final"]]
    assert interims and interims[0]["channel"]["alternatives"][0]["transcript"] == "three"
    # the 1.5 s pause after "two" (>= utterance_end_ms) ends an utterance, reported before "three"
    kinds = [m["type"] if m["type"] != "Results" else ("final" if m["is_final"] else "interim") for m in msgs]
    ends = [m for m in msgs if m["type"] == "UtteranceEnd"]
    assert ends[0]["last_word_end"] == 1.0 and kinds.index("UtteranceEnd") < kinds.index("final", 2)
    assert msgs[-1]["type"] == "Metadata" and msgs[-1]["duration"] == pytest.approx(3.0) and msgs[-1]["channels"] == 1


def test_deepgram_two_channels_are_mixed_down_and_speech_final_marks_the_end():
    stereo = np.repeat(np.frombuffer(pcm16(3.0), dtype="<i2"), 2).tobytes()
    with client().websocket_connect(LISTEN.replace("channels=1", "channels=2")) as ws:
        ws.send_bytes(stereo)
        ws.send_text(json.dumps({"type": "CloseStream"}))
        msgs = receive_until(ws, lambda m: m["type"] == "Metadata")
    finals = [m for m in msgs if m["type"] == "Results" and m["is_final"]]
    assert " ".join(m["channel"]["alternatives"][0]["transcript"] for m in finals) == "one two three"  # batched: any split
    assert msgs[-1]["duration"] == pytest.approx(3.0)  # 3 s of audio, not 6: channels were not read as time
    assert finals[-1]["speech_final"] and not any(m["speech_final"] for m in finals[:-1])


@pytest.mark.parametrize("query, words", [
    ("encoding=opus&sample_rate=16000", "encoding='opus' is not supported"),
    ("encoding=linear16&sample_rate=48000", "resample to 16000"),
    ("encoding=linear16&sample_rate=16000&channels=0", "channels='0'"),
    ("encoding=linear16&sample_rate=16000&utterance_end_ms=soon", "utterance_end_ms='soon'"),
])
def test_deepgram_bad_options_get_an_error_naming_them(query, words):
    with client().websocket_connect(f"/v1/listen?{query}") as ws:
        err = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert err["type"] == "Error" and words in err["description"] and closed.value.code in (1002, 1003)


@pytest.mark.parametrize("frame, text, code, words", [
    (b"\x00\x01\x02", None, 1007, "not a whole number of int16 samples"),
    (None, '{"type": "Finalize"}', 1002, "send CloseStream"),
    (None, "hello", 1002, "expected binary audio, KeepAlive or CloseStream"),
])
def test_deepgram_bad_frames_keep_what_was_sent_and_close(frame, text, code, words):
    c = client()
    with c.websocket_connect(LISTEN) as ws:
        msgs = lockstep(ws, DG_STEPS[:1])
        ws.send_bytes(frame) if frame is not None else ws.send_text(text)
        msgs += receive_until(ws, lambda m: m["type"] == "Error")
    assert words in msgs[-1]["description"]
    assert [m["channel"]["alternatives"][0]["transcript"] for m in msgs if m["type"] == "Results" and m["is_final"]][:1] == ["one"]
    assert c.get("/health").json()["connections"] == 0


def test_segment_words_use_engine_times_or_split_the_span_evenly():
    assert segment_words({"start": 1.0, "end": 2.0, "text": "a b"}) == [(1.0, 1.5, "a"), (1.5, 2.0, "b")]
    assert segment_words({"start": 1.0, "end": 2.0, "text": "a b", "words": [[1.0, 1.2, "a"], [1.6, 2.0, " b"]]}) == [
        (1.0, 1.2, "a"), (1.6, 2.0, "b")]
    assert DeepgramProtocol({"encoding": "linear16", "sample_rate": "16000"}).problem is None


# -- whisper_streaming's lines ------------------------------------------------------------------

def test_whisper_streaming_lines_never_overlap_and_parse_back():
    proto = WhisperStreamingProtocol()
    lines = [proto.render({"type": "segment", "start": s, "end": e, "text": t})[0] for s, e, t in
             [(0.0, 1.2345, "hello"), (1.2, 2.0, "world"), (2.5, 3.0, " again ")]]
    assert lines == ["0 1234 hello\n", "1234 2000 world\n", "2500 3000 again\n"]  # beg raised to the previous end
    assert parse_line(lines[1]) == (1.234, 2.0, "world")
    assert format_line(0.0005, 1.0, "a\nb") == "0 1000 a b"
    with pytest.raises(ValueError, match="beg_ms end_ms text"):
        parse_line("garbage")
    assert proto.audio(b"GET / HTTP/1.1\r\n")[1][1] == "http_on_raw_port"


# -- OpenAI's transcriptions ----------------------------------------------------------------

def post_file(c, data=None, **fields):
    fields.setdefault("model", "whisper-1")
    files = {"file": ("speech.wav", data if data is not None else wav_bytes(3.0), "audio/wav")}
    return c.post("/v1/audio/transcriptions", data=fields, files=files)


def test_openai_formats_from_one_run_of_the_engine():
    # the unaware clock feeds exactly chunk_sec per call: every segment comes in its own call
    import srt
    import webvtt

    c = client()
    assert post_file(c).json() == {"text": "one two three"}
    assert post_file(c, response_format="text").text == "one two three"
    cues = list(srt.parse(post_file(c, response_format="srt").text))
    assert [(cue.start.total_seconds(), cue.end.total_seconds(), cue.content) for cue in cues] == [
        (0.0, 0.5, "one"), (0.5, 1.0, "two"), (2.5, 3.0, "three")]
    vtt = webvtt.from_buffer(io.StringIO(post_file(c, response_format="vtt").text))
    assert [cue.text for cue in vtt] == ["one", "two", "three"]
    body = post_file(c, response_format="verbose_json", **{"timestamp_granularities[]": ["word", "segment"]}).json()
    assert body["text"] == "one two three" and body["duration"] == pytest.approx(3.0)
    assert [(w["word"], w["start"], w["end"]) for w in body["words"]] == [("one", 0.0, 0.5), ("two", 0.5, 1.0), ("three", 2.5, 3.0)]
    assert [s["text"] for s in body["segments"]] == ["one", "two", "three"]
    assert c.get("/v1/models").json()["data"][0]["id"] == "whisper-1"


@pytest.mark.parametrize("fields, data, status, words", [
    ({"model": "gpt-4o"}, None, 404, "model='gpt-4o' is not served here"),
    ({"response_format": "xml"}, None, 400, "response_format='xml' is not supported"),
    ({"response_format": "json", "timestamp_granularities[]": "word"}, None, 400, "need response_format='verbose_json'"),
    ({"language": "de"}, None, 400, "the loaded engine transcribes 'en'"),
    ({"prompt": "names: Elinor"}, None, 400, "prompt="),
    ({}, b"this is not audio at all", 400, "cannot be decoded as audio"),
    ({}, b"", 400, "empty"),
])
def test_openai_bad_requests_name_the_bad_value(fields, data, status, words):
    r = post_file(client(), data, **fields)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert words in err["message"] and err["type"] == "invalid_request_error"


def test_openai_route_refuses_json_and_foreign_pages_and_needs_the_token():
    c = client()
    r = c.post("/v1/audio/transcriptions", json={"file": "x"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["message"]
    r = c.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes(0.5))}, data={"model": "whisper-1"},
               headers={"origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["error"] == "origin_not_allowed"
    t = client(token="s3cret")
    assert post_file(t).status_code == 401
    r = t.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes(3.0))}, data={"model": "whisper-1"},
               headers={"authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.json()["text"] == "one two three"


class ExplodingLoader:
    description = "stand-in engine whose processor raises on its first step"

    def load(self, config):
        class Exploding(ScriptedProcessor):
            def process_iter(self):
                raise RuntimeError("engine exploded")

        return Exploding(), {"separator": " "}


def test_openai_engine_failure_is_a_500_in_openais_error_format():
    asr_lab.register_loader("exploding", ExplodingLoader())
    try:
        c = TestClient(create_app({"backend": "exploding"}, settings=ServerSettings(allowed_hosts=("testserver",))))
        with pytest.warns(RuntimeWarning, match="engine exploded"):
            r = post_file(c)
    finally:
        registry.unregister_loader("exploding")
    assert r.status_code == 500 and "engine exploded" in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "processor_failed"


def test_upload_limit_is_its_own_and_json_limit_is_unchanged():
    c = client(max_upload_bytes=20_000)
    r = post_file(c, wav_bytes(3.0))
    assert r.status_code == 413 and "20000" in r.json()["message"]
    assert post_file(client(), wav_bytes(3.0)).status_code == 200  # 96 KB: over the JSON limit, under the upload one
    big = b'{"backend": "scripted", "note": "' + b"x" * (70 * 1024) + b'"}'
    r = c.post("/load_model", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and str(64 * 1024) in r.json()["message"]


@pytest.mark.parametrize("path", ["/asr", "/asr_lab", LISTEN])
def test_foreign_pages_cannot_open_any_stream_route(path):
    c = client()
    with pytest.raises(WebSocketDisconnect) as refused:
        with c.websocket_connect(path, headers={"origin": "https://evil.example"}) as ws:
            ws.receive_json()
    assert refused.value.code == 1008


def test_deepgram_token_scheme_is_accepted_and_a_wrong_token_refused():
    c = client(token="s3cret")
    with c.websocket_connect(LISTEN, headers={"authorization": "Token s3cret"}) as ws:
        ws.send_bytes(pcm16(1.0))
        ws.send_text(json.dumps({"type": "CloseStream"}))
        assert receive_until(ws, lambda m: m["type"] == "Metadata")[-1]["type"] == "Metadata"
    with pytest.raises(WebSocketDisconnect) as refused:
        with c.websocket_connect(LISTEN, headers={"authorization": "Token wrong"}) as ws:
            ws.receive_json()
    assert refused.value.code == 1008


def test_tcp_port_with_a_token_is_refused():
    with pytest.raises(asr_lab.ConfigError if hasattr(asr_lab, "ConfigError") else Exception, match="cannot check a token"):
        create_app(settings=ServerSettings(tcp_port=9, token="x"))
