"""Streaming policies (asr_lab.policies) on scripted stand-in engines, and record-once / replay-many."""

import numpy as np
import pytest

import asr_lab
from asr_lab import OnlineASRProcessor, replay
from asr_lab.core.config import ConfigError
from asr_lab.policies import (
    AlignAttProcessor,
    HoldN,
    HypothesisStore,
    LocalAgreementN,
    PolicyConfig,
    RedecodingProcessor,
    StablePrefix,
    policy_grid,
    policy_processor,
    recording,
)
from asr_lab.testing import ScriptedASR, ScriptedTokenDecoder, TimelineASR, TimelineTokenDecoder, words_from_text

TEXT = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
WORDS = words_from_text(TEXT, start=0.2, pause_every=4, pause_sec=0.6)  # 16 words, 0.2 .. ~8.2 s


def run(proc, seconds, clock="unaware", chunk=0.5):
    return replay(proc, TimelineASR.stream_audio(seconds), clock=clock, chunk_sec=chunk, warmup_sec=0)


def emitted(trace):
    return [(e.text, round(e.start, 6), round(e.end, 6), e.step, e.audio_fed, e.final, e.emitted_at) for e in trace.emissions]


# -- the commit rules -------------------------------------------------------------------------


def test_hold_n_commits_all_but_the_last_n_words():
    tail = [(0, 1, "a"), (1, 2, "b"), (2, 3, "c")]
    assert HoldN(2).decide(tail, 3.0) == 1
    assert HoldN(0).decide(tail, 3.0) == 3
    assert HoldN(5).decide(tail, 3.0) == 0
    with pytest.raises(ValueError, match="n >= 0"):
        HoldN(-1)


def test_stable_prefix_commits_words_ending_delta_before_the_buffer_end_and_never_skips():
    tail = [(0, 1.0, "a"), (1, 2.5, "b"), (2.5, 2.6, "c")]
    assert StablePrefix(1.0).decide(tail, 3.6) == 3
    assert StablePrefix(1.0).decide(tail, 3.5) == 2  # "b" ends at 2.5 = 3.5 - 1.0
    assert StablePrefix(1.0).decide([(0, 3, "long"), (3, 3.1, "x")], 3.5) == 0  # "x" waits for "long"


def test_local_agreement_n_needs_n_agreeing_tails():
    rule = LocalAgreementN(3)
    a = [(0, 1, "a"), (1, 2, "b")]
    assert rule.decide(a, 2) == 0
    assert rule.decide([(0, 1, "a"), (1, 2, "x")], 2) == 0  # only two tails so far
    assert rule.decide([(0, 1, "a"), (1, 2, "b")], 2) == 1  # a, a, a agree; b, x, b do not
    assert LocalAgreementN(1).decide(a, 2) == 2


# -- the fixed re-decoding schedule ----------------------------------------------------------------


@pytest.mark.parametrize("rule", [HoldN(2), StablePrefix(0.8), LocalAgreementN(3)])
def test_every_rule_ends_with_the_whole_text_in_order(rule):
    asr = TimelineASR(WORDS, unstable_tail_sec=0.3)  # words within 0.3 s of the buffer end come garbled
    trace = run(RedecodingProcessor(asr, rule, trim_sec=4.0), 9.0)
    assert trace.ok
    assert trace.text.split() == TEXT.split()


def test_local_agreement_1_commits_every_hypothesis_whole_garbled_tail_included():
    trace = run(RedecodingProcessor(TimelineASR(WORDS, unstable_tail_sec=0.3), LocalAgreementN(1), trim_sec=4.0), 9.0)
    assert any(w.endswith("~") for w in trace.text.split())


