"""LocalAgreement-2 (OnlineASRProcessor) against hand-computed steps of the published policy."""

import numpy as np
import pytest

from asr_lab import HypothesisBuffer, OnlineASRProcessor
from asr_lab.policies.local_agreement import split_sentences
from asr_lab.testing import ScriptedASR, ScriptedAnswer, TimelineASR, words_from_text

SR = 16000


def sec(x):
    return np.zeros(int(x * SR), dtype=np.float32)


# -- HypothesisBuffer ------------------------------------------------------------------


def test_flush_commits_common_prefix_with_newest_timestamps():
    hb = HypothesisBuffer()
    hb.insert([(0.0, 0.5, "a"), (0.6, 1.0, "b"), (1.1, 1.5, "c")], offset=0.0)
    assert hb.flush() == []  # nothing to agree with yet
    hb.insert([(0.02, 0.52, "a"), (0.62, 1.02, "b"), (1.1, 1.5, "x")], offset=0.0)
    assert hb.flush() == [(0.02, 0.52, "a"), (0.62, 1.02, "b")]
    assert hb.last_committed_time == 1.02 and hb.last_committed_word == "b"
    assert hb.unconfirmed() == [(1.1, 1.5, "x")]
    assert hb.committed_in_buffer == [(0.02, 0.52, "a"), (0.62, 1.02, "b")]


def test_insert_shifts_by_offset_and_drops_words_before_last_commit():
    hb = HypothesisBuffer(offset=10.0)
    # 9.95 > 10 - 0.1 is kept; 9.9, exactly at the border, is not (strictly greater)
    hb.insert([(-0.5, -0.2, "old"), (-0.1, 0.2, "edge"), (-0.05, 0.3, "kept"), (0.5, 0.9, "new")], offset=10.0)
    assert [w[2] for w in hb.current] == ["kept", "new"]
    assert hb.current[1] == (10.5, 10.9, "new")


def test_insert_removes_repeated_ngram_at_the_commit_boundary():
    hb = HypothesisBuffer()
    hb.insert([(0, 1, "one"), (1, 2, "two"), (2, 3, "three")], 0)
    hb.flush()
    hb.insert([(0, 1, "one"), (1, 2, "two"), (2, 3, "three")], 0)
    assert len(hb.flush()) == 3 and hb.last_committed_time == 3
    # the recogniser repeats "two three" at the boundary with shifted times
    hb.insert([(2.95, 3.3, "two"), (3.3, 3.6, "three"), (3.7, 4.0, "four")], 0)
    assert [w[2] for w in hb.current] == ["four"]


def test_ngram_removal_only_within_one_second_of_last_commit():
    hb = HypothesisBuffer()
    hb.insert([(0, 1, "one")], 0)
    hb.flush()
    hb.insert([(0, 1, "one")], 0)
    hb.flush()
    hb.insert([(2.5, 3.0, "one"), (3.1, 3.5, "more")], 0)  # 1.5 s after the commit: kept
    assert [w[2] for w in hb.current] == ["one", "more"]


def test_ngram_match_uses_the_shortest_matching_n():
    hb = HypothesisBuffer()
    words = [(0, 0.5, "a"), (0.5, 1.0, "b"), (1.0, 1.5, "a")]
    hb.insert(words, 0)
    hb.flush()
    hb.insert(words, 0)
    hb.flush()
    # committed ends with "a"; new head "a b a ..." matches n=1 first -> only one word dropped
    hb.insert([(1.45, 1.6, "a"), (1.6, 1.8, "b"), (1.8, 2.0, "a"), (2.0, 2.2, "c")], 0)
    assert [w[2] for w in hb.current] == ["b", "a", "c"]


def test_pop_committed_drops_words_ending_at_or_before_time():
    hb = HypothesisBuffer()
    hb.committed_in_buffer = [(0, 1, "a"), (1, 2, "b"), (2, 3, "c")]
    hb.pop_committed(2.0)
    assert hb.committed_in_buffer == [(2, 3, "c")]


# -- OnlineASRProcessor, step by step ---------------------------------------------------


