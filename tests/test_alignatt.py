"""AlignAtt's named options (asr_lab's defaults vs SimulStreaming's), its buffer bound and its clean word times.

Logic on stand-in token decoders (asr_lab.testing); the bound and the audit on real tiny.en
weights over real LibriVox speech (slow).
"""

import numpy as np
import pytest

import asr_lab
from asr_lab import replay
from asr_lab.policies import AlignAttProcessor, PolicyConfig, policy_processor
from asr_lab.policies.alignatt import ENCODER_SEC, SIMULSTREAMING
from asr_lab.policies.config import ALIGNATT_REFERENCE, alignatt_settings
from asr_lab.testing import ScriptedASR, ScriptedTokenDecoder, TimelineASR, TimelineTokenDecoder, words_from_text


def sec(x):
    return np.zeros(int(x * 16000), dtype=np.float32)


def one_step(sessions, **options):
    proc = AlignAttProcessor(ScriptedTokenDecoder(sessions), frame_threshold=4, **options)
    proc.insert_audio_chunk(sec(1.0))  # 50 frames
    return proc, proc.process_iter()


# -- the last word ---------------------------------------------------------------------------


def test_last_word_rules_hold_punctuation_commit_and_drop():
    partial = [[(" a", 5), (" bi", 20), ("g", 47)]]  # stopped inside " big"
    assert one_step(partial, last_word="hold")[1][2] == " a"
    assert one_step(partial, last_word="punctuation")[1][2] == " a"
    assert one_step(partial, last_word="commit")[1][2] == " a bi"  # SimulStreaming commits the partial word
    comma = [[(" a", 5), (" man", 20), (",", 30), ("x", 47)]]  # stopped after "man," on a token continuing a word
    assert one_step(comma, last_word="hold")[1][2] == " a"
    assert one_step(comma, last_word="punctuation")[1][2] == " a man,"  # punctuation ends the word
    ended = [[(" a", 5), (" b", 10)]]  # end-of-text
    assert one_step(ended, last_word="hold")[1][2] == " a b"
    assert one_step(ended, last_word="drop")[1][2] == " a"  # --never_fire drops it even at end-of-text
    with pytest.raises(ValueError, match="last_word='always'"):
        one_step(ended, last_word="always")


def test_finish_commits_every_word_whatever_the_rule_and_its_threshold_is_named():
    sessions = [[(" a", 5), (" b", 47), (" c", 49)]]
    proc = AlignAttProcessor(ScriptedTokenDecoder(sessions), frame_threshold=10, final_frame_threshold=None, last_word="drop")
    proc.insert_audio_chunk(sec(1.0))
    assert proc.finish()[2] == " a b c"
    proc = AlignAttProcessor(ScriptedTokenDecoder(sessions), frame_threshold=10, final_frame_threshold=4)
    proc.insert_audio_chunk(sec(1.0))
    assert proc.finish()[2] == " a"  # SimulStreaming's 4 frames at the end drop " b" (47) and what follows


# -- the buffer ------------------------------------------------------------------------------

LONG = words_from_text(" ".join(f"w{i}" for i in range(90)), start=0.2, pause_every=6, pause_sec=0.5)


def timeline_run(seconds, chunk=1.0, **options):
    words = [(a, b, " " + w) for a, b, w in LONG if b < seconds]
    dec = TimelineTokenDecoder(words)
    proc = AlignAttProcessor(dec, frame_threshold=5, min_chunk_sec=chunk, **options)
    trace = replay(proc, TimelineASR.stream_audio(seconds), clock="unaware", chunk_sec=chunk, warmup_sec=0)
    return proc, dec, trace, words


@pytest.mark.parametrize("cut", ["after", "before", "chunk"])
def test_no_decoding_hears_more_than_the_encoder_and_every_word_is_committed_once(cut):
    proc, dec, trace, words = timeline_run(45.0, chunk=1.0, max_buffer_sec=30.0, cut=cut)
    assert LONG[-1][1] > 40  # the stand-in speaks past 30 s, so the buffer must be cut
    assert max(proc.decoded_sec) <= ENCODER_SEC + 1e-9
    assert max(c.n_samples for c in dec.calls) <= ENCODER_SEC * 16000
    assert trace.text.split() == [w.strip() for _, _, w in words]
    assert any(c.context for c in dec.calls)  # words cut off went to the prompt


