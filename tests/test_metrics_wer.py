"""WER / CER, the normaliser, the aligner and the corpus accumulator — checked by hand and against jiwer."""

import math
import subprocess
import sys
from dataclasses import replace

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr_lab.metrics import (
    ENGLISH_NORMALIZER,
    ErrorCounts,
    TextNormalizer,
    WERAccumulator,
    align_words,
    cer,
    normalize_text,
    wer,
)

VOCAB = ["a", "the", "cat", "sat", "on", "mat", "dog", "ran", "to", "b"]
sentences = st.lists(st.sampled_from(VOCAB), min_size=0, max_size=12).map(" ".join)
nonempty = st.lists(st.sampled_from(VOCAB), min_size=1, max_size=12).map(" ".join)


# ---------------------------------------------------------------- hand-computed cases


def test_hand_computed_counts():
    # ref: the cat sat on the mat ; hyp: the cat sit on mat
    # the=the, cat=cat, sat->sit (S), on=on, the (D), mat=mat
    c = wer(reference="the cat sat on the mat", hypothesis="the cat sit on mat")
    assert (c.substitutions, c.deletions, c.insertions, c.hits) == (1, 1, 0, 4)
    assert c.reference_length == 6 and c.hypothesis_length == 5
    assert c.errors == 2
    assert c.rate == pytest.approx(2 / 6)
    i = wer(reference="a b", hypothesis="a b c")
    assert (i.substitutions, i.deletions, i.insertions, i.hits) == (0, 0, 1, 2) and i.rate == 0.5


def test_normalisation_makes_case_and_punctuation_free():
    c = wer(reference="Hello, World! Don't stop.", hypothesis="hello world don't stop")
    assert c.rate == 0.0 and c.hits == 4
    raw = wer(reference="Hello, World!", hypothesis="hello world", normalize=None)
    assert raw.substitutions == 2 and raw.rate == 1.0


def test_perfect_and_all_wrong():
    assert wer(reference="a b c", hypothesis="a b c").rate == 0.0
    c = wer(reference="a b c", hypothesis="x y z")
    assert c.substitutions == 3 and c.rate == 1.0


def test_wer_can_exceed_one():
    c = wer(reference="a", hypothesis="x y z")
    assert c.errors == 3 and c.rate == 3.0


def test_empty_hypothesis_is_all_deletions():
    c = wer(reference="one two three", hypothesis="")
    assert (c.deletions, c.hits, c.insertions) == (3, 0, 0) and c.rate == 1.0


def test_empty_reference_rate_is_ieee_quotient():
    c = wer(reference="", hypothesis="extra words")
    assert c.insertions == 2 and c.reference_length == 0
    assert c.rate == math.inf
    both = wer(reference="  ", hypothesis="")
    assert both.errors == 0 and math.isnan(both.rate)
    # punctuation-only reference is empty after normalisation
    assert wer(reference="...", hypothesis="uh").rate == math.inf


def test_cer_hand_computed():
    c = cer(reference="abc de", hypothesis="abd de")
    assert c.unit == "char" and c.substitutions == 1 and c.reference_length == 6
    assert c.rate == pytest.approx(1 / 6)
    assert cer(reference="", hypothesis="ab").insertions == 2
    assert cer(reference="ab", hypothesis="").deletions == 2


# ---------------------------------------------------------------- cross-check against jiwer


@settings(max_examples=150, deadline=None)
@given(reference=nonempty, hypothesis=nonempty)
def test_wer_matches_jiwer(reference, hypothesis):
    ours = wer(reference=reference, hypothesis=hypothesis, normalize=None)
    theirs = jiwer.process_words(reference, hypothesis)
    assert (ours.substitutions, ours.deletions, ours.insertions, ours.hits) == (
        theirs.substitutions,
        theirs.deletions,
        theirs.insertions,
        theirs.hits,
    )
    assert ours.rate == pytest.approx(jiwer.wer(reference, hypothesis))


@settings(max_examples=100, deadline=None)
@given(reference=nonempty, hypothesis=nonempty)
def test_cer_matches_jiwer(reference, hypothesis):
    ours = cer(reference=reference, hypothesis=hypothesis, normalize=None)
    assert ours.rate == pytest.approx(jiwer.cer(reference, hypothesis))


@settings(max_examples=150, deadline=None)
@given(reference=sentences, hypothesis=sentences)
def test_aligner_is_a_minimum_edit_alignment(reference, hypothesis):
    ref, hyp = reference.split(), hypothesis.split()
    pairs = align_words(reference=ref, hypothesis=hyp)
    # a valid alignment: covers both sequences once, in order
    assert [p.ref_index for p in pairs if p.ref_index is not None] == list(range(len(ref)))
    assert [p.hyp_index for p in pairs if p.hyp_index is not None] == list(range(len(hyp)))
    for p in pairs:
        if p.op == "match":
            assert ref[p.ref_index] == hyp[p.hyp_index]
        elif p.op == "substitution":
            assert ref[p.ref_index] != hyp[p.hyp_index]
    edits = sum(p.op != "match" for p in pairs)
    expected = wer(reference=reference, hypothesis=hypothesis, normalize=None)
    assert edits == expected.errors  # same edit distance as jiwer
    assert sum(p.op == "match" for p in pairs) >= expected.hits  # and at least as many matches


def test_aligner_prefers_an_unbroken_run():
    pairs = align_words(reference=["the", "cat", "the", "dog"], hypothesis=["the", "dog"])
    assert [(p.op, p.ref_index, p.hyp_index) for p in pairs] == [
        ("deletion", 0, None),
        ("deletion", 1, None),
        ("match", 2, 0),
        ("match", 3, 1),
    ]


