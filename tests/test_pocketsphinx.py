"""The pocketsphinx backends on real speech made here with flite: accuracy, times, partials, errors.

Speech: eight sentences written for these tests (not the tuning set), two per clear flite
voice, streamed in 250 ms chunks. WER is jiwer's, after lower-casing and removing
punctuation; the thresholds keep a margin over what was measured (see the report in
``bench/engines.py``): native ~0.06 pooled, the worst voice ~0.10.
"""

import re
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pocketsphinx")
jiwer = pytest.importorskip("jiwer")

import asr_lab
from asr_lab.backends.pocketsphinx import (
    PocketSphinxASR,
    PocketSphinxConfig,
    PocketSphinxLAConfig,
    PocketSphinxLALoader,
    PocketSphinxLoader,
    PocketSphinxProcessor,
    bundled_model,
    clean_words,
    is_filler,
    resolve_model,
)
from asr_lab.core.config import ConfigError, parse_config
from asr_lab.data.synth import synthesize
from asr_lab.testing import check_processor, sample_speech

SR = 16000
CHUNK = 0.25
VOICES = ("slt", "rms", "awb", "kal16")
SENTENCES = (
    "The farmers hope for a warm and dry summer this year.",
    "She asked her brother to fix the broken chair.",
    "A small boat sailed across the lake at dawn.",
    "The museum will open a new exhibit in the spring.",
    "He forgot his umbrella and got wet on the way home.",
    "The price of fresh fruit went up again last month.",
    "Most of the guests arrived late because of the snow.",
    "Our teacher told us to read the first chapter tonight.",
)


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


def wer(references, hypotheses) -> float:
    """Corpus WER (summed errors / summed reference words) with jiwer."""
    return jiwer.wer([normalize(r) for r in references], [normalize(h) for h in hypotheses])


def stream(processor, audio, chunk_sec=CHUNK, offset=0.0, partials=None):
    """Drive ``processor`` like the replayer: init, chunks + process_iter (+ partial), finish."""
    processor.init(offset)
    step = int(chunk_sec * SR)
    out = []
    for i in range(0, len(audio), step):
        processor.insert_audio_chunk(audio[i : i + step])
        segment = processor.process_iter()
        if segment is not None:
            out.append(segment)
        if partials is not None:
            partials.append(((i + len(audio[i : i + step])) / SR, processor.partial()))
    segment = processor.finish()
    if segment is not None:
        out.append(segment)
    return out


@pytest.fixture(scope="module")
def speech():
    """(voice, sentence, audio) for two sentences per voice."""
    return [(voice, text, synthesize(text, voice)) for k, voice in enumerate(VOICES) for text in SENTENCES[2 * k : 2 * k + 2]]


@pytest.fixture(scope="module")
def native():
    return PocketSphinxProcessor()