def test_the_old_cut_after_decoding_would_have_decoded_more_than_30_s():
    # with the guard, "after" still cuts at 30 s; what the buffer held before the guard was 30 s + one chunk
    proc, dec, trace, _ = timeline_run(40.0, chunk=1.0, max_buffer_sec=30.0, cut="after")
    assert max(proc.decoded_sec) > 29.0 and max(proc.decoded_sec) <= ENCODER_SEC


def test_chunk_cut_drops_whole_steps_and_moves_the_oldest_steps_words_into_the_context():
    sessions = [[(" a", 10)], [(" b", 60)], [(" c", 80)]]
    dec = ScriptedTokenDecoder(sessions)
    proc = AlignAttProcessor(dec, frame_threshold=4, max_buffer_sec=2.0, cut="chunk", last_word="commit")
    for _ in range(3):
        proc.insert_audio_chunk(sec(1.0))
        proc.process_iter()
    # third step: 3 s > 2 s, so the first 1 s step's audio goes and its " a" becomes context
    assert dec.calls[2].n_samples == 2 * 16000
    assert dec.calls[2].context == " a" and dec.calls[2].forced == " b"
    assert proc.buffer_time_offset == pytest.approx(1.0)
    assert proc.committed[-1][0] == pytest.approx(1.0 + 80 / 50)


# -- rewinds ---------------------------------------------------------------------------------


def test_rewind_drops_the_steps_new_tokens_but_not_after_special_tokens():
    dec = ScriptedTokenDecoder([[(" a", 10)], [(" b", 290), (" c", 20), (" d", 200)], [(" e", 5)]])
    proc = AlignAttProcessor(dec, frame_threshold=4, rewind_threshold=200, last_word="commit")
    proc.insert_audio_chunk(sec(8.0))
    assert proc.process_iter()[2] == " a"  # first token after the start tokens: a jump back is allowed
    proc.insert_audio_chunk(sec(1.0))
    assert proc.process_iter() is None  # " c" attends 270 frames before " b": the step's tokens are dropped
    proc.insert_audio_chunk(sec(1.0))
    assert proc.process_iter()[2] == " e"  # after a rewind the next step starts afresh
    off = AlignAttProcessor(ScriptedTokenDecoder([[(" b", 290), (" c", 20)]]), frame_threshold=4)
    off.insert_audio_chunk(sec(8.0))
    assert off.process_iter()[2] == " b c"


# -- word times ------------------------------------------------------------------------------


def test_clean_word_times_are_ordered_of_positive_length_and_never_overlap_the_last_emission():
    # attention collapses onto one frame, then a later step attends before the last emission's end
    dec = ScriptedTokenDecoder([[(" a", 40), (" b", 40), (" c", 40), (" d", 40), (" e", 49)], [(" f", 20), (" g", 60)]])
    proc = AlignAttProcessor(dec, frame_threshold=4, timestamps="clean")
    proc.insert_audio_chunk(sec(1.0))
    first = proc.process_iter()
    words = proc.last_words()
    assert [w[2] for w in words] == [" a", " b", " c", " d"]
    for (s0, e0, _), (s1, e1, _) in zip(words, words[1:]):
        assert s0 < e0 <= s1 < e1
    assert words[-1][1] <= 1.0  # inside the audio heard
    proc.insert_audio_chunk(sec(1.0))
    second = proc.process_iter()
    assert second[0] >= first[1] and second[0] < second[1] <= 2.0
    assert all(s < e for s, e, _ in proc.last_words())


def test_reference_times_clamp_each_emission_1_ms_after_the_last_one():
    dec = ScriptedTokenDecoder([[(" a", 10), (" b", 10)], [(" c", 5)]])
    proc = AlignAttProcessor(dec, frame_threshold=4, timestamps="reference", last_word="commit")
    proc.insert_audio_chunk(sec(1.0))
    assert proc.process_iter() == (0.2, pytest.approx(0.201), " a b")  # zero-length span stretched by 1 ms
    proc.insert_audio_chunk(sec(1.0))
    start, end, _ = proc.process_iter()  # " c" attends at 0.1 s: before the last emission
    assert start == pytest.approx(0.202) and end == pytest.approx(0.203)


# -- configuration ---------------------------------------------------------------------------