def test_hold_n_holds_back_exactly_n_words_of_each_hypothesis():
    asr = TimelineASR(WORDS)
    proc = RedecodingProcessor(asr, HoldN(2), trim_sec=30)
    proc.insert_audio_chunk(TimelineASR.stream_audio(2.5))
    out = proc.process_iter()
    heard = [w for w in WORDS if w[1] <= 2.5]
    assert out[2].split() == [w[2] for w in heard[:-2]]
    assert proc.partial()[2].split() == [w[2] for w in heard[-2:]]


def test_stable_prefix_commits_no_word_ending_within_delta_of_the_buffer_end():
    trace = run(RedecodingProcessor(TimelineASR(WORDS), StablePrefix(1.0), trim_sec=30), 9.0)
    for e in trace.emissions:
        if not e.final:
            assert all(end <= e.audio_fed - 1.0 + 1e-9 for _, end, _ in e.words)


def test_local_agreement_2_on_the_schedule_commits_what_the_reference_commits_when_nothing_is_cut():
    reference = run(OnlineASRProcessor(TimelineASR(WORDS, unstable_tail_sec=0.4), buffer_trimming=("segment", 30)), 9.0)
    mine = run(RedecodingProcessor(TimelineASR(WORDS, unstable_tail_sec=0.4), LocalAgreementN(2), trim_sec=30), 9.0)
    assert emitted(mine) == emitted(reference)
    assert len(reference.emissions) > 3


def test_the_schedule_asks_the_engine_the_same_questions_whatever_the_rule_commits():
    asked = []
    for rule in (HoldN(0), HoldN(3), StablePrefix(2.0), LocalAgreementN(3)):
        asr = TimelineASR(WORDS, unstable_tail_sec=0.3)
        run(RedecodingProcessor(asr, rule, trim_sec=3.0), 9.0)
        asked.append([(c.start_sample, c.n_samples, c.prompt) for c in asr.calls])
    assert all(a == asked[0] for a in asked)
    assert any(start > 0 for start, _, _ in asked[0])  # the buffer was cut
    assert any(prompt for _, _, prompt in asked[0])  # and the cut-off words became the prompt


def test_a_cut_commits_the_words_before_it_even_when_the_rule_holds_them():
    trace = run(RedecodingProcessor(TimelineASR(WORDS), HoldN(50), trim_sec=3.0), 9.0)
    assert [e.final for e in trace.emissions][:-1] and not trace.emissions[0].final
    assert trace.text.split() == TEXT.split()


def test_spawned_processors_keep_their_own_rule_state():
    proc = RedecodingProcessor(TimelineASR(WORDS, unstable_tail_sec=0.3), LocalAgreementN(3), trim_sec=4.0)
    other = proc.spawn()
    assert other.rule is not proc.rule and other.asr is proc.asr
    assert run(other, 9.0).text == run(proc, 9.0).text


# -- record once, replay many -------------------------------------------------------------------------


def _config(**fields):
    return PolicyConfig(backend="stand-in", buffer_trimming_sec=3.0, min_chunk_size=0.5, **fields)


REPLAYABLE = [
    {"policy": "hold-n", "hold_n": 1},
    {"policy": "hold-n", "hold_n": 3},
    {"policy": "stable-prefix", "stable_delta_sec": 0.7},
    {"policy": "local-agreement", "agreement_n": 3},
    {"policy": "local-agreement", "agreement_n": 1},
]


@pytest.mark.parametrize("clock", ["unaware", "virtual"])
@pytest.mark.parametrize("fields", REPLAYABLE, ids=lambda f: "-".join(map(str, f.values())))
def test_replayed_equals_live_for_each_replayable_policy(fields, clock):
    live = run(policy_processor(TimelineASR(WORDS, unstable_tail_sec=0.3), _config(**fields)), 9.0, clock)
    with recording() as store:
        run(policy_processor(TimelineASR(WORDS, unstable_tail_sec=0.3), _config(policy="hold-n", hold_n=0)), 9.0, clock)
        recorded = store.live
        engine = TimelineASR(WORDS, unstable_tail_sec=0.3)
        replayed = run(policy_processor(engine, _config(**fields)), 9.0, clock)
    assert engine.calls == [] and store.live == recorded  # no model cost at all
    assert store.replayed == recorded
    if clock == "unaware":
        assert emitted(replayed) == emitted(live)
    else:  # emitted_at carries the compute, recorded vs measured: equal up to the stand-in's microseconds
        assert [x[:-1] for x in emitted(replayed)] == [x[:-1] for x in emitted(live)]
        assert np.allclose([x[-1] for x in emitted(replayed)], [x[-1] for x in emitted(live)], atol=0.05)
    assert replayed.partials and [p.text for p in replayed.partials] == [p.text for p in live.partials]