@pytest.fixture(scope="module")
def two_sentences():
    """Sentence, 1 s of silence, sentence: (audio, end of the first sentence, start of the second)."""
    first = synthesize("The committee will meet again next week.", "rms")
    second = synthesize("Please send me the report.", "slt")
    gap = np.zeros(SR, dtype=np.float32)
    lead = np.zeros(SR // 2, dtype=np.float32)
    audio = np.concatenate([lead, first, gap, second, lead])
    return audio, (len(lead) + len(first)) / SR, (len(lead) + len(first) + len(gap)) / SR


# ----------------------------------------------------------------------------- accuracy


def test_native_wer_on_clear_flite_voices(native, speech):
    refs, hyps, per_voice = [], [], {}
    for voice, text, audio in speech:
        hyp = " ".join(s[2] for s in stream(native, audio))
        refs.append(text)
        hyps.append(hyp)
        per_voice.setdefault(voice, ([], []))
        per_voice[voice][0].append(text)
        per_voice[voice][1].append(hyp)
    pooled = wer(refs, hyps)
    print(f"native WER pooled {pooled:.3f}; " + ", ".join(f"{v} {wer(*rh):.3f}" for v, rh in per_voice.items()))
    assert pooled <= 0.15
    for voice, (r, h) in per_voice.items():
        assert wer(r, h) <= 0.35, (voice, h)  # two sentences per voice: one or two words wrong at most


def test_native_final_equals_a_one_piece_decoding_of_the_utterance(native, speech):
    """The re-decoded final is exactly what decoding the utterance in one call gives."""
    audio = speech[0][2]
    streamed = " ".join(s[2] for s in stream(native, audio))
    asr = PocketSphinxASR(decoder=native.decoder)
    assert streamed == asr.transcribe(audio).text


def test_la_wer_on_the_same_speech(speech):
    processor, meta = PocketSphinxLALoader().load({"backend": "pocketsphinx-la"})
    refs, hyps = [], []
    for _, text, audio in speech[:1]:  # the full set is test_la_wer_all_voices (slow)
        refs.append(text)
        hyps.append(" ".join(s[2] for s in stream(processor, audio)))
    print(f"pocketsphinx-la WER on {len(refs)} utterances: {wer(refs, hyps):.3f}")
    assert wer(refs, hyps) <= 0.3
    assert meta["separator"] == " "


@pytest.mark.slow
def test_la_wer_all_voices(speech):
    processor, _ = PocketSphinxLALoader().load({"backend": "pocketsphinx-la"})
    refs = [text for _, text, _ in speech]
    hyps = [" ".join(s[2] for s in stream(processor, audio)) for _, _, audio in speech]
    print(f"pocketsphinx-la WER pooled: {wer(refs, hyps):.3f}")
    assert wer(refs, hyps) <= 0.2


# ----------------------------------------------------------------------------- times and segments


OFFSET = 100.0


@pytest.fixture(scope="module")
def two_sentence_run(native, two_sentences):
    """One 250 ms stream of ``two_sentences`` at offset 100 s, with what came out after every chunk."""
    audio, _, _ = two_sentences
    native.init(OFFSET)
    step = int(CHUNK * SR)
    segments, partials = [], []  # (stream time after the chunk, answer)
    for i in range(0, len(audio), step):
        native.insert_audio_chunk(audio[i : i + step])
        now = OFFSET + min(i + step, len(audio)) / SR
        segment = native.process_iter()
        if segment is not None:
            segments.append((now, segment))
        partials.append((now, native.partial()))
    segment = native.finish()
    if segment is not None:
        segments.append((OFFSET + len(audio) / SR, segment))
    return segments, partials, native.last_words(), native.partial()


def test_times_are_absolute_inside_the_audio_and_ordered(two_sentences, two_sentence_run):
    audio, first_end, second_start = two_sentences
    segments, _, last_words, _ = two_sentence_run
    out = [seg for _, seg in segments]
    assert len(out) == 2, out  # the 1 s pause is an endpoint; nothing else is
    for start, end, text in out:
        assert OFFSET <= start < end <= OFFSET + len(audio) / SR
        assert text.strip() and text == text.strip()
    assert out[0][1] <= out[1][0]
    assert out[0][1] <= OFFSET + first_end + 0.05
    assert out[1][0] >= OFFSET + second_start - 0.05
    assert last_words[-1][1] == pytest.approx(out[1][1])


def test_segment_is_committed_at_the_endpoint_not_at_finish(native, two_sentences, two_sentence_run):
    _, first_end, _ = two_sentences
    committed_at = two_sentence_run[0][0][0] - OFFSET
    silence = native.config.endpoint_silence_sec
    assert first_end + silence - 0.05 <= committed_at <= first_end + silence + CHUNK + 0.1


def test_partial_shows_the_open_utterance(two_sentences, two_sentence_run):
    _, first_end, second_start = two_sentences
    segments, partials, _, after_finish = two_sentence_run
    shown = [(t - OFFSET, p) for t, p in partials if p is not None]
    assert shown, "no partial at all"
    assert partials[0][1] is None  # 250 ms of leading silence: nothing to show
    for t, (start, end, text) in shown:
        assert OFFSET <= start <= end <= OFFSET + t + 1e-6 and text.strip()
    # during the first sentence the partial grows; after its endpoint it belongs to the second
    during_first = [p for t, p in shown if t <= first_end]
    assert len(during_first[-1][2].split()) > len(during_first[0][2].split())
    after = [p for t, p in shown if t > second_start + 0.5]
    assert after and all(p[0] >= segments[0][1][1] for p in after)
    assert after_finish is None  # finish() closed the utterance


def test_word_times_match_forced_alignment(native):
    sample = sample_speech()
    stream(native, sample.audio)
    words = native.last_words()
    assert len(words) >= 8
    assert words[0][0] == pytest.approx(sample.words[0][0], abs=0.1)
    assert words[-1][1] == pytest.approx(sample.words[-1][1], abs=0.1)
    assert all(a[1] <= b[0] + 1e-9 for a, b in zip(words, words[1:]))


def test_silence_and_empty_chunks_give_nothing(native):
    native.init()
    for _ in range(8):
        native.insert_audio_chunk(np.zeros(0, dtype=np.float32))
        native.insert_audio_chunk(np.zeros(int(CHUNK * SR), dtype=np.float32))
        assert native.process_iter() is None
        assert native.partial() is None
    assert native.finish() is None


def test_long_utterances_are_cut_at_a_pause(speech):
    audio = speech[2][2]  # ~3 s without a pause as long as the endpoint silence
    capped = PocketSphinxProcessor({"max_utterance_sec": 1.0})
    out = stream(capped, audio)
    assert len(out) >= 2, out
    assert all(a[1] <= b[0] for a, b in zip(out, out[1:]))
    assert capped.min_chunk_sec == 0.25  # the native backend's default driver step


def test_live_final_pass_also_streams(two_sentences):
    audio, _, _ = two_sentences
    live = PocketSphinxProcessor({"final_pass": "live"})
    out = stream(live, audio)
    assert len(out) == 2 and wer(["the committee will meet again next week please send me the report"], [" ".join(o[2] for o in out)]) <= 0.3


# ----------------------------------------------------------------------------- decoder reuse


def test_reinit_reuses_the_decoder_and_starts_clean(native, monkeypatch):
    import pocketsphinx

    audio = sample_speech().audio
    decoder = native.decoder
    first = stream(native, audio)

    def no_new_decoder(*args, **kwargs):
        raise AssertionError("init() must reuse the processor's decoder, not create one")

    monkeypatch.setattr(pocketsphinx, "Decoder", no_new_decoder)
    native.init()
    native.insert_audio_chunk(audio[: len(audio) // 2])  # leave an utterance open...
    native.process_iter()
    assert native.partial() is not None
    native.init()  # ...and abandon it
    assert native.decoder is decoder
    assert stream(native, audio) == first


def test_bad_chunks_are_rejected(native):
    native.init()
    for bad in (np.zeros((2, 400), dtype=np.float32), np.zeros(400, dtype=np.int32)):
        with pytest.raises(ValueError, match="1-D float32"):
            native.insert_audio_chunk(bad)
    pcm = (sample_speech().audio * 32767).astype(np.int16)  # int16 PCM is taken as it is
    native.insert_audio_chunk(pcm)
    assert native.finish() is not None


def test_loader_creates_one_decoder_and_reports_metadata():
    processor, meta = PocketSphinxLoader().load({"backend": "pocketsphinx", "lan": "en"})
    assert isinstance(processor, PocketSphinxProcessor)
    assert meta["separator"] == " " and meta["streaming"] == "native"
    assert Path(meta["hmm"]) == Path(bundled_model()["hmm"])
    assert 0 < meta["decoder_seconds"] < 5


# ----------------------------------------------------------------------------- word cleaning (stand-in segments)

SegStandIn = namedtuple("SegStandIn", "word start_frame end_frame")
"""Stands in for pocketsphinx.Segment: the fields clean_words reads, with made-up values."""


def test_clean_words_drops_fillers_and_pronunciation_marks():
    segments = [
        SegStandIn("<s>", 0, 11),
        SegStandIn("<sil>", 12, 20),
        SegStandIn("read(2)", 21, 40),
        SegStandIn("[NOISE]", 41, 45),
        SegStandIn("++UH++", 46, 50),
        SegStandIn("+NSN+", 51, 52),
        SegStandIn("books", 53, 80),
        SegStandIn("</s>", 81, 90),
    ]
    assert clean_words(segments) == [(0.21, 0.41, "read"), (0.53, 0.81, "books")]
    assert clean_words(segments, offset=10.0, limit=10.7) == [(10.21, 10.41, "read"), (10.53, 10.7, "books")]
    assert clean_words(None) == []


@pytest.mark.parametrize("word", ["<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "++UH++", "+NSN+", "<sil>(2)"])
def test_fillers(word):
    assert is_filler(word)


@pytest.mark.parametrize("word", ["a", "don't", "read(2)", "+", "c++"])
def test_words_are_not_fillers(word):
    assert not is_filler(word)


# ----------------------------------------------------------------------------- ASRBase


def test_asr_base_words_and_pause_segments(two_sentences):
    audio, first_end, _ = two_sentences
    asr = PocketSphinxASR()
    result = asr.transcribe(audio, init_prompt="ignored")
    words = asr.ts_words(result)
    assert asr.sep == " " and len(words) >= 8
    assert all(0 <= a <= b <= len(audio) / SR for a, b, _ in words)
    ends = asr.segments_end_ts(result)
    assert len(ends) >= 2 and ends == sorted(ends)
    assert any(abs(e - first_end) < 0.3 for e in ends)  # the 1 s pause ends a segment
    assert ends[-1] == words[-1][1]
    assert asr.transcribe(audio) == result  # each call starts from fresh feature statistics
    cut = asr.transcribe(audio[: int(1.0 * SR)])  # ends inside "committee"/"will"
    assert all(end <= 1.0 - asr.tail_guard_sec for _, end, _ in asr.ts_words(cut))
    assert len(asr.ts_words(cut)) < len(cut.words) or cut.words[-1][1] <= 1.0 - asr.tail_guard_sec
    assert asr.ts_words(asr.transcribe(np.zeros(2 * SR, dtype=np.float32))) == []  # digital silence


def test_la_loader_wraps_in_vac_when_asked():
    pytest.importorskip("faster_whisper")  # Silero VAD's model ships in its wheel
    from asr_lab.policies.vac import VACOnlineASRProcessor

    processor, meta = PocketSphinxLALoader().load({"backend": "pocketsphinx-la", "vac": True, "min_chunk_size": 0.5})
    assert isinstance(processor, VACOnlineASRProcessor) and meta["vac"] is True
    audio = np.concatenate([np.zeros(SR // 2, dtype=np.float32), sample_speech().audio, np.zeros(SR, dtype=np.float32)])
    text = " ".join(s[2] for s in stream(processor, audio))
    assert wer([sample_speech().text], [text]) <= 0.4


# ----------------------------------------------------------------------------- conformance


def test_native_processor_conforms(native):
    check_processor(native, chunk_sizes=(0.01, 1.0)).assert_ok()


@pytest.mark.slow
def test_la_processor_conforms():
    # the one-sentence sample: LocalAgreement commits word by word there already, and it re-decodes the
    # whole buffer each step, so the kit's 11 s default costs ~6x the CPU (47 s against 7 s)
    check_processor(lambda: PocketSphinxLALoader().load({"backend": "pocketsphinx-la"})[0], sample_speech().audio).assert_ok()


# ----------------------------------------------------------------------------- configuration and errors


def test_registry_builds_both_backends():
    processor, meta = asr_lab.load_processor({"backend": "pocketsphinx", "endpoint_silence_sec": 0.4})
    assert isinstance(processor, PocketSphinxProcessor) and processor.config.endpoint_silence_sec == 0.4
    assert meta["separator"] == " "
    rows = {b.name: b for b in asr_lab.available_backends()}
    assert rows["pocketsphinx"].installed and rows["pocketsphinx-la"].installed
    assert PocketSphinxLoader.config_class is PocketSphinxConfig
    assert PocketSphinxLALoader.config_class is PocketSphinxLAConfig


@pytest.mark.parametrize("lan", ["de", "fr", "auto"])
def test_bad_language_names_the_value_and_the_fix(lan):
    with pytest.raises(ConfigError, match=f"lan={lan!r}") as err:
        parse_config({"lan": lan}, PocketSphinxConfig)
    assert "'en'" in str(err.value)


def test_english_variants_are_accepted():
    assert parse_config({"lan": "en-US"}, PocketSphinxConfig).lan == "en-us"


def test_other_errors_name_the_value(tmp_path):
    cases = [
        ({"task": "translate"}, "task='translate'"),
        ({"vac": True}, "vac=True"),
        ({"decoder_options": {"wbeem": 1e-50}}, "did you mean 'wbeam'"),
        ({"decoder_options": {"lm": "x.lm"}}, "use 'lm'"),
        ({"endpoint_silence_sec": 0}, "endpoint_silence_sec"),
        ({"final_pass": "twice"}, "final_pass"),
    ]
    for data, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_config(data, PocketSphinxConfig)


def test_missing_model_paths_are_reported(tmp_path):
    missing = str(tmp_path / "nowhere")
    for data, message in [
        ({"model_dir": missing}, f"model_dir={missing!r} is not a folder"),
        ({"model": missing, "lan": "de"}, f"model={missing!r} is not a folder"),
        ({"hmm": str(tmp_path)}, "has no mdef"),
        ({"lm": missing}, f"lm={missing!r} does not exist"),
        ({"dictionary": missing}, f"dictionary={missing!r} does not exist"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            resolve_model(parse_config(data, PocketSphinxConfig))
    with pytest.raises(ConfigError, match="is not a folder"):
        PocketSphinxLoader().load({"model_dir": missing})


def test_a_model_folder_is_found_by_its_parts(tmp_path):
    bundled = bundled_model()
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "acoustic").symlink_to(bundled["hmm"], target_is_directory=True)
    (folder / "words.lm.bin").symlink_to(bundled["lm"])
    (folder / "words.dict").symlink_to(bundled["dict"])
    cfg = parse_config({"model_dir": str(folder), "lan": "xx"}, PocketSphinxConfig)  # any language with own model
    assert resolve_model(cfg) == {
        "hmm": str(folder / "acoustic"), "lm": str(folder / "words.lm.bin"), "dict": str(folder / "words.dict")
    }
    (folder / "other.dict").symlink_to(bundled["dict"])
    with pytest.raises(ConfigError, match="several candidates for dictionary"):
        resolve_model(cfg)
    cfg = parse_config({"model_dir": str(folder), "dictionary": str(folder / "other.dict")}, PocketSphinxConfig)
    assert resolve_model(cfg)["dict"] == str(folder / "other.dict")


def test_import_asr_lab_loads_no_engine():
    code = "import sys, asr_lab; asr_lab.available_backends(); print(sorted(m for m in ('pocketsphinx', 'librosa') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# insert sizes (1/100 s) one server stream received while falling behind; with the endpoint
# re-decode, its 18th chunk made pocketsphinx 5.1.1 crash in cmn_live before LIVE_PIECE
_BACKLOGGED_STREAM = [30, 30, 70, 30, 60, 30, 30, 30, 30, 100, 180, 190, 60, 320, 110, 230, 160, 310]
_REPLAY_BACKLOG = """
import numpy as np, sys
import asr_lab
from asr_lab.backends.pocketsphinx import PocketSphinxProcessor
audio = asr_lab.load_dataset(sys.argv[1])["long-a"].load_audio()
audio = (np.clip(audio, -1, 1) * 32767).astype(np.int16).astype(np.float32) / 32768  # as the server converts
p = PocketSphinxProcessor()
pos, texts = 0, []
for n in map(int, sys.argv[2:]):
    p.insert_audio_chunk(audio[pos : pos + n * 160]); pos += n * 160
    texts.append(p.process_iter()); p.partial()
texts.append(p.finish())
print(sum(len(t[2].split()) for t in texts if t))
"""


def test_a_backlogged_stream_after_an_endpoint_redecode_does_not_crash():
    # in a subprocess: before the fix this was a segmentation fault, which would end the test run
    result = subprocess.run(
        [sys.executable, "-c", _REPLAY_BACKLOG, str(Path(__file__).resolve().parents[1] / "datasets" / "mini"), *map(str, _BACKLOGGED_STREAM)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert int(result.stdout.split()[-1]) > 30  # 20 s of speech was transcribed, not just survived


def test_the_live_pass_runs_on_a_lighter_decoder_only_under_the_redecode():
    light = PocketSphinxProcessor()
    assert light.live_decoder is not light.decoder
    assert light.live_decoder.config["maxhmmpf"] == 1500 and light.decoder.config["maxhmmpf"] == 4000
    assert not light.live_decoder.config["fwdflat"] and not light.live_decoder.config["bestpath"]
    for cfg in ({"live_maxhmmpf": None}, {"final_pass": "live"}):
        one = PocketSphinxProcessor(cfg)
        assert one.live_decoder is one.decoder


def test_search_limits_have_their_own_fields():
    with pytest.raises(ConfigError, match="use 'maxhmmpf'"):
        parse_config({"decoder_options": {"maxhmmpf": 100}}, PocketSphinxConfig)
    with pytest.raises(ConfigError, match="live_maxhmmpf"):
        parse_config({"live_maxhmmpf": 10}, PocketSphinxConfig)
