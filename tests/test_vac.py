"""Voice-activity-controlled streaming: Silero VAD over a stream, utterance events, the VAC processor."""

import numpy as np
import pytest

pytest.importorskip("faster_whisper")
pytest.importorskip("onnxruntime")

from asr_lab.core.config import ASRConfig
from asr_lab.policies.config import StreamingPolicyConfig
from asr_lab.core.protocols import SAMPLE_RATE
from asr_lab.policies.local_agreement import OnlineASRProcessor
from asr_lab.policies.vac import (
    WINDOW,
    SileroVAD,
    VACOnlineASRProcessor,
    VoiceActivityDetector,
    streaming_processor,
)
from asr_lab.testing import ClippedOnsetASR, ContextSensitiveASR, TimelineASR, sample_speech, words_from_text

SR = SAMPLE_RATE


class SpanProbability:
    """Stand-in for Silero (isolates the event logic): probability 0.9 inside the given spans, else 0.05.

    It counts the windows it is given since reset(), so it knows where in the stream it is.
    """

    def __init__(self, spans):
        self.spans = spans
        self.reset()

    def reset(self):
        self.windows = 0

    def __call__(self, window):
        t = self.windows * WINDOW / SR
        self.windows += 1
        return 0.9 if any(a <= t < b for a, b in self.spans) else 0.05


def feed(detector, audio, chunk_sec):
    step = max(1, int(chunk_sec * SR))
    events = []
    for i in range(0, len(audio), step):
        events += detector.feed(audio[i : i + step])
    return events


def silence(sec):
    return np.zeros(int(sec * SR), dtype=np.float32)


@pytest.fixture(scope="module")
def speech():
    return sample_speech()


# ----------------------------------------------------------------------------- VoiceActivityDetector


@pytest.mark.parametrize("chunk_sec", [0.01, 0.04, 0.5, 5.0])
def test_events_pad_the_speech_and_wait_500ms_of_silence(chunk_sec):
    detector = VoiceActivityDetector(SpanProbability([(1.0, 2.0)]))
    (start_kind, start), (end_kind, end) = feed(detector, silence(4.0), chunk_sec)
    assert (start_kind, end_kind) == ("start", "end")
    assert 1.0 - 0.1 - 1e-9 <= start / SR <= 1.0 - 0.1 + WINDOW / SR  # speech onset minus 100 ms padding
    assert 2.0 + 0.1 - 1e-9 <= end / SR <= 2.0 + 0.1 + WINDOW / SR  # speech end plus 100 ms padding


def test_end_comes_only_after_min_silence_and_short_pauses_do_not_split():
    detector = VoiceActivityDetector(SpanProbability([(1.0, 2.0), (2.3, 3.0)]))
    assert [k for k, _ in detector.feed(silence(3.4))] == ["start"]  # 0.3 s pause; 0.4 s after the end
    assert [k for k, _ in detector.feed(silence(0.2))] == ["end"]
    assert detector.feed(silence(1.0)) == []


def test_detector_reset_starts_a_new_stream():
    detector = VoiceActivityDetector(SpanProbability([(0.5, 1.0)]))
    first = detector.feed(silence(2.0))
    detector.reset()
    assert detector.feed(silence(2.0)) == first


def test_bad_detector_settings_name_the_value():
    with pytest.raises(ValueError, match="threshold=1.5"):
        VoiceActivityDetector(SpanProbability([]), threshold=1.5)
    with pytest.raises(ValueError, match="min_silence_ms=-1"):
        VoiceActivityDetector(SpanProbability([]), min_silence_ms=-1)


# ----------------------------------------------------------------------------- Silero


def test_streaming_silero_matches_faster_whispers_whole_file_run(speech):
    from faster_whisper.vad import get_vad_model

    audio = np.concatenate([silence(0.5), speech.audio, silence(0.5)])
    audio = audio[: len(audio) - len(audio) % WINDOW]
    whole = np.ravel(get_vad_model()(audio))
    vad = SileroVAD()
    streamed = np.array([vad(audio[i : i + WINDOW]) for i in range(0, len(audio), WINDOW)])
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    assert streamed.max() > 0.9 and streamed[:10].max() < 0.5  # it does hear the speech, and not the silence


def test_silero_finds_each_utterance(speech):
    gap = 1.5
    audio = np.concatenate([silence(1.0), speech.audio, silence(gap), speech.audio, silence(1.0)])
    events = feed(VoiceActivityDetector(), audio, 0.04)
    assert [k for k, _ in events] == ["start", "end", "start", "end"]
    duration = len(speech.audio) / SR
    for (_, start), (_, end), offset in zip(events[::2], events[1::2], (1.0, 1.0 + duration + gap)):
        first_word, last_word = speech.words[0], speech.words[-1]
        assert offset + first_word[0] - 0.6 <= start / SR <= offset + first_word[0] + 0.1
        assert offset + last_word[1] - 0.2 <= end / SR <= offset + duration + 0.2


