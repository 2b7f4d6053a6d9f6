"""LocalAgreement's named fixes and VAC's settings, each against a stand-in that reproduces the failure.

Every failure was measured with real Whisper weights (bench/vac.py prints them); the stand-ins in
``asr_lab.testing.scripted`` reproduce it without a model, and each test first shows the
reference policy failing, then the fix holding.
"""

import pytest
from pydantic import ValidationError

from asr_lab import OnlineASRProcessor, replay
from asr_lab.core.config import ASRConfig
from asr_lab.replay.clocks import VirtualClock
from asr_lab.policies.config import StreamingPolicyConfig, policy_metadata, policy_settings
from asr_lab.policies.vac import VACOnlineASRProcessor, VoiceActivityDetector, streaming_processor
from asr_lab.testing import (
    GhostWordASR,
    HallucinatingTailASR,
    OneSegmentASR,
    ScriptedASR,
    TimelineASR,
    words_from_text,
)

SR = 16000


def run(proc, duration, chunk_sec=1.0):
    """Stream position-coded audio in ``chunk_sec`` pieces; return the committed words' texts and the answers."""
    audio = TimelineASR.stream_audio(duration)
    step = int(chunk_sec * SR)
    proc.init()
    answers = []
    for i in range(0, len(audio), step):
        proc.insert_audio_chunk(audio[i : i + step])
        answers.append(proc.process_iter())
    answers.append(proc.finish())
    return " ".join(a[2] for a in answers if a), answers


# -- ghost words ---------------------------------------------------------------------------

SPEECH = words_from_text("one two three", start=0.0) + words_from_text("four five", start=4.0)


@pytest.mark.parametrize("where", ["zero", "beyond"])
def test_ghost_filter_keeps_ghost_words_out_of_the_commits_and_the_prompt(where):
    text, _ = run(OnlineASRProcessor(GhostWordASR(SPEECH, where=where)), 6.0)
    assert "day." in text.split()  # the reference commits it: two answers ending in a pause agree on it

    asr = GhostWordASR(SPEECH, where=where)
    proc = OnlineASRProcessor(asr, ghost_filter=True)
    text, _ = run(proc, 6.0)
    assert text == "one two three four five"
    assert all("day." not in call.prompt for call in asr.calls)
    assert proc.fix_stats["ghost_words"] == len(asr.calls)


def test_ghost_filter_keeps_every_real_word():
    timeline = words_from_text("a b c d e f g h i j k l", start=0.3, pause_every=4)
    plain, _ = run(OnlineASRProcessor(TimelineASR(timeline)), 7.0)
    filtered, _ = run(OnlineASRProcessor(TimelineASR(timeline), ghost_filter=True), 7.0)
    assert filtered == plain == "a b c d e f g h i j k l"


# -- guarded finish ------------------------------------------------------------------------

SENTENCE = words_from_text("so the meeting starts at nine and ends at noon", start=0.2)  # ends at 4.1 s


def test_guarded_finish_does_not_commit_a_tail_repeating_committed_text():
    _, answers = run(OnlineASRProcessor(HallucinatingTailASR(SENTENCE)), 5.3)
    assert answers[-1][2] == "so the meeting starts at nine"  # the reference commits the made-up repeat

    proc = OnlineASRProcessor(HallucinatingTailASR(SENTENCE), guarded_finish=True)
    text, answers = run(proc, 5.3)
    assert text == "so the meeting starts at nine and ends at noon" and answers[-1] is None
    assert proc.fix_stats["finish_words_dropped"] == 6


def test_guarded_finish_commits_no_more_words_than_the_audio_can_hold():
    made_up = "thank you so much for watching and please like and subscribe to the channel"
    _, answers = run(OnlineASRProcessor(HallucinatingTailASR(SENTENCE, text=made_up)), 5.3)
    assert answers[-1][2] == made_up

    _, answers = run(OnlineASRProcessor(HallucinatingTailASR(SENTENCE, text=made_up), guarded_finish=True), 5.3)
    kept = answers[-1][2].split()
    assert kept == made_up.split()[: len(kept)] and len(kept) <= int((5.3 - 4.1) * 5) + 1


def test_guarded_finish_keeps_real_pending_words():
    for guarded in (False, True):
        proc = OnlineASRProcessor(TimelineASR(SENTENCE), guarded_finish=guarded)
        text, answers = run(proc, 4.15)  # the stream stops right after the last word: it is still pending
        assert text == "so the meeting starts at nine and ends at noon" and "noon" in answers[-1][2]


# -- buffer cap ----------------------------------------------------------------------------

LONG = words_from_text(" ".join(f"w{i}" for i in range(90)), start=0.2, pause_every=6, pause_sec=0.6)


