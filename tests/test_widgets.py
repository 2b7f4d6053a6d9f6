"""The notebook panels, kernel side (no browser): the live microphone panel and the replay panel.

Audio goes in through the panel's comm handler with exactly the messages the browser
front-end sends; the engine is the real pocketsphinx; flite makes the speech. Stand-ins
(named so) only isolate the queue/drop logic.
"""

import re
import subprocess
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("anywidget")
pytest.importorskip("pocketsphinx")

import asr_lab
from asr_lab.core.audio import load_audio, save_audio
from asr_lab.data.dataset import Dataset, Utterance
from asr_lab.data.recipes import load_dataset
from asr_lab.replay import Trace
from asr_lab.widgets import LiveMicPanel, ReplayPanel, decode_audio_message, encode_audio_message

SR = 16000
SENTENCE = "please call stella and ask her to bring these things with her from the store"
INT16_STEP = (
    2 / 32768
)  # rounding (half a step) + the front-end scaling positives by 32767, not 32768 (one step at full scale)


def words(text):
    return re.findall(r"[a-z']+", text.lower())


def share_of_words_found(reference, hypothesis):
    hyp = set(words(hypothesis))
    ref = words(reference)
    return sum(w in hyp for w in ref) / len(ref)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    """The sentence spoken by flite (voice rms), with 0.3 s of silence before and 1 s after."""
    from asr_lab.data.synth import synthesize

    speech = synthesize(SENTENCE, voice="rms")
    audio = np.concatenate([np.zeros(int(0.3 * SR), np.float32), speech, np.zeros(SR, np.float32)])
    return save_audio(tmp_path_factory.mktemp("speech") / "sentence.wav", audio)


@pytest.fixture(scope="module")
def live_run(speech_wav):
    """One real-time session: the WAV through the comm path into pocketsphinx (shared by several tests)."""
    panel = LiveMicPanel({"backend": "pocketsphinx"}, chunk_sec=0.2)
    trace = panel.inject_file(speech_wav, realtime=True, timeout=60)
    return panel, trace


# ------------------------------------------------------------------------------ wire format


def test_importing_asr_lab_does_not_import_the_widgets():
    code = "import sys, asr_lab; asr_lab.replay; bad = [m for m in ('anywidget', 'ipywidgets', 'asr_lab.widgets') if m in sys.modules]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_audio_message_round_trip_is_exact_to_int16():
    rng = np.random.default_rng(0)
    samples = np.clip(rng.normal(0, 0.3, 3200), -1, 1).astype(np.float32)
    samples[:3] = [-1.0, 1.0, 0.0]
    content, buffers = encode_audio_message(samples, seq=4)
    assert content == {"type": "audio", "seq": 4, "rate": 16000}
    assert isinstance(buffers[0], memoryview) and buffers[0].nbytes == 2 * len(samples)
    back = decode_audio_message(content, buffers)
    assert back.dtype == np.float32 and len(back) == len(samples)
    assert np.max(np.abs(back - samples)) <= INT16_STEP
    assert back[0] == -1.0


def test_audio_message_errors_name_the_problem():
    with pytest.raises(ValueError, match="without a binary buffer"):
        decode_audio_message({"type": "audio", "seq": 0, "rate": 16000}, [])
    with pytest.raises(ValueError, match="even byte count"):
        decode_audio_message({"type": "audio", "seq": 0, "rate": 16000}, [b"\x00\x01\x02"])
    with pytest.raises(ValueError, match="rate=-5"):
        decode_audio_message({"type": "audio", "seq": 0, "rate": -5}, [b"\x00\x00"])


def test_audio_at_another_rate_is_resampled_to_16k():
    t = np.arange(4800) / 48000
    content, buffers = encode_audio_message(0.5 * np.sin(2 * np.pi * 440 * t), seq=0, rate=48000)
    back = decode_audio_message(content, buffers)
    assert len(back) == 1600


# ------------------------------------------------------------------------------ the live panel


def test_live_panel_offers_installed_backends_and_validates_its_arguments():
    panel = LiveMicPanel()
    assert panel.backend == "pocketsphinx" and "pocketsphinx" in panel.backends and not panel.backend_locked
    assert LiveMicPanel("pocketsphinx-la").backend == "pocketsphinx-la"
    assert LiveMicPanel('{"backend": "pocketsphinx"}').backend == "pocketsphinx"
    with pytest.raises(KeyError, match="Known backends"):
        LiveMicPanel({"backend": "no-such-engine"})
    with pytest.raises(ValueError, match="chunk_sec=5"):
        LiveMicPanel(chunk_sec=5)
    with pytest.raises(ValueError, match="max_pending_sec=0"):
        LiveMicPanel(max_pending_sec=0)
    with pytest.raises(TypeError, match="not int"):
        LiveMicPanel(42)
    with pytest.raises(ValueError, match="expected one of 'start', 'audio', 'stop', 'error'"):
        panel.handle_message({"type": "play"}, [])
    with pytest.raises(RuntimeError, match="no session yet"):
        panel.save_session("unused")
    with pytest.raises(RuntimeError, match="no session yet"):
        panel.wait()