def test_silero_rejects_windows_of_another_size():
    with pytest.raises(ValueError, match="512 samples"):
        SileroVAD()(np.zeros(100, dtype=np.float32))


# ----------------------------------------------------------------------------- VACOnlineASRProcessor

UTTERANCES = [words_from_text("one two three four", start=1.0), words_from_text("five six seven", start=5.0)]
TIMELINE = [w for u in UTTERANCES for w in u]
SPANS = [(u[0][0] - 0.05, u[-1][1] + 0.05) for u in UTTERANCES]


def vac_over_timeline(**kwargs):
    asr = TimelineASR(TIMELINE)
    vad = VoiceActivityDetector(SpanProbability(SPANS))
    return VACOnlineASRProcessor(OnlineASRProcessor(asr, min_chunk_sec=1.0), vad=vad, **kwargs), asr


def stream(proc, audio, chunk_sec, offset=0.0):
    step = max(1, round(chunk_sec * SR))
    proc.init(offset)
    outputs, partials = [], []
    for i in range(0, len(audio), step):
        proc.insert_audio_chunk(audio[i : i + step])
        out = proc.process_iter()
        partials.append(proc.partial())
        if out:
            outputs.append((i + step, out))
    out = proc.finish()
    if out:
        outputs.append((len(audio), out))
    return outputs, partials


def test_vac_commits_each_utterance_at_its_pause_in_absolute_time():
    proc, asr = vac_over_timeline()
    audio = TimelineASR.stream_audio(8.0)
    outputs, _ = stream(proc, audio, 0.04)
    # as in the reference, words after the utterance's last recognition are not heard: "seven"
    assert " ".join(o[2] for _, o in outputs) == "one two three four five six"
    first_end = UTTERANCES[0][-1][1]
    committed_by = max(fed for fed, o in outputs if "four" in o[2]) / SR
    assert committed_by <= first_end + 0.05 + 0.1 + 0.5 + 0.1  # span end + pad + min silence + a window or two
    for (_, (start, end, text)) in outputs:
        words = [w for w in TIMELINE if w[2] in text.split()]
        assert start == pytest.approx(words[0][0], abs=1e-6) and end == pytest.approx(words[-1][1], abs=1e-6)
    # the recogniser only ever heard the utterances, each from its padded start
    starts = sorted({c.start_sample / SR for c in asr.calls})
    assert all(any(a - 0.2 <= s <= a for a, _ in SPANS) for s in starts)


@pytest.mark.parametrize("chunk_sec", [0.01, 0.5, 1.0, 8.0])
def test_vac_with_transcribe_tail_gives_the_same_text_whatever_the_chunk_size(chunk_sec):
    reference, _ = stream(vac_over_timeline(transcribe_tail=True)[0], TimelineASR.stream_audio(8.0), 0.04)
    outputs, _ = stream(vac_over_timeline(transcribe_tail=True)[0], TimelineASR.stream_audio(8.0), chunk_sec)
    assert " ".join(o[2] for _, o in outputs) == " ".join(o[2] for _, o in reference) == "one two three four five six seven"
    assert outputs[0][1][0] == reference[0][1][0] and outputs[-1][1][1] == reference[-1][1][1]


def test_a_backlog_is_recognised_once_as_in_the_reference():
    """An engine that fell behind gets all queued audio at once and is called once, not once per second of it."""
    timeline = words_from_text("one two three four five six seven eight nine ten eleven twelve", start=0.5)
    proc = VACOnlineASRProcessor(
        OnlineASRProcessor(TimelineASR(timeline), min_chunk_sec=1.0),
        vad=VoiceActivityDetector(SpanProbability([(0.45, 5.4)])),
    )
    audio = TimelineASR.stream_audio(4.0)
    proc.init()
    proc.insert_audio_chunk(audio[: int(1.6 * SR)])
    proc.process_iter()
    assert len(proc.asr.calls) == 1
    proc.insert_audio_chunk(audio[int(1.6 * SR) :])  # 2.4 s queued while the engine was busy
    proc.process_iter()
    assert len(proc.asr.calls) == 2 and proc.asr.calls[-1].duration == pytest.approx(4.0 - 0.45 + 0.1, abs=0.05)


def test_vac_offset_re_init_and_partial():
    proc, _ = vac_over_timeline()
    audio = TimelineASR.stream_audio(8.0)
    first, partials = stream(proc, audio, 0.25)
    assert any(p is not None for p in partials)
    assert partials[int(0.5 / 0.25)] is None and partials[-1] is None  # nothing open in silence
    shifted, _ = stream(proc, audio, 0.25, offset=100.0)
    assert [(round(s - 100.0, 6), round(e - 100.0, 6), t) for _, (s, e, t) in shifted] == [o for _, o in first]
    again, _ = stream(proc, audio, 0.25)
    assert again == first