def test_two_agreeing_hypotheses_commit_and_partial_shows_the_rest():
    asr = ScriptedASR(
        [
            [(0.0, 0.4, "hello"), (0.5, 0.9, "world")],
            [(0.02, 0.42, "hello"), (0.5, 0.92, "world"), (1.2, 1.6, "again")],
        ]
    )
    p = OnlineASRProcessor(asr)
    p.init()
    p.insert_audio_chunk(sec(1.0))
    assert p.process_iter() is None
    assert p.partial() == (0.0, 0.9, "hello world")
    p.insert_audio_chunk(sec(1.0))
    assert p.process_iter() == (0.02, 0.92, "hello world")
    assert p.partial() == (1.2, 1.6, "again")
    assert [c.n_samples for c in asr.calls] == [16000, 32000]
    assert p.finish() == (1.2, 1.6, "again")
    assert p.buffer_time_offset == pytest.approx(2.0)


def test_times_are_absolute_after_init_offset():
    asr = ScriptedASR([[(0.1, 0.5, "a")], [(0.1, 0.5, "a")]])
    p = OnlineASRProcessor(asr)
    p.init(offset=30.0)
    p.insert_audio_chunk(sec(1))
    p.process_iter()
    p.insert_audio_chunk(sec(1))
    assert p.process_iter() == (30.1, 30.5, "a")


def test_segment_trimming_cuts_at_second_to_last_segment_end_inside_committed_part():
    a = [(0.0, 0.4, "one"), (0.5, 0.9, "two"), (1.5, 1.9, "three"), (2.5, 2.9, "four")]
    answers = [
        ScriptedAnswer(a[:2], [0.9]),
        ScriptedAnswer(a[:3], [0.9, 1.9]),
        ScriptedAnswer(a, [0.9, 1.9, 2.9]),
    ]
    asr = ScriptedASR(answers)
    p = OnlineASRProcessor(asr, buffer_trimming=("segment", 2))
    p.init()
    for _ in range(3):
        p.insert_audio_chunk(sec(1.0))
        out = p.process_iter()
    # third call: committed up to "three" (end 1.9); ends [0.9, 1.9, 2.9]; e = 1.9 <= 1.9 -> cut at 1.9
    assert out == (1.5, 1.9, "three")
    assert p.buffer_time_offset == pytest.approx(1.9)
    assert len(p.audio_buffer) == 3 * SR - int(1.9 * SR)
    assert p.transcript_buffer.committed_in_buffer == []  # all committed words ended by 1.9


def test_segment_trimming_walks_back_to_an_end_before_the_last_commit():
    words = [(0.0, 0.4, "one"), (0.5, 0.9, "two"), (1.5, 1.9, "three"), (2.5, 2.9, "four")]
    asr = ScriptedASR([ScriptedAnswer(words[:2], [0.9]), ScriptedAnswer(words, [0.9, 1.9, 2.9, 3.5])])
    p = OnlineASRProcessor(asr, buffer_trimming=("segment", 1))
    p.init()
    p.insert_audio_chunk(sec(2))
    p.process_iter()
    p.insert_audio_chunk(sec(2))
    assert p.process_iter() == (0.0, 0.9, "one two")
    # ends [.9, 1.9, 2.9, 3.5]: e = 2.9 > .9 -> drop -> e = 1.9 > .9 -> drop -> e = .9 <= .9: cut
    assert p.buffer_time_offset == pytest.approx(0.9)


def test_segment_trimming_needs_two_ends_and_a_commit():
    asr = ScriptedASR([ScriptedAnswer([(0, 0.5, "a")], [0.5])] * 3)
    p = OnlineASRProcessor(asr, buffer_trimming=("segment", 1))
    p.init()
    for _ in range(3):
        p.insert_audio_chunk(sec(1))
        p.process_iter()
    assert p.buffer_time_offset == 0.0  # one segment end only: never cut


def test_prompt_skips_last_committed_word_and_words_inside_buffer():
    p = OnlineASRProcessor(ScriptedASR([]))
    p.init()
    p.committed = [(0, 1, "a"), (1, 2, "b"), (2, 3, "c"), (3, 4, "d")]
    p.buffer_time_offset = 10.0
    assert p.prompt() == "a b c"  # k = len - 1: "d" is never in the prompt
    p.buffer_time_offset = 2.5  # "c" (ends 3) is still inside the buffer
    assert p.prompt() == "a b"


