"""The habits of people coming from the shell and from whisper_streaming: a processor of one's own
from the command line (``--backend module:Loader``, ``--plugin module``), whisper_streaming's
flags with their asr_lab meaning, and ``asr-lab score`` re-scoring a saved trace."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import asr_lab
from asr_lab.backends import registry
from asr_lab.cli import _parser, _prepare, compare_configs, engine_config, main
from asr_lab.metrics import wer
from asr_lab.metrics.normalizers import DEFAULT_NORMALIZER, get_normalizer

MINI = str(Path(__file__).resolve().parent.parent / "datasets" / "mini")

# A user's own module, written to a temporary folder: a stand-in processor that says, at the end,
# a word from a custom config field and how many seconds of audio it was given.
PLUGIN = '''
from typing import Literal
import asr_lab
from asr_lab import ASRConfig


class CountConfig(ASRConfig):
    word: str = "heard"
    unit: Literal["seconds", "samples"] = "seconds"


class CountingProcessor:
    """Stand-in processor: at the end, says its word and how much audio it got."""

    def __init__(self, word, unit):
        self.word, self.unit = word, unit
        self.init()

    def init(self, offset=0.0):
        self.offset, self.samples = offset, 0

    def insert_audio_chunk(self, audio):
        self.samples += len(audio)

    def process_iter(self):
        return None

    def finish(self):
        amount = round(self.samples / 16000, 1) if self.unit == "seconds" else self.samples
        return (self.offset, self.offset + self.samples / 16000, f"{self.word} {amount}")


class CountLoader:
    config_class = CountConfig

    def load(self, config):
        return CountingProcessor(config.word, config.unit), {"separator": " "}
'''


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """The user's working folder, holding countplug.py (a loader) and countreg.py (registers at import)."""
    (tmp_path / "countplug.py").write_text(PLUGIN)
    (tmp_path / "countreg.py").write_text("import asr_lab\nfrom countplug import CountLoader\n"
                                          "asr_lab.register_loader('counting', CountLoader())\n")
    (tmp_path / "silentmod.py").write_text("X = 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in ("countplug:CountLoader", "counting"):
        if name in registry._registered:
            registry.unregister_loader(name)
    for module in ("countplug", "countreg", "silentmod"):
        sys.modules.pop(module, None)
        registry._plugin_modules.pop(module, None)


def test_compare_runs_a_loader_named_module_colon_class_with_its_own_config_fields(user_folder, capsys):
    out = user_folder / "run"
    code = main(["compare", "--dataset", MINI, "--backend", "countplug:CountLoader", "--set", "word=got",
                 "--limit", "2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    import pandas as pd

    table = pd.read_csv(out / "utterances.csv")
    assert set(table["system"]) == {"countplug:CountLoader"} and len(table) == 2
    durations = [u.duration for u in asr_lab.load_dataset(MINI)][:2]
    # the user's processor ran with the custom field and heard each utterance's audio
    assert sorted(table["hypothesis"]) == sorted(f"got {round(d, 1)}" for d in durations)


def test_replay_imports_a_plugin_module_that_registers_its_backend(user_folder, capsys):
    wav = next(Path(MINI, "audio").iterdir())
    code = main(["replay", str(wav), "--plugin", "countreg", "--backend", "counting", "--set", "unit=samples"])
    out = capsys.readouterr().out
    assert code == 0
    samples = len(asr_lab.core.audio.load_audio(wav))
    assert out.strip().splitlines()[-1] == f"heard {samples}"


def test_a_plugin_that_cannot_be_used_says_why_and_how_to_fix_it(user_folder, capsys):
    assert main(["compare", "--dataset", MINI, "--backend", "nosuchmod:Loader", "--out", str(user_folder / "x")]) == 2
    err = capsys.readouterr().err
    assert "no module named 'nosuchmod'" in err and "PYTHONPATH" in err
    assert main(["compare", "--dataset", MINI, "--backend", "countplug:Nope", "--out", str(user_folder / "x")]) == 2
    err = capsys.readouterr().err
    assert "no attribute 'Nope'" in err and "CountLoader" in err  # it lists the loaders the module has
    assert main(["backends", "--plugin", "silentmod"]) == 2
    assert "registered no backend" in capsys.readouterr().err


def test_an_unknown_backend_tells_a_shell_user_how_to_bring_their_own():
    with pytest.raises(registry.UnknownBackendError, match="--backend MODULE:LOADER or --plugin MODULE"):
        registry.get_loader("definitely-not-a-backend")


# whisper_online.py's add_shared_args and main flags (ufal/whisper_streaming), in its own spelling
WHISPER_STREAMING = ["--min-chunk-size", "0.5", "--min_chunk_size", "0.5", "--model", "tiny.en", "--model_cache_dir", "/c",
                     "--model_dir", "/m", "--lan", "en", "--task", "transcribe", "--backend", "faster-whisper", "--vac",
                     "--vac-chunk-size", "0.04", "--vad", "--buffer_trimming", "sentence", "--buffer_trimming_sec", "10",
                     "-l", "WARNING", "--comp_unaware"]


@pytest.mark.parametrize("command", ["replay", "compare"])
def test_whisper_streaming_flags_are_accepted_with_their_asr_lab_meaning(command):
    head = ["replay", "audio.wav"] if command == "replay" else ["compare", "--dataset", MINI]
    parser = _parser()
    args = parser.parse_args(head + WHISPER_STREAMING)
    _prepare(parser, args)
    assert args.clock == "unaware"  # --comp_unaware is the computation-unaware clock
    cfg = engine_config(args) if command == "replay" else compare_configs(args)["faster-whisper"]
    assert cfg == {"backend": "faster-whisper", "model": "tiny.en", "lan": "en", "min_chunk_size": 0.5, "task": "transcribe",
                   "model_cache_dir": "/c", "model_dir": "/m", "buffer_trimming": "sentence", "buffer_trimming_sec": 10.0,
                   "vac": True, "vac_chunk_size": 0.04, "vad": True}


@pytest.mark.parametrize("flags, says", [
    (["--offline"], "--chunk-sec 60"),
    (["--start_at", "30"], "trim 30"),
    (["--warmup-file", "jfk.wav"], "drop the flag"),
])
def test_whisper_streaming_flags_asr_lab_does_not_take_are_answered_with_its_spelling(flags, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["replay", "audio.wav", *flags])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "whisper_streaming's flag" in err and says in err
    assert "unrecognized arguments" not in err


def test_comp_unaware_cannot_contradict_an_explicit_wall_clock(capsys):
    with pytest.raises(SystemExit):
        main(["replay", "audio.wav", "--comp_unaware", "--clock", "wall", "--backend", "pocketsphinx"])
    assert "--clock unaware" in capsys.readouterr().err


def test_a_whisper_streaming_field_the_backend_lacks_is_named_by_its_config(capsys):
    pytest.importorskip("pocketsphinx")
    wav = next(Path(MINI, "audio").iterdir())
    assert main(["replay", str(wav), "--backend", "pocketsphinx", "--vad"]) == 2
    assert "vad" in capsys.readouterr().err


@pytest.fixture(scope="module")
def saved_trace(tmp_path_factory):
    """A real pocketsphinx replay of one mini utterance, saved as JSONL by `asr-lab replay --trace`."""
    pytest.importorskip("pocketsphinx")
    utt = asr_lab.load_dataset(MINI)["rms-001"]
    path = tmp_path_factory.mktemp("trace") / "take.jsonl"
    assert main(["replay", utt.audio if Path(utt.audio).is_absolute() else str(Path(MINI) / utt.audio),
                 "--backend", "pocketsphinx", "--trace", str(path)]) == 0
    return path, utt


def test_score_rescores_a_saved_trace_against_the_dataset_utterance(saved_trace, capsys):
    path, utt = saved_trace
    capsys.readouterr()
    assert main(["score", str(path), "--reference", MINI, "--json"]) == 0  # the utterance found by its audio file
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    trace = asr_lab.Trace.from_jsonl(path)
    assert row["utterance"] == utt.id and row["hypothesis"] == trace.text
    assert row["wer"] == pytest.approx(wer(reference=utt.text, hypothesis=trace.text, normalize=get_normalizer(DEFAULT_NORMALIZER)).rate)
    assert row["latency_count"] > 0  # the dataset's word timings give reference latencies
    assert main(["score", str(path), "--reference", MINI]) == 0
    table = capsys.readouterr().out
    for column in ("wer", "latency_p50", "first_word_latency", "normalized_erasure", "rtf"):  # compare's columns
        assert column in table


def test_score_against_a_text_and_with_a_wrong_utterance(saved_trace, capsys):
    path, _ = saved_trace
    capsys.readouterr()
    assert main(["score", str(path), "--text", "please put the milk away", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    trace = asr_lab.Trace.from_jsonl(path)
    assert row["wer"] == pytest.approx(
        wer(reference="please put the milk away", hypothesis=trace.text, normalize=get_normalizer(DEFAULT_NORMALIZER)).rate)
    assert row["latency_p50"] is None  # no reference timings: no reference latency, and valid JSON
    assert main(["score", str(path), "--reference", MINI, "--utterance", "rms-00l"]) == 2
    assert "rms-001" in capsys.readouterr().err  # the close ids
    assert main(["score", str(path.with_name("missing.jsonl")), "--text", "x"]) == 2
    assert "replay --trace" in capsys.readouterr().err


def test_score_without_a_reference_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["score", "trace.jsonl"])
    assert "--reference" in capsys.readouterr().err