def test_vac_on_silence_never_calls_the_recogniser():
    proc, asr = vac_over_timeline()
    proc.vad.model.spans = []
    outputs, partials = stream(proc, silence(3.0), 0.1)
    assert outputs == [] and set(partials) == {None} and asr.calls == []


def test_stream_ending_in_speech_is_finished():
    proc, _ = vac_over_timeline()
    audio = TimelineASR.stream_audio(6.5)  # cut inside the second utterance
    outputs, _ = stream(proc, audio, 0.04)
    assert " ".join(o[2] for _, o in outputs) == "one two three four five six"


def test_transcribe_tail_hears_the_end_of_each_utterance():
    proc, _ = vac_over_timeline(transcribe_tail=True)
    outputs, _ = stream(proc, TimelineASR.stream_audio(8.0), 0.04)
    assert " ".join(o[2] for _, o in outputs) == "one two three four five six seven"

    timeline = words_from_text("yes", start=1.0, word_sec=0.2)  # shorter than one recognition step
    for tail, expected in ((False, ""), (True, "yes")):
        vad = VoiceActivityDetector(SpanProbability([(0.98, 1.22)]))
        proc = VACOnlineASRProcessor(OnlineASRProcessor(TimelineASR(timeline)), vad=vad, transcribe_tail=tail)
        outputs, _ = stream(proc, TimelineASR.stream_audio(3.0), 0.04)
        assert " ".join(o[2] for _, o in outputs) == expected


def test_padding_before_the_onset_keeps_whisper_from_misreading_the_first_word():
    """A VAD fires a window into the first word; 100 ms of padding (the reference) cuts its onset, 300 ms does not."""
    timeline = words_from_text("had he married", start=1.0)
    late_vad = [(1.05, timeline[-1][1])]  # speech probability crosses the threshold 50 ms into "had"
    texts = {}
    for pad_ms in (100, 300):
        asr = ClippedOnsetASR(timeline, lead_sec=0.15)
        vad = VoiceActivityDetector(SpanProbability(late_vad), speech_pad_ms=pad_ms)
        proc = VACOnlineASRProcessor(OnlineASRProcessor(asr), vad=vad, transcribe_tail=True)
        outputs, _ = stream(proc, TimelineASR.stream_audio(4.0), 0.04)
        texts[pad_ms] = " ".join(o[2] for _, o in outputs)
    assert texts == {100: "had? he married", 300: "had he married"}
    config = streaming_processor(TimelineASR([]), StreamingPolicyConfig(vac=True))
    assert config.vad.pad == int(0.3 * SR)  # asr_lab's default; reference_mode keeps 100 ms
    assert streaming_processor(TimelineASR([]), StreamingPolicyConfig(vac=True, reference_mode=True)).vad.pad == int(0.1 * SR)


THREE = [
    words_from_text("one two three four", start=1.0),
    words_from_text("five six seven", start=4.0),
    words_from_text("eight nine ten", start=6.5),
]


def vac_with_context(context_sec, **engine):
    asr = ContextSensitiveASR([w for u in THREE for w in u], **engine)
    vad = VoiceActivityDetector(SpanProbability([(u[0][0] - 0.05, u[-1][1] + 0.05) for u in THREE]))
    online = OnlineASRProcessor(asr, min_chunk_sec=1.0)
    return VACOnlineASRProcessor(online, vad=vad, transcribe_tail=True, context_sec=context_sec), asr


def test_context_lets_each_utterance_be_heard_after_the_one_before_it():
    """An engine that misreads a sentence heard alone: the reference VAC starts each utterance alone."""
    alone, _ = vac_with_context(0)
    outputs, _ = stream(alone, TimelineASR.stream_audio(10.0), 0.04)
    assert [o[2] for _, o in outputs] == ["one two", "three four", "five? six seven", "eight? nine ten"]

    proc, asr = vac_with_context(10)
    outputs, _ = stream(proc, TimelineASR.stream_audio(10.0), 0.04)
    assert [o[2] for _, o in outputs] == ["one two", "three four", "five six seven", "eight nine ten"]
    # committed once each, at their own times: the spliced previous utterance is heard, never committed again
    for _, (start, end, text) in outputs:
        words = [w for w in TIMELINE_OF(THREE) if w[2] in text.split()]
        assert (start, end) == pytest.approx((words[0][0], words[-1][1]), abs=1e-6)
    # every window of an utterance begins with the one before it (the first: its own padded start)
    starts = sorted({round(c.start_sample / SR, 2) for c in asr.calls})
    assert starts == [pytest.approx(THREE[0][0][0] - 0.14, abs=0.02), pytest.approx(THREE[1][0][0] - 0.14, abs=0.02)]
    assert proc.context_fallbacks == 0 and proc.fix_stats["context_fallbacks"] == 0