def test_live_panel_transcribes_audio_sent_through_the_comm_handler(live_run, speech_wav):
    panel, trace = live_run
    sent = load_audio(speech_wav)
    received = panel.recorded_audio()
    # the kernel got exactly the file's samples, up to int16 quantisation
    assert len(received) == len(sent)
    assert np.max(np.abs(received - sent)) <= INT16_STEP
    # the real engine heard the sentence, and the panel shows it
    assert isinstance(trace, Trace) and trace.ok and trace is panel.trace
    assert trace.meta["clock"] == "wall" and trace.meta["source"] == "microphone"
    assert trace.meta["backend"] == "pocketsphinx" and trace.meta["has_partial"]
    assert share_of_words_found(SENTENCE, panel.committed) >= 0.6, panel.committed
    assert panel.committed == trace.text
    assert trace.partials, "pocketsphinx's partial text should have been shown while speaking"
    assert panel.partial == ""  # all committed at the end
    assert panel.status == "idle" and panel.error == ""
    assert panel.dropped_chunks == 0 and trace.meta["dropped_chunks"] == 0 and trace.meta["missing_chunks"] == 0
    assert panel.received_sec == pytest.approx(len(sent) / SR, abs=0.01)
    # the lag shown is the newest text's latency, a real-time figure of a few seconds at most
    assert panel.lag_sec is not None and 0 <= panel.lag_sec < 5
    assert trace.duration == pytest.approx(len(sent) / SR, abs=0.01)


def test_messages_arrive_through_the_real_widget_comm_dispatch(speech_wav):
    """The front-end's message, as ipywidgets hands it over (method 'custom' + buffers), reaches the queue."""
    panel = LiveMicPanel({"backend": "pocketsphinx"}, chunk_sec=0.25)
    audio = load_audio(speech_wav)[: 2 * SR]

    def deliver(content, buffers=()):
        panel._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": list(buffers)})

    deliver({"type": "start", "rate": SR, "chunk_sec": 0.25})
    for seq, first in enumerate(range(0, len(audio), 4000)):
        deliver(*encode_audio_message(audio[first : first + 4000], seq))
    deliver({"type": "stop", "seq": seq + 1})
    trace = panel.wait(timeout=30)
    assert trace.ok
    assert np.max(np.abs(panel.recorded_audio() - audio)) <= INT16_STEP


def test_a_full_queue_drops_chunks_counts_them_and_shows_them():
    class GatedStandInProcessor:
        """Stand-in engine that blocks in its first process_iter() until released (a stalled engine)."""

        def __init__(self):
            self.gate, self.blocked, self.fed = threading.Event(), threading.Event(), 0

        def init(self, offset=0.0):
            self.offset = offset

        def insert_audio_chunk(self, audio):
            self.fed += len(audio)

        def process_iter(self):
            self.blocked.set()
            assert self.gate.wait(20), "the test never released the stand-in"

        def finish(self):
            return (self.offset, self.offset + self.fed / SR, "done") if self.fed else None

    engine = GatedStandInProcessor()
    panel = LiveMicPanel(engine, chunk_sec=0.1, max_pending_sec=0.5, warmup_sec=0)
    assert panel.backend_locked and panel.backends == ["GatedStandInProcessor"]
    tone = (0.3 * np.sin(2 * np.pi * 300 * np.arange(3 * SR) / SR)).astype(np.float32)
    panel.handle_message({"type": "start", "rate": SR, "chunk_sec": 0.1})
    assert engine.blocked.wait(0) is False
    accepted = [panel.handle_message(*encode_audio_message(tone[:1600], 0))]
    assert engine.blocked.wait(10)  # the engine is stuck on the first chunk
    for seq in range(1, 30):
        accepted.append(panel.handle_message(*encode_audio_message(tone[seq * 1600 : (seq + 1) * 1600], seq)))
    live = panel.live_audio
    assert accepted.count(True) == 1 + 5  # the one being processed + 0.5 s of queue
    assert live.dropped_chunks == accepted.count(False) == 24
    # the panel shows the drops while the engine is still stuck
    for _ in range(50):
        if panel.dropped_chunks == 24:
            break
        threading.Event().wait(0.05)
    assert panel.dropped_chunks == 24 and panel.dropped_sec == pytest.approx(2.4)
    assert panel.backlog_sec == pytest.approx(0.5, abs=0.01)
    engine.gate.set()
    panel.handle_message({"type": "stop", "seq": 30})
    trace = panel.wait(timeout=20)
    assert trace.meta["dropped_chunks"] == 24 and trace.meta["dropped_sec"] == pytest.approx(2.4)
    assert len(panel.recorded_audio()) == 6 * 1600 == engine.fed  # what was saved is what the engine heard
    assert panel.committed == "done" and panel.dropped_chunks == 24