def test_prompt_is_about_200_characters_and_keeps_the_crossing_word():
    p = OnlineASRProcessor(ScriptedASR([]))
    p.init()
    p.buffer_time_offset = 1e6
    p.committed = [(i, i + 1, f"w{i:08d}") for i in range(100)]  # 9 chars + 1 = 10 per word
    assert len(p.prompt().split()) == 20  # 0, 10, ..., 190 < 200: the 20th word reaches exactly 200
    p.committed = [(i, i + 1, f"x{i:09d}") for i in range(100)]  # 11 per word
    words = p.prompt().split()
    assert len(words) == 19 and words[-1] == "x000000098"  # 198 < 200 -> one more word, 209


def test_prompt_joins_with_the_engines_separator():
    asr = ScriptedASR([])
    asr.sep = ""
    p = OnlineASRProcessor(asr)
    p.init()
    p.buffer_time_offset = 100
    p.committed = [(0, 1, " Hello"), (1, 2, " big"), (2, 3, " world")]
    assert p.prompt() == " Hello big"


def test_prompt_and_audio_window_reach_the_asr():
    words = words_from_text("alpha beta gamma delta epsilon zeta eta theta", pause_every=2)
    asr = TimelineASR(words)
    p = OnlineASRProcessor(asr, buffer_trimming=("segment", 2))
    p.init()
    audio = TimelineASR.stream_audio(8.0)
    for i in range(0, len(audio), SR):
        p.insert_audio_chunk(audio[i : i + SR])
        p.process_iter()
    assert any(c.prompt for c in asr.calls), "trimmed committed text must come back as a prompt"
    for call in asr.calls:
        assert call.start_sample / SR == pytest.approx(round(call.start_sample / SR, 4), abs=1e-4)


def test_sentence_trimming_cuts_after_the_second_to_last_sentence():
    text = "Hi there. How are you? Fine thanks."
    words = [(0.0, 0.3, "Hi"), (0.4, 0.7, "there."), (1.5, 1.8, "How"), (1.9, 2.1, "are"), (2.2, 2.5, "you?"),
             (3.2, 3.5, "Fine"), (3.5, 3.8, "thanks.")]
    assert split_sentences(text) == ["Hi there.", "How are you?", "Fine thanks."]
    asr = ScriptedASR([words, words])
    p = OnlineASRProcessor(asr, buffer_trimming=("sentence", 3))
    p.init()
    p.insert_audio_chunk(sec(2))
    p.process_iter()
    p.insert_audio_chunk(sec(2))
    assert p.process_iter()[2] == text
    assert p.words_to_sentences(p.committed) == [(0.0, 0.7, "Hi there."), (1.5, 2.5, "How are you?"), (3.2, 3.8, "Fine thanks.")]
    assert p.buffer_time_offset == pytest.approx(2.5)
    assert len(p.audio_buffer) == 4 * SR - int(2.5 * SR)


def test_one_word_sentence_is_not_closed_as_in_the_reference():
    # the reference's matcher sets a one-word sentence's start but never its end, and the
    # words after it are consumed: kept as is, so trimming points stay identical
    words = [(0.0, 0.3, "Hi"), (0.4, 0.7, "there."), (1.0, 1.3, "Yes."), (1.5, 1.8, "Good"), (1.9, 2.2, "bye.")]
    p = OnlineASRProcessor(ScriptedASR([]), buffer_trimming=("sentence", 1))
    assert p.words_to_sentences(words) == [(0.0, 0.7, "Hi there.")]


def test_sentence_mode_accepts_a_tokenizer_object_or_callable():
    class Splitter:
        def split(self, text):
            return [s if s.endswith(".") else s + "." for s in text.split(". ")]

    words = [(0, 0.5, "a"), (0.5, 1, "a."), (1, 1.5, "b"), (1.5, 2, "b."), (2, 2.5, "c"), (2.5, 3, "c.")]
    for tok in (Splitter(), lambda t: [x if x.endswith(".") else x + "." for x in t.split(". ")]):
        p = OnlineASRProcessor(ScriptedASR([words, words]), buffer_trimming=("sentence", 1), tokenizer=tok)
        p.init()
        for _ in range(2):
            p.insert_audio_chunk(sec(2))
            p.process_iter()
        assert p.buffer_time_offset == 2.0  # cut at the end of "b."