def test_reference_mode_resolves_to_simulstreaming_and_a_named_option_overrides_it():
    ref = alignatt_settings(PolicyConfig(policy="alignatt", reference_mode=True) if "reference_mode" in PolicyConfig.model_fields
                            else _whisper_config(reference_mode=True))
    for key in ("frame_threshold", "max_buffer_sec", "last_word", "cut", "rewind_threshold", "timestamps", "context_trim",
                "final_frame_threshold", "max_new_tokens"):
        assert ref["processor"][key] == SIMULSTREAMING[key], key
    assert ref["decoder"] == {"heads": "upper-half", "suppress": "special", "std_epsilon": 0.0, "max_context_tokens": None}
    lab = alignatt_settings(_whisper_config())
    assert lab["processor"]["last_word"] == "hold" and lab["processor"]["cut"] == "after"
    assert lab["processor"]["max_buffer_sec"] == 15.0  # follows buffer_trimming_sec (15 by default)
    assert lab["decoder"] == {"heads": "model", "suppress": "non-speech", "std_epsilon": 1e-8, "max_context_tokens": -1}
    one = alignatt_settings(_whisper_config(reference_mode=True, alignatt_last_word="punctuation", alignatt_final_threshold="eot"))
    assert one["processor"]["last_word"] == "punctuation" and one["processor"]["final_frame_threshold"] is None
    assert one["processor"]["cut"] == "chunk"  # the rest stays the reference's
    assert set(ALIGNATT_REFERENCE) <= set(one["fields"])
    with pytest.raises(ValueError, match="alignatt_cut='chunk' tunes policy 'alignatt'"):
        _whisper_config(policy="local-agreement", alignatt_cut="chunk")


def _whisper_config(**fields):
    from asr_lab.backends.whisper_common import WhisperConfig

    return WhisperConfig(**{"policy": "alignatt", **fields})


def test_policy_processor_builds_alignatt_with_the_resolved_options():
    dec = ScriptedTokenDecoder([])
    proc = policy_processor(ScriptedASR([]), _whisper_config(reference_mode=True), decoder=dec)
    assert isinstance(proc, AlignAttProcessor)
    assert (proc.cut, proc.last_word, proc.timestamps, proc.max_buffer_sec) == ("chunk", "commit", "reference", 30.0)
    assert proc.settings["reference_mode"] is True


# -- real tiny.en weights, real LibriVox speech ------------------------------------------------

LIBRIVOX_LONG = "datasets/librivox/long/librivox-long.flac"


@pytest.fixture(scope="module")
def real():
    pytest.importorskip("whisper")
    from asr_lab.backends.openai_whisper import OpenAIWhisperConfig, resolve_checkpoint
    from asr_lab.core.config import ConfigError

    try:
        resolve_checkpoint(OpenAIWhisperConfig(model="tiny.en"))
    except ConfigError as exc:
        pytest.skip(f"real tiny.en weights not installed: {exc}")
    import os

    if not os.path.exists(LIBRIVOX_LONG):
        pytest.skip(f"{LIBRIVOX_LONG} is missing")
    return asr_lab.load_audio(LIBRIVOX_LONG)


def _load(**fields):
    return asr_lab.load_processor({"backend": "openai-whisper", "model": "tiny.en", "lan": "en", "policy": "alignatt",
                                   "device": "cpu", **fields})


@pytest.mark.slow
def test_real_alignatt_past_30_s_never_decodes_more_than_the_encoder_hears_and_audits_clean(real):
    audio = np.concatenate([real, real[: 5 * 16000]])  # 32.9 s of LibriVox speech
    proc, meta = _load(alignatt_buffer_sec=30.0, min_chunk_size=2.0)
    trace = replay(proc, audio, clock="unaware", chunk_sec=2.0, warmup_sec=0)
    assert trace.ok and len(audio) / 16000 > ENCODER_SEC + 2
    assert proc.buffer_time_offset > 0 and max(proc.decoded_sec) <= ENCODER_SEC  # it cut, and never decoded > 30 s
    assert [f for f in trace.audit() if f.kind != "latency_spike"] == []  # spikes are the machine's timing
    words = [w for e in trace.emissions for w in (e.words or [])]
    assert len(words) > 60
    for (s0, e0, _), (s1, e1, _) in zip(words, words[1:]):
        assert s0 < e0 <= s1 + 1e-9 and s1 < e1
    assert meta["alignatt"]["alignatt_cut"] == "after" and meta["alignatt"]["encoder"] == "torch"