def test_missing_sequence_numbers_are_counted():
    class QuietStandInProcessor:
        """Stand-in engine that never says anything."""

        def init(self, offset=0.0): ...
        def insert_audio_chunk(self, audio): ...
        def process_iter(self):
            return None

        def finish(self):
            return None

    panel = LiveMicPanel(QuietStandInProcessor(), chunk_sec=0.1, warmup_sec=0)
    panel.handle_message({"type": "start", "rate": SR})
    for seq in (0, 1, 4):
        panel.handle_message(*encode_audio_message(np.zeros(1600), seq))
    panel.handle_message({"type": "stop", "seq": 6})
    trace = panel.wait(timeout=20)
    assert trace.meta["missing_chunks"] == 3  # 2, 3 and 5 never came


def test_an_engine_that_cannot_load_is_shown_not_raised_in_the_kernel():
    panel = LiveMicPanel({"backend": "faster-whisper", "model": "/nonexistent/model"})
    panel._preloader.join(30)  # the engine is loaded ahead of Start; its failure is shown at once
    assert panel.status == "idle" and "could not load backend 'faster-whisper'" in panel.error
    panel.handle_message({"type": "start", "rate": SR})
    panel.handle_message(*encode_audio_message(np.zeros(1600), 0))
    panel.handle_message({"type": "stop", "seq": 1})
    with pytest.raises(RuntimeError, match="nonexistent"):
        panel.wait(timeout=30)
    assert panel.status == "error" and "/nonexistent/model" in panel.error


def test_save_session_writes_a_dataset_utterance_that_scores_again(live_run, tmp_path):
    panel, trace = live_run
    saved = panel.save_session(tmp_path / "sessions", name="take-1", text=SENTENCE)
    assert saved.audio.name == "take-1.wav" and saved.trace.name == "take-1.trace.jsonl"
    dataset = load_dataset(tmp_path / "sessions")
    utt = dataset["take-1"]
    assert utt.text == SENTENCE and utt.meta["source"] == "microphone" and utt.meta["hypothesis"] == trace.text
    assert utt.duration == pytest.approx(trace.duration, abs=0.01)
    assert np.max(np.abs(utt.load_audio() - panel.recorded_audio())) <= INT16_STEP
    again = Trace.from_jsonl(saved.trace)
    assert again.text == trace.text and len(again.partials) == len(trace.partials)
    scores = asr_lab.score(again, utt)
    assert scores.wer.rate < 0.5
    # a second session in the same folder adds a line; the same name replaces its line
    panel.save_session(tmp_path / "sessions", name="take-2")
    panel.save_session(tmp_path / "sessions", name="take-1", text=SENTENCE)
    assert load_dataset(tmp_path / "sessions").ids == ["take-2", "take-1"]
    assert load_dataset(tmp_path / "sessions")["take-2"].meta["reference"].startswith("missing")
    with pytest.raises(ValueError, match="file-name-safe"):
        panel.save_session(tmp_path / "sessions", name="../escape")


# ------------------------------------------------------------------------------ the replay panel


def test_replay_panel_shows_systems_side_by_side(speech_wav):
    dataset = Dataset([Utterance("sentence", str(speech_wav), SENTENCE)])
    panel = ReplayPanel(
        dataset,
        {"sphinx": {"backend": "pocketsphinx"}, "broken": {"backend": "faster-whisper", "model": "/nonexistent"}},
    )
    assert panel.audio.value[:4] == b"RIFF" and "reference" in panel.reference.value
    panel.play("sentence", speed=4.0)
    traces = panel.wait(timeout=60)
    assert set(traces) == {"sphinx"} and traces["sphinx"].meta["clock"] == "wall"
    assert traces["sphinx"].meta["speed"] == 4.0
    assert share_of_words_found(SENTENCE, panel.texts["sphinx"]) >= 0.6
    rows = [w.value for w in panel.transcripts.children]
    assert "sphinx" in rows[0] and "done" in rows[0]
    assert "broken" in rows[1] and "nonexistent" in rows[1]
    assert "failed: broken" in panel.status.value
    panel.show_reference.value = False
    assert panel.reference.value == ""
    with pytest.raises(KeyError, match="unknown systems"):
        panel.play(systems=["nope"])
    with pytest.raises(ValueError, match="speed=3"):
        ReplayPanel(dataset, [{"backend": "pocketsphinx"}], speed=3)