def test_replayed_calls_are_charged_their_recorded_compute():
    class Slow(TimelineASR):
        def transcribe(self, audio, init_prompt=""):
            import time

            time.sleep(0.02)
            return super().transcribe(audio, init_prompt)

    with recording() as store:
        first = run(policy_processor(Slow(WORDS), _config(policy="hold-n")), 3.0, "virtual")
        again = run(policy_processor(Slow(WORDS), _config(policy="stable-prefix")), 3.0, "virtual")
    assert store.replayed == len(first.steps) - 1  # every process_iter; finish() asks nothing
    assert sum(s.compute_sec for s in again.steps) >= 0.02 * store.replayed


def test_reference_local_agreement_replays_only_while_its_requests_coincide():
    with recording() as store:
        run(policy_processor(TimelineASR(WORDS), _config(policy="hold-n")), 2.5)
        short = TimelineASR(WORDS)
        run(policy_processor(short, _config()), 2.5)  # shorter than buffer_trimming_sec: same requests
        assert short.calls == []
        long_engine = TimelineASR(WORDS, unstable_tail_sec=0.3)
        run(policy_processor(TimelineASR(WORDS, unstable_tail_sec=0.3), _config(policy="hold-n")), 9.0)
        before = store.live
        trace = run(policy_processor(long_engine, _config()), 9.0)
    assert store.live > before and long_engine.calls  # it trims where the schedule does not: computed live
    assert isinstance(policy_processor(TimelineASR(WORDS), _config()), OnlineASRProcessor)
    assert trace.text.split() == run(OnlineASRProcessor(TimelineASR(WORDS, unstable_tail_sec=0.3), ("segment", 3.0), 0.5), 9.0).text.split()


def test_a_store_on_disk_is_read_back(tmp_path):
    path = tmp_path / "answers.jsonl"
    with recording(path) as store:
        run(policy_processor(TimelineASR(WORDS), _config(policy="hold-n")), 3.0)
    again = HypothesisStore(path)
    assert len(again) == len(store) > 0
    engine = TimelineASR(WORDS)
    with recording(again):
        run(policy_processor(engine, _config(policy="stable-prefix")), 3.0)
    assert engine.calls == []


# -- AlignAtt ------------------------------------------------------------------------------------


def sec(x):
    return np.zeros(int(x * 16000), dtype=np.float32)


def test_alignatt_stops_at_the_first_token_attending_within_the_threshold_of_the_end():
    dec = ScriptedTokenDecoder([[(" a", 5), (" b", 20), (" c", 46), (" d", 10)]])
    proc = AlignAttProcessor(dec, frame_threshold=4)
    proc.insert_audio_chunk(sec(1.0))  # 50 frames; " c" at 46 is within 4 of the end
    assert proc.process_iter() == (0.1, 0.92, " a b")
    # a word ends where the next token attends: " b" where the rejected " c" does
    assert proc.last_words() == [(0.1, 0.4, " a"), (0.4, 0.92, " b")]


def test_alignatt_commits_whole_words_only():
    dec = ScriptedTokenDecoder([[(" a", 5), (" bi", 20), ("g", 47)], [(" big", 20)]])
    proc = AlignAttProcessor(dec, frame_threshold=4)
    proc.insert_audio_chunk(sec(1.0))
    assert proc.process_iter()[2] == " a"  # "g" continues " bi", which is held back
    proc.insert_audio_chunk(sec(0.5))
    assert proc.process_iter()[2] == " big"
    assert dec.calls[1].forced == " a"


