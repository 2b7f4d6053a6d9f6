"""Named text normalisers: WER under each equals jiwer's on the texts the normaliser itself produces."""

from __future__ import annotations

import pickle

import jiwer
import pytest
from whisper_normalizer.basic import BasicTextNormalizer
from whisper_normalizer.english import EnglishTextNormalizer

from asr_lab.metrics import ENGLISH_NORMALIZER, wer
from asr_lab.metrics.normalizers import DEFAULT_NORMALIZER, get_normalizer, normalizer_name

CASES = {  # (reference as a prompt transcript says it, hypothesis as Whisper writes it)
    "numbers": ("To execute an echo test dial six hundred.", "To execute an echo test, dial 600."),
    "decimals": ("at least a twenty-eight point eight kilobit modem", "at least a 28.8 kilobit modem"),
    "symbols": ("press star to toggle pause", "Press * to toggle pause."),
    "contractions": ("If you'd like to test it, it's easy.", "If you would like to test it, it is easy."),
    "spellings": ("The colour of the centre.", "the color of the center"),
}
REFERENCE_NORMALIZERS = {"whisper-english": EnglishTextNormalizer(), "whisper-basic": BasicTextNormalizer(), "basic": ENGLISH_NORMALIZER}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", ["whisper-english", "whisper-basic", "basic", "none"])
def test_wer_under_each_normalizer_matches_jiwer_on_the_normalizers_own_output(case, name):
    reference, hypothesis = CASES[case]
    ref_norm = REFERENCE_NORMALIZERS.get(name, str)
    expected = jiwer.wer(" ".join(ref_norm(reference).split()), " ".join(ref_norm(hypothesis).split()))
    assert wer(reference=reference, hypothesis=hypothesis, normalize=name).rate == pytest.approx(expected)


def test_the_english_normalizer_forgives_what_the_field_forgives():
    for case in ("numbers", "decimals", "contractions", "spellings"):
        reference, hypothesis = CASES[case]
        assert wer(reference=reference, hypothesis=hypothesis, normalize="whisper-english").rate == 0, case
        assert wer(reference=reference, hypothesis=hypothesis, normalize="basic").rate > 0, case
    # a symbol it has no word for is dropped: "press *" scores one deletion against "press star"
    counts = wer(reference=CASES["symbols"][0], hypothesis=CASES["symbols"][1], normalize="whisper-english")
    assert (counts.deletions, counts.substitutions, counts.insertions) == (1, 0, 0)


def test_default_and_names():
    assert DEFAULT_NORMALIZER == "whisper-english"
    assert get_normalizer("none") is None and get_normalizer(str.lower) is str.lower
    assert normalizer_name(get_normalizer("whisper-english")) == "whisper-english"
    assert normalizer_name(ENGLISH_NORMALIZER) == "basic" and normalizer_name(None) == "none"
    again = pickle.loads(pickle.dumps(get_normalizer("whisper-english")))
    assert again("Dial five hundred") == "dial 500"
    with pytest.raises(ValueError, match="one of 'whisper-english', 'whisper-basic', 'basic', 'none'; got 'english'"):
        get_normalizer("english")


def test_score_names_its_normalizer_and_keeps_the_raw_rate():
    from asr_lab.metrics import score
    from asr_lab.replay.trace import Emission, Trace

    emission = Emission(0.0, 1.0, "Dial 500 now.", emitted_at=1.0, compute_sec=0.1, audio_fed=1.0, step=0)
    trace = Trace(emissions=[emission], meta={"duration": 2.0, "clock": "virtual"})
    reference = {"text": "dial five hundred now", "words": [(0.1, 0.3, "dial"), (0.3, 0.6, "five"), (0.6, 0.9, "hundred"), (0.9, 1.0, "now")]}
    scores = score(trace, reference)
    assert scores.normalizer == "whisper-english" and scores.wer.rate == 0
    assert scores.wer_raw.rate == pytest.approx(jiwer.wer("dial five hundred now", "Dial 500 now."))
    row = scores.to_dict()
    assert row["normalizer"] == "whisper-english" and row["wer"] == 0 and row["wer_raw"] == scores.wer_raw.rate
    basic = score(trace, reference, normalize="basic")
    assert basic.normalizer == "basic" and basic.wer.rate == pytest.approx(jiwer.wer("dial five hundred now", "dial 500 now"))
    # latencies pair single words with the basic normaliser under both: "dial" and "now" match
    assert scores.latency.to_dict()["latency_count"] == basic.latency.to_dict()["latency_count"] == 2