@pytest.mark.slow
def test_real_reference_mode_sets_simulstreaming_heads_and_suppression(real):
    proc, meta = _load(reference_mode=True)
    dec = proc.decoder
    assert sum(len(h) for h in dec.heads.values()) == 12 and sorted(dec.heads) == [2, 3]  # upper half of tiny.en's 4 x 6
    paren = dec.tokenizer.encode("(")[0]
    assert not bool(dec.suppress[paren]) and bool(dec.suppress[dec.tokenizer.sot])
    lab, _ = _load()
    assert bool(lab.decoder.suppress[paren]) and sum(len(h) for h in lab.decoder.heads.values()) < 12  # official heads


@pytest.mark.slow
@pytest.mark.parametrize("fields", [{"encoder": "ctranslate2-int8"}, {"audio_ctx": True}])
def test_real_fast_encoders_transcribe_librivox(real, fields):
    pytest.importorskip("ctranslate2")
    from asr_lab.metrics import ENGLISH_NORMALIZER, wer

    audio = real[: int(7.1 * 16000)]  # the first utterance
    text = "and mister john dashwood had then leisure to consider how much there might be prudently in his power to do for them"
    proc, meta = _load(**fields)
    trace = replay(proc, audio, clock="unaware", chunk_sec=1.0, warmup_sec=0)
    assert trace.ok and len(trace.emissions) >= 2
    assert wer(reference=ENGLISH_NORMALIZER(text), hypothesis=ENGLISH_NORMALIZER(trace.text)).rate <= 0.3
    assert [f for f in trace.audit() if f.kind != "latency_spike"] == []  # spikes are the machine's timing
    assert {k: meta["alignatt"][k] for k in fields} == fields


@pytest.mark.slow
def test_real_alignatt_with_vac_decodes_each_utterance_and_takes_the_vad_knobs(real):
    pytest.importorskip("onnxruntime")
    from asr_lab.metrics import ENGLISH_NORMALIZER, wer
    from asr_lab.policies.vac import VACOnlineASRProcessor

    ds = asr_lab.load_dataset("datasets/librivox")
    long = next(u for u in ds if u.id == "librivox-long")
    cut = 11.3  # the first two utterances and the pause between them
    text = " ".join(w[2] for w in long.words if w[1] <= cut)
    proc, meta = _load(vac=True, vac_min_silence_ms=400.0)
    assert isinstance(proc, VACOnlineASRProcessor) and isinstance(proc.online, AlignAttProcessor)
    assert meta["vac"] is True
    trace = replay(proc, real[: int(cut * 16000)], clock="unaware", chunk_sec=0.04, warmup_sec=0)
    assert trace.ok and len(trace.emissions) >= 3
    assert wer(reference=ENGLISH_NORMALIZER(text), hypothesis=ENGLISH_NORMALIZER(trace.text)).rate <= 0.3
    assert [f for f in trace.audit() if f.kind != "latency_spike"] == []  # spikes are the machine's timing


@pytest.mark.slow
def test_real_alignatt_on_mlx_whisper_transcribes_librivox(real):
    pytest.importorskip("mlx_whisper")
    from asr_lab.metrics import ENGLISH_NORMALIZER, wer

    proc, meta = asr_lab.load_processor({"backend": "mlx-whisper", "model": "tiny.en", "lan": "en", "policy": "alignatt"})
    assert isinstance(proc, AlignAttProcessor) and meta["alignatt"]["encoder"] == "mlx"
    long = next(u for u in asr_lab.load_dataset("datasets/librivox") if u.id == "librivox-long")
    a, b = 7.8, 11.1  # the second utterance (mlx on a Linux CPU is slow)
    audio = real[int(a * 16000): int(b * 16000)]
    text = " ".join(w[2] for w in long.words if w[0] >= a and w[1] <= b)
    assert len(text.split()) == 8
    trace = replay(proc, audio, clock="unaware", chunk_sec=1.0, warmup_sec=0)
    assert trace.ok and len(trace.emissions) >= 2
    assert wer(reference=ENGLISH_NORMALIZER(text), hypothesis=ENGLISH_NORMALIZER(trace.text)).rate <= 0.3
    assert [f for f in trace.audit() if f.kind != "latency_spike"] == []  # spikes are the machine's timing