def test_an_utterance_missed_behind_its_context_is_heard_again_alone():
    """Whisper sometimes ends its answer after the first sentence: then the utterance is recognised without context."""
    proc, asr = vac_with_context(10, stop_at_splice=True)
    outputs, _ = stream(proc, TimelineASR.stream_audio(10.0), 0.04)
    assert " ".join(o[2] for _, o in outputs) == "one two three four five? six seven eight? nine ten"
    assert proc.context_fallbacks == 2


def test_context_needs_a_short_pause_and_a_processor_that_can_settle():
    proc, asr = vac_with_context(10)
    proc.online.asr.words = [(s + (3.5 if s >= 4.0 else 0.0), e + (3.5 if s >= 4.0 else 0.0), w) for s, e, w in asr.words]
    proc.vad.model.spans = [(0.95, 2.55), (7.45, 8.65)]  # the pause is longer than CONTEXT_GAP_SEC
    outputs, _ = stream(proc, TimelineASR.stream_audio(10.0), 0.04)
    assert "five? six seven" in " ".join(o[2] for _, o in outputs)
    with pytest.raises(ValueError, match="context_sec=30"):
        vac_with_context(30)

    class NoSettle:
        def init(self, offset=0.0): ...
        def insert_audio_chunk(self, audio): ...
        def process_iter(self): return None
        def finish(self): return None

    assert VACOnlineASRProcessor(NoSettle(), vad=VoiceActivityDetector(SpanProbability([])), context_sec=10).context_sec == 0


def TIMELINE_OF(utterances):
    return [w for u in utterances for w in u]


def test_vac_checks_its_arguments():
    online = OnlineASRProcessor(TimelineASR([]))
    with pytest.raises(ValueError, match="vac_chunk_sec=0"):
        VACOnlineASRProcessor(online, vac_chunk_sec=0, vad=VoiceActivityDetector(SpanProbability([])))
    with pytest.raises(TypeError, match="lacks init, insert_audio_chunk, process_iter, finish"):
        VACOnlineASRProcessor(object(), vad=VoiceActivityDetector(SpanProbability([])))


def test_streaming_processor_follows_the_config():
    asr = TimelineASR([])
    plain = streaming_processor(asr, ASRConfig(min_chunk_size=0.5, buffer_trimming="sentence", buffer_trimming_sec=20))
    assert isinstance(plain, OnlineASRProcessor)
    assert plain.min_chunk_sec == 0.5 and plain.buffer_trimming == ("sentence", 20.0)
    vac = streaming_processor(asr, ASRConfig(vac=True, min_chunk_size=0.5, vac_chunk_size=0.08))
    assert isinstance(vac, VACOnlineASRProcessor) and isinstance(vac.online, OnlineASRProcessor)
    assert (vac.online_chunk_sec, vac.vac_chunk_sec, vac.min_chunk_sec) == (0.5, 0.08, 0.08)
    assert vac.asr is asr and vac.sep == " "


def test_last_words_are_those_of_the_returned_segment():
    proc, _ = vac_over_timeline()
    audio = TimelineASR.stream_audio(8.0)
    step = round(0.04 * SR)
    proc.init()
    seen = []
    for i in range(0, len(audio), step):
        proc.insert_audio_chunk(audio[i : i + step])
        out = proc.process_iter()
        if out:
            words = proc.last_words()
            assert " ".join(w[2] for w in words) == out[2]
            assert (words[0][0], words[-1][1]) == (out[0], out[1])
            seen += words
        else:
            assert proc.last_words() == []
    assert [w[2] for w in seen] == ["one", "two", "three", "four", "five", "six"]


def test_spawn_gives_an_independent_processor_with_the_same_answers():
    proc, _ = vac_over_timeline()
    audio = TimelineASR.stream_audio(8.0)
    twin = proc.spawn()
    assert twin.online is not proc.online and twin.vad is not proc.vad and twin.vad.model is not proc.vad.model
    assert (twin.online_chunk_sec, twin.vac_chunk_sec) == (proc.online_chunk_sec, proc.vac_chunk_sec)
    proc.init()
    proc.insert_audio_chunk(audio[: 3 * SR])  # the original is mid-stream ...
    proc.process_iter()
    assert stream(twin, audio, 0.5)[0] == stream(vac_over_timeline()[0], audio, 0.5)[0]  # ... the twin is unaffected


def test_silero_detector_spawns_sharing_the_onnx_session():
    detector = VoiceActivityDetector()
    twin = detector.spawn()
    assert twin.model.session is detector.model.session and twin.model is not detector.model
