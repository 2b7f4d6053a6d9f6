"""The openai-whisper backend: random-weight pipeline checks, and real tiny.en when its weights are installed."""

import dataclasses

import pytest

torch = pytest.importorskip("torch")
whisper = pytest.importorskip("whisper")

import asr_lab  # noqa: E402
from asr_lab.core.config import ConfigError  # noqa: E402
from asr_lab.policies import AlignAttProcessor, RedecodingProcessor  # noqa: E402

LIBRIVOX = "/usr/share/pocketsphinx/test/data/librivox"


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    """A d64, 2-layer English-only Whisper with random weights, saved as openai-whisper does."""
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(80, 1500, 64, 2, 2, 51864, 448, 64, 2, 2)
    path = tmp_path_factory.mktemp("owhisper") / "random.pt"
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": Whisper(dims).state_dict()}, path)
    return str(path)


def test_openai_whisper_is_registered_and_refuses_what_alignatt_cannot_do(random_checkpoint):
    assert "openai-whisper" in [b.name for b in asr_lab.available_backends()]
    with pytest.raises(ConfigError, match="temperature=0 and beam_size=1"):
        asr_lab.load_processor({"backend": "openai-whisper", "model_dir": random_checkpoint, "policy": "alignatt", "beam_size": 3})
    with pytest.raises(ConfigError, match="not an openai-whisper size name"):
        asr_lab.load_processor({"backend": "openai-whisper", "model": "huge-v9"})


@pytest.mark.slow
def test_random_weights_run_alignatt_and_hold_n_through_the_replay_loop(random_checkpoint):
    from asr_lab.testing import sample_speech

    audio = sample_speech().audio[:32000]
    proc, meta = asr_lab.load_processor(
        {"backend": "openai-whisper", "model_dir": random_checkpoint, "lan": "en", "policy": "alignatt",
         "frame_threshold": 10, "max_new_tokens": 6}
    )
    assert isinstance(proc, AlignAttProcessor) and meta["policy"] == "alignatt"
    trace = asr_lab.replay(proc, audio, clock="unaware", chunk_sec=1.0, warmup_sec=0)
    assert trace.ok and proc.calls == 3  # two steps and finish()
    assert proc.decoder.encoder_calls == 3 and 0 < proc.decoder.decoder_calls <= 3 * 6
    session = proc.decoder.begin(audio, context=[], forced=[])
    assert session.n_frames == 100  # 2 s of audio = 100 encoder frames
    assert all(0 <= session.next().frame < 100 for _ in range(3))
    proc, _ = asr_lab.load_processor(
        {"backend": "openai-whisper", "model_dir": random_checkpoint, "lan": "en", "policy": "hold-n",
         "without_timestamps": True, "max_new_tokens": 6}
    )
    assert isinstance(proc, RedecodingProcessor)
    assert asr_lab.replay(proc, audio, clock="unaware", chunk_sec=1.0, warmup_sec=0).ok


# -- real tiny.en ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_en():
    from asr_lab.backends.openai_whisper import OpenAIWhisperConfig, resolve_checkpoint

    try:
        path, _ = resolve_checkpoint(OpenAIWhisperConfig(model="tiny.en"))
    except ConfigError as exc:
        pytest.skip(f"real tiny.en weights not installed: {exc}")
    return str(path)


def _librivox(name="sense_and_sensibility_01_austen_64kb-0880"):
    from asr_lab.core.audio import load_audio

    import os

    if not os.path.isdir(LIBRIVOX):
        pytest.skip("Debian pocketsphinx-testdata (LibriVox speech) is not installed")
    text = {line.split("(")[-1].rstrip(")\n"): line.split("</s>")[0].replace("<s>", "").strip()
            for line in open(f"{LIBRIVOX}/transcription")}
    return load_audio(f"{LIBRIVOX}/{name}.wav"), text[name]


@pytest.mark.slow
def test_the_token_decoder_decodes_greedily_exactly_as_whisper_decode(tiny_en):
    from asr_lab.backends.openai_whisper import OpenAIWhisperDecoder

    audio, _ = _librivox()
    model = whisper.load_model(tiny_en, device="cpu")
    mel = whisper.pad_or_trim(whisper.log_mel_spectrogram(audio, padding=whisper.audio.N_SAMPLES), whisper.audio.N_FRAMES)
    expected = whisper.decode(model, mel, whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False)).tokens
    session = OpenAIWhisperDecoder(model, language="en").begin(audio, context=[], forced=[])
    tokens = []
    while not (step := session.next()).eot:
        tokens.append(step.token)
    assert tokens == list(expected)


@pytest.mark.slow
def test_alignatt_on_real_tiny_en_transcribes_librivox_with_word_times_inside_the_speech(tiny_en):
    from asr_lab.metrics import ENGLISH_NORMALIZER, wer

    audio, text = _librivox()
    proc, _ = asr_lab.load_processor({"backend": "openai-whisper", "model": "tiny.en", "lan": "en", "policy": "alignatt"})
    trace = asr_lab.replay(proc, audio, clock="unaware", chunk_sec=1.0, warmup_sec=0)
    assert trace.ok and len(trace.emissions) >= 2  # committed while streaming, not only at the end
    # tiny.en streamed hears "ill disposed" as "old-sposed" (2 of 8 words); offline it gets all 8
    assert wer(reference=ENGLISH_NORMALIZER(text), hypothesis=ENGLISH_NORMALIZER(trace.text)).rate <= 0.3
    assert ENGLISH_NORMALIZER(trace.text).split()[-1] == "man"  # the last word, spoken up to the end, is committed by finish()
    duration = len(audio) / 16000
    for e in trace.emissions:
        assert 0 <= e.start <= e.end <= duration + 0.02
        assert e.final or e.end <= e.audio_fed  # nothing committed beyond what was heard