def test_alignatt_end_of_text_commits_everything_and_finish_decodes_to_the_end():
    dec = ScriptedTokenDecoder([[(" a", 5), (" b", 44)], [(" b", 44), (" c", 49)], [(" a", 40), (" b", 48), (" c", 49)]])
    proc = AlignAttProcessor(dec, frame_threshold=10)
    proc.insert_audio_chunk(sec(1.0))
    assert proc.process_iter()[2] == " a"
    assert proc.finish()[2] == " b c"  # the last word, attended at the very last frame, is kept
    proc = AlignAttProcessor(dec, frame_threshold=10, final_frame_threshold=2)  # SimulStreaming's 4-frame stop
    proc.insert_audio_chunk(sec(1.0))
    assert proc.finish()[2] == " a"


def test_alignatt_on_a_timeline_commits_each_word_once_after_it_was_heard():
    words = [(a, b, " " + w) for a, b, w in WORDS]
    dec = TimelineTokenDecoder(words, split_over=4)
    trace = run(AlignAttProcessor(dec, frame_threshold=5, max_buffer_sec=30), 9.0)
    assert trace.text.split() == TEXT.split()
    spoken = {w[2]: w[1] for w in words}
    for e in trace.emissions:
        for word in e.text.split():
            assert e.audio_fed >= spoken[" " + word] - 1e-9


def test_alignatt_prompts_with_committed_text_and_trims_its_buffer():
    words = [(a, b, " " + w) for a, b, w in WORDS]
    dec = TimelineTokenDecoder(words)
    proc = AlignAttProcessor(dec, frame_threshold=5, max_buffer_sec=3.0, min_chunk_sec=0.5)
    trace = run(proc, 9.0)
    assert trace.text.split() == TEXT.split()
    assert max(c.n_samples for c in dec.calls) <= 3.5 * 16000
    late = dec.calls[-1]
    assert late.start_sample > 0 and late.context  # the cut-off words are the context...
    assert (late.context + late.forced).split() == TEXT.split()[: len((late.context + late.forced).split())]


def test_alignatt_is_refused_by_engines_without_a_steppable_decoder():
    with pytest.raises(ConfigError, match="openai-whisper"):
        policy_processor(ScriptedASR([]), _config(policy="alignatt"))


@pytest.mark.slow
def test_pocketsphinx_la_takes_the_policy_field_and_refuses_alignatt():
    pytest.importorskip("pocketsphinx")
    with pytest.raises(ConfigError, match="Backends that run AlignAtt: openai-whisper"):
        asr_lab.load_processor({"backend": "pocketsphinx-la", "policy": "alignatt"})
    proc, meta = asr_lab.load_processor({"backend": "pocketsphinx-la", "policy": "hold-n", "hold_n": 1})
    assert isinstance(proc, RedecodingProcessor) and meta["streaming"] == "hold-n"


# -- configuration -----------------------------------------------------------------------------------


def test_a_field_of_another_policy_is_refused():
    with pytest.raises(ValueError, match="hold_n=3 tunes policy 'hold-n'"):
        PolicyConfig(hold_n=3)
    with pytest.raises(ValueError, match="buffer_trimming='sentence'"):
        PolicyConfig(policy="hold-n", buffer_trimming="sentence")
    PolicyConfig(buffer_trimming="sentence")  # the reference keeps its option