def test_sentence_mode_without_new_commit_does_not_cut_at_sentences():
    words = [(0, 1, "a."), (1, 2, "b."), (2, 3, "c.")]
    asr = ScriptedASR([words, words, words])
    p = OnlineASRProcessor(asr, buffer_trimming=("sentence", 100))
    p.init()
    for _ in range(3):
        p.insert_audio_chunk(sec(2))
        p.process_iter()
    assert p.buffer_time_offset == 0.0  # buffer (6 s) below 100 s and below the 30 s cap


def test_bad_constructor_arguments_are_named():
    with pytest.raises(ValueError, match="buffer_trimming mode 'segments'"):
        OnlineASRProcessor(ScriptedASR([]), buffer_trimming=("segments", 15))
    with pytest.raises(ValueError, match="pair"):
        OnlineASRProcessor(ScriptedASR([]), buffer_trimming="segment")
    with pytest.raises(ValueError, match="min_chunk_sec=0"):
        OnlineASRProcessor(ScriptedASR([]), min_chunk_sec=0)
    with pytest.raises(TypeError, match="not an ASRBase"):
        OnlineASRProcessor(object())


# -- long streams -------------------------------------------------------------------------


@pytest.mark.parametrize("trimming", [("segment", 6), ("sentence", 6)])
@pytest.mark.parametrize("unstable", [0.0, 0.6])
def test_long_stream_commits_every_word_once_in_order_and_the_buffer_stays_bounded(trimming, unstable):
    text = " ".join(f"word{i}." if i % 7 == 6 else f"word{i}" for i in range(300))
    words = words_from_text(text, pause_every=7, pause_sec=0.6)
    duration = words[-1][1] + 1.0
    asr = TimelineASR(words, unstable_tail_sec=unstable)
    p = OnlineASRProcessor(asr, buffer_trimming=trimming)
    p.init()
    audio = TimelineASR.stream_audio(duration)
    out, longest = [], 0.0
    for i in range(0, len(audio), SR):
        p.insert_audio_chunk(audio[i : i + SR])
        o = p.process_iter()
        if o:
            out.append(o)
        longest = max(longest, len(p.audio_buffer) / SR)
    last = p.finish()
    if last:
        out.append(last)
    committed = " ".join(o[2] for o in out).split()
    assert committed == text.split()
    # word times survive trimming; each cut truncates to whole samples (as the reference
    # does), so times drift by at most one sample per cut
    assert [w[2] for w in p.committed] == [w[2] for w in words]
    cuts = len({c.start_sample for c in asr.calls})
    for got, want in zip(p.committed, words):
        assert got[:2] == pytest.approx(want[:2], abs=cuts / SR)
    assert longest < trimming[1] + 5, f"buffer grew to {longest:.1f} s"
    assert all(len(c.prompt) < 200 + 12 for c in asr.calls)


def test_spawn_shares_the_recogniser_and_keeps_state_apart():
    words = words_from_text("one two three four five six")
    asr = TimelineASR(words)
    template = OnlineASRProcessor(asr, buffer_trimming=("segment", 9), min_chunk_sec=0.5)
    a, b = template.spawn(), template.spawn()
    assert a.asr is b.asr and a.asr.asr is asr  # one serialised wrapper around the one recogniser
    assert (a.buffer_trimming, a.min_chunk_sec) == (("segment", 9.0), 0.5)
    a.init()
    b.init(offset=50.0)
    audio = TimelineASR.stream_audio(3.0)
    for i in range(0, len(audio), SR // 2):
        a.insert_audio_chunk(audio[i : i + SR // 2])
        a.process_iter()
    assert a.committed and not b.committed and b.buffer_time_offset == 50.0
    asr.thread_safe = True
    assert OnlineASRProcessor(asr).spawn().asr is asr  # a thread-safe recogniser is shared as is