def test_cap_bounds_the_buffer_when_segments_cannot_be_cut_and_loses_no_word():
    asr = OneSegmentASR(LONG)
    text, _ = run(OnlineASRProcessor(asr), 45.0)
    assert max(c.duration for c in asr.calls) > 40  # one segment per call: the reference never trims

    asr = OneSegmentASR(LONG)
    proc = OnlineASRProcessor(asr, max_buffer_sec=20)
    capped, _ = run(proc, 45.0)
    assert max(c.duration for c in asr.calls) <= 20 + 1.0  # at most one chunk over the cap, before the cut
    assert capped == text == " ".join(w[2] for w in LONG)
    assert proc.fix_stats["cap_cuts"] > 0 and proc.fix_stats["cap_dropped_words"] == 0


def test_cap_bounds_the_buffer_when_nothing_ever_commits():
    junk = [[(0.1, 0.4, f"noise{k}")] for k in range(70)]  # answers that never agree: faint noise
    asr = ScriptedASR(junk)
    run(OnlineASRProcessor(asr), 60.0)
    assert asr.calls[-1].duration == pytest.approx(60.0)

    asr = ScriptedASR(junk)
    proc = OnlineASRProcessor(asr, max_buffer_sec=20)
    run(proc, 60.0)
    assert max(c.duration for c in asr.calls) <= 21.0
    assert proc.fix_stats["cap_dropped_sec"] > 30


def test_cap_must_leave_room_for_trimming():
    with pytest.raises(ValueError, match="max_buffer_sec=10"):
        OnlineASRProcessor(TimelineASR([]), max_buffer_sec=10)
    with pytest.raises(ValidationError, match="max_buffer_sec=10.0 is below buffer_trimming_sec"):
        StreamingPolicyConfig(max_buffer_sec=10)


# -- config --------------------------------------------------------------------------------


def test_reference_mode_gives_the_reference_and_defaults_turn_the_fixes_on():
    assert policy_settings(ASRConfig()) == policy_settings(StreamingPolicyConfig(reference_mode=True)) == {
        "ghost_filter": False,
        "guarded_finish": False,
        "max_buffer_sec": None,
        "vac_transcribe_tail": False,
        "vac_threshold": 0.5,
        "vac_min_silence_ms": 500.0,
        "vac_speech_pad_ms": 100.0,
        "vac_context_sec": 0.0,
    }
    assert policy_settings(StreamingPolicyConfig()) == {
        "ghost_filter": True,
        "guarded_finish": True,
        "max_buffer_sec": 30.0,
        "vac_transcribe_tail": True,
        "vac_threshold": 0.5,
        "vac_min_silence_ms": 500.0,
        "vac_speech_pad_ms": 300.0,
        "vac_context_sec": 10.0,
    }
    assert policy_settings(StreamingPolicyConfig(buffer_trimming_sec=40))["max_buffer_sec"] == 40.0
    named = policy_settings(StreamingPolicyConfig(reference_mode=True, ghost_filter=True, max_buffer_sec=20))
    assert named["ghost_filter"] and named["max_buffer_sec"] == 20 and not named["vac_transcribe_tail"]
    assert not named["guarded_finish"] and named["vac_speech_pad_ms"] == 100.0
    off = policy_settings(StreamingPolicyConfig(ghost_filter=False, guarded_finish=False, vac_speech_pad_ms=100))
    assert (off["ghost_filter"], off["guarded_finish"], off["vac_speech_pad_ms"]) == (False, False, 100)
    assert policy_metadata(StreamingPolicyConfig(reference_mode=True))["reference_mode"] is True
    with pytest.raises(ValidationError, match="vac_keep_context"):  # removed: it made tiny.en hallucinate
        StreamingPolicyConfig(vac_keep_context=True)


def test_whisper_configs_carry_the_policy_fields():
    from asr_lab.backends.whisper_common import WhisperConfig

    assert issubclass(WhisperConfig, StreamingPolicyConfig)
    with pytest.raises(ValidationError, match="vac_min_silence_ms"):
        WhisperConfig(vac_min_silence_ms=-1)