def test_aligner_prefers_matches_among_equal_cost():
    # "a b" vs "b c": cost 2 either as S,S or as D(a), b=b, I(c); the latter has a match
    pairs = align_words(reference=["a", "b"], hypothesis=["b", "c"])
    assert [p.op for p in pairs] == ["deletion", "match", "insertion"]


def test_aligner_rejects_strings():
    with pytest.raises(TypeError, match=r"split it first"):
        align_words(reference="a b", hypothesis=["a"])


# ---------------------------------------------------------------- normaliser


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello,   WORLD!", "hello world"),
        ("don't  o'clock", "don't o'clock"),
        ("It\u2019s", "it's"),  # typographic apostrophe becomes ASCII
        ("'quoted' dogs' toys", "quoted dogs toys"),
        ("well-known end.Next", "well known end next"),
        ("3.5 million, 1,000 people.", "3.5 million 1,000 people"),
        ("twenty 20", "twenty 20"),  # numbers left as they are
        ("$5 + \u20ac3", "$5 + \u20ac3"),  # symbols (Unicode S*) are not punctuation
        ("100% #1 a&b", "100 1 a b"),  # but % # & are (Unicode Po)
        ("\uff26\uff55\uff4c\uff4c", "full"),  # full-width letters (NFKC)
        ("  \n\t ", ""),
    ],
)
def test_english_normalizer(text, expected):
    assert ENGLISH_NORMALIZER(text) == expected


def test_normalizer_options_compose():
    keep_case = replace(ENGLISH_NORMALIZER, lowercase=False)
    assert keep_case("Hello, World") == "Hello World"
    with_okay = TextNormalizer(replacements=(("okay", "ok"),))
    assert with_okay("Okay, fine") == "ok fine"
    no_fillers = ENGLISH_NORMALIZER.then(lambda s: " ".join(w for w in s.split() if w not in {"uh", "um"}))
    assert no_fillers("Uh, I um think") == "i think"
    assert ENGLISH_NORMALIZER("Uh, I") == "uh i"  # the original is unchanged
    assert wer(reference="I think", hypothesis="uh I think", normalize=no_fillers).rate == 0.0


def test_normalizer_bad_options_and_steps():
    with pytest.raises(ValueError, match="unicode_form"):
        TextNormalizer(unicode_form="NFX")
    with pytest.raises(TypeError, match=r"replacements\[0\]"):
        TextNormalizer(replacements=("okay",))
    with pytest.raises(TypeError, match="callable"):
        ENGLISH_NORMALIZER.then("lower")
    bad = ENGLISH_NORMALIZER.then(lambda s: s.split())
    with pytest.raises(TypeError, match=r"extra_steps\[0\].*returned list"):
        bad("a b")


# ---------------------------------------------------------------- bad input


def test_hypothesis_must_be_a_string():
    with pytest.raises(TypeError, match=r"hypothesis must be a str, got list \['a', 'b'\].*join"):
        wer(reference="a b", hypothesis=["a", "b"])
    with pytest.raises(TypeError, match="reference must be a str, got NoneType"):
        cer(reference=None, hypothesis="a")


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        wer("a", "b")  # type: ignore[misc]


def test_bad_normalize_argument():
    with pytest.raises(TypeError, match="normalize must be a callable"):
        wer(reference="a", hypothesis="a", normalize="english")
    with pytest.raises(TypeError, match="returned list"):
        normalize_text("a b", lambda s: s.split())


def test_error_counts_validation_and_roundtrip():
    c = ErrorCounts(1, 2, 3, 4)
    assert ErrorCounts.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="deletions must be a non-negative int, got -1"):
        ErrorCounts(0, -1, 0, 0)
    with pytest.raises(ValueError, match="keep WER and CER apart"):
        _ = c + ErrorCounts(0, 0, 0, 1, unit="char")


# ---------------------------------------------------------------- corpus accumulator


def test_accumulator_sums_errors_never_means_rates():
    acc = WERAccumulator()
    acc.update(reference="a b c d e f g h i", hypothesis="a b c d e f g h i")  # 0 / 9
    acc.update(reference="x", hypothesis="y")  # 1 / 1
    total = acc.compute()
    assert len(acc) == 2
    assert total.errors == 1 and total.reference_length == 10
    assert total.rate == pytest.approx(0.1)  # not (0 + 1) / 2


def test_accumulator_matches_jiwer_corpus_wer():
    refs = ["the cat sat", "on the mat", "a dog ran to the mat", ""]
    hyps = ["the cat sit", "on mat", "a dog ran", "extra"]
    acc = WERAccumulator()
    for r, h in zip(refs, hyps):
        acc.update(reference=r, hypothesis=h)
    # jiwer's list form is also summed counts; it cannot take the empty reference, so add its insertion by hand
    j = jiwer.process_words(refs[:3], hyps[:3])
    expected = (j.substitutions + j.deletions + j.insertions + 1) / (j.hits + j.substitutions + j.deletions)
    assert acc.compute().rate == pytest.approx(expected)


def test_cer_accumulator_and_add():
    acc = WERAccumulator(unit="char")
    acc.update(reference="ab", hypothesis="ab")
    acc.add(cer(reference="cd", hypothesis="ce"))
    assert acc.compute().rate == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="keep WER and CER apart"):
        acc.add(wer(reference="a", hypothesis="a"))
    with pytest.raises(TypeError, match="add\\(\\) takes an ErrorCounts"):
        acc.add(0.5)
    acc.reset()
    assert len(acc) == 0 and math.isnan(acc.compute().rate)


def test_importing_metrics_does_not_import_jiwer():
    code = "import sys, asr_lab.metrics; print('jiwer' in sys.modules, 'rapidfuzz' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