def test_policy_grid_crosses_policies_parameters_and_chunk_sizes():
    grid = policy_grid(
        {"backend": "x"},
        {"local-agreement": {"agreement_n": [2, 3]}, "alignatt": {"frame_threshold": [10]}, "hold-n": None},
        min_chunk_size=[0.5, 1.0],
    )
    assert list(grid) == [
        "local-agreement-2 @0.5s", "local-agreement-2 @1s", "local-agreement-3 @0.5s", "local-agreement-3 @1s",
        "alignatt-10 @0.5s", "alignatt-10 @1s", "hold-2 @0.5s", "hold-2 @1s",
    ]
    assert grid["alignatt-10 @1s"] == {"backend": "x", "policy": "alignatt", "frame_threshold": 10, "min_chunk_size": 1.0}
    with pytest.raises(ValueError, match="unknown policy 'la2'"):
        policy_grid({}, {"la2": None})


@pytest.mark.slow
def test_compare_sweeps_policies_and_replays_a_real_engine_exactly():
    """pocketsphinx-la on real speech: the swept policies replayed from one recording equal their live runs."""
    pytest.importorskip("pocketsphinx")
    import os

    from asr_lab.data import Utterance

    wav = "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav"
    if not os.path.exists(wav):
        pytest.skip("Debian pocketsphinx-testdata (LibriVox speech) is not installed")
    data = [Utterance("0880", wav, "he was not an ill disposed young man")]
    policies = {"hold-n": {"hold_n": [1]}, "stable-prefix": {"stable_delta_sec": [0.5]}, "local-agreement": {"agreement_n": [3]}}
    base = {"ps": {"backend": "pocketsphinx-la", "min_chunk_size": 0.5}}
    replayed = asr_lab.compare(base, data, policies=policies, clock="unaware", progress=False)
    live = asr_lab.compare(base, data, policies=policies, clock="unaware", progress=False, record_replay=False)
    assert replayed.systems == ["ps hold-1", "ps stable-0.5s", "ps local-agreement-3"]
    calls = {r.system: (r.trace.meta["engine_calls_live"], r.trace.meta["engine_calls_replayed"]) for r in replayed.records}
    assert calls["ps hold-1"][0] > 0 and calls["ps stable-0.5s"][0] == 0 and calls["ps local-agreement-3"][0] == 0
    for a, b in zip(replayed.records, live.records):
        assert [(e.text, e.start, e.end, e.step, e.emitted_at) for e in a.trace.emissions] == \
               [(e.text, e.start, e.end, e.step, e.emitted_at) for e in b.trace.emissions]
        assert "engine_calls_live" not in b.trace.meta
    assert replayed.traces[("ps hold-1", "0880", 0)].text  # it transcribed something


def test_alignatt_keeps_word_times_in_order_when_attention_jumps_back():
    dec = ScriptedTokenDecoder([[(" a", 30), (" b", 10), (" c", 20), (" d", 49)]])
    proc = AlignAttProcessor(dec, frame_threshold=4)
    proc.insert_audio_chunk(sec(1.0))
    start, end, text = proc.process_iter()
    assert text == " a b c" and start <= end
    starts = [w[0] for w in proc.last_words()]
    assert starts == sorted(starts) and all(a <= b for a, b, _ in proc.last_words())


def test_vac_around_another_policy_takes_the_configs_vac_knobs():
    pytest.importorskip("faster_whisper")  # Silero VAD ships in the faster-whisper wheel
    from asr_lab.backends.whisper_common import WhisperConfig
    from asr_lab.policies.redecoding import RedecodingProcessor
    from asr_lab.policies.vac import VACOnlineASRProcessor

    proc = policy_processor(TimelineASR(WORDS), WhisperConfig(policy="hold-n", vac=True, vac_min_silence_ms=300))
    assert isinstance(proc, VACOnlineASRProcessor) and isinstance(proc.online, RedecodingProcessor)
    assert proc.transcribe_tail and proc.vad.min_silence == int(0.3 * 16000) and proc.vad.pad == int(0.3 * 16000)
    ref = policy_processor(TimelineASR(WORDS), WhisperConfig(policy="hold-n", vac=True, reference_mode=True))
    assert not ref.transcribe_tail and ref.vad.pad == int(0.1 * 16000)