def test_streaming_processor_passes_fixes_and_vac_knobs():
    pytest.importorskip("faster_whisper")  # the VAC wrapper runs Silero from the faster-whisper wheel
    asr = TimelineASR([])
    plain = streaming_processor(asr, ASRConfig())
    assert (plain.ghost_filter, plain.guarded_finish, plain.max_buffer_sec) == (False, False, None)
    cfg = StreamingPolicyConfig(
        vac=True, ghost_filter=True, guarded_finish=True, vac_min_silence_ms=300, vac_speech_pad_ms=50, vac_threshold=0.6
    )
    vac = streaming_processor(asr, cfg)
    assert isinstance(vac, VACOnlineASRProcessor) and vac.transcribe_tail is True
    assert (vac.online.ghost_filter, vac.online.guarded_finish, vac.online.max_buffer_sec) == (True, True, 30.0)
    assert (vac.vad.threshold, vac.vad.min_silence, vac.vad.pad) == (0.6, int(0.3 * SR), int(0.05 * SR))
    twin = vac.spawn()
    assert (twin.online.ghost_filter, twin.online.max_buffer_sec, twin.transcribe_tail) == (True, 30.0, True)
    assert vac.context_sec == 10.0 and twin.context_sec == 10.0
    reference = streaming_processor(asr, StreamingPolicyConfig(vac=True, reference_mode=True))
    assert reference.transcribe_tail is False and reference.context_sec == 0.0


# -- VAC warm-up ---------------------------------------------------------------------------


class _Spans:
    def __init__(self, spans):
        self.spans = spans
        self.windows = 0

    def reset(self):
        self.windows = 0

    def __call__(self, window):
        t = self.windows * 512 / SR
        self.windows += 1
        return 0.9 if any(a <= t < b for a, b in self.spans) else 0.05


def test_vac_warm_up_runs_the_recogniser_and_leaves_the_stream_untouched():
    timeline = words_from_text("one two three four", start=0.5)
    asr = TimelineASR(timeline)
    proc = VACOnlineASRProcessor(OnlineASRProcessor(asr), vad=VoiceActivityDetector(_Spans([(0.45, 2.2)])))
    trace = replay(proc, TimelineASR.stream_audio(4.0), clock="unaware", chunk_sec=0.04, warmup_sec=1.0)
    assert asr.calls[0].duration == pytest.approx(1.0) and asr.calls[0].prompt == ""  # the warm-up reached the model
    assert "warmup_compute_sec" in trace.meta
    assert " ".join(e.text for e in trace.emissions).split()[:3] == ["one", "two", "three"]


def test_guarded_finish_keeps_a_sentence_that_only_shares_a_phrase():
    said = words_from_text("he might have been made still more respectable.", start=0.2)
    said += words_from_text("she might have been happy.", start=6.02, word_sec=0.15, gap_sec=0.05)  # heard by the last call only
    for guarded in (False, True):
        text, answers = run(OnlineASRProcessor(TimelineASR(said), guarded_finish=guarded), 7.0, chunk_sec=2.0)
        assert answers[-1][2] == "she might have been happy."  # the whole sentence was pending at finish()


# -- VAC keeps up ----------------------------------------------------------------------------


class _CostPerCall(VirtualClock):
    """A virtual clock on which every recognition costs ``cost`` seconds and nothing else costs time
    (deterministic, unlike measured compute)."""

    def __init__(self, asr, cost):
        super().__init__()
        self.asr, self.cost, self.seen = asr, cost, 0

    def after_call(self, compute_sec, fed_until):
        calls, self.seen = len(self.asr.calls) - self.seen, len(self.asr.calls)
        self._t += calls * self.cost
        return self._t


def test_vac_keeps_up_when_each_call_costs_more_than_a_chunk():
    """Each recognition costs 2 s of stream time: recognising every queued second separately
    (the old VAC: 16 calls, 28 s behind) falls further behind at every step; one call per step keeps up."""
    timeline = words_from_text(" ".join(f"w{i}" for i in range(40)), start=0.5)  # 0.5 s .. 16.5 s of speech
    asr = TimelineASR(timeline)
    proc = VACOnlineASRProcessor(OnlineASRProcessor(asr), vad=VoiceActivityDetector(_Spans([(0.45, 16.6)])))
    trace = replay(proc, TimelineASR.stream_audio(20.0), clock=_CostPerCall(asr, 2.0), chunk_sec=0.04, warmup_sec=0)
    assert len(asr.calls) <= 16.5 / 2 + 3
    lag = [s.returned_at - s.fed_until for s in trace.steps]
    assert max(lag) <= 2 * 2.0  # never more than the call under way and one more behind
    assert " ".join(e.text for e in trace.emissions).split()[:30] == [f"w{i}" for i in range(30)]


def test_compare_steps_a_vac_config_by_its_vad_step_as_the_reference_driver_does():
    pytest.importorskip("pocketsphinx")
    pytest.importorskip("faster_whisper")
    from asr_lab.compare.runner import _validated

    assert _validated({"backend": "pocketsphinx", "min_chunk_size": 0.5})[1] == 0.5
    assert _validated({"backend": "pocketsphinx-la", "min_chunk_size": 0.5, "vac": True, "vac_chunk_size": 0.08})[1] == 0.08
