"""The command line: whisper_streaming's flags, --version, backends --fields, bad arguments
refused up front, and failures shown first."""

from pathlib import Path

import pytest

import asr_lab
from asr_lab.backends import registry
from asr_lab.cli import compare_configs, main

MINI = str(Path(__file__).resolve().parent.parent / "datasets" / "mini")


class Echo:
    """Stand-in processor: says the reference text it was configured with at the end; steps by min_chunk_sec."""

    def __init__(self, text, min_chunk_sec=None):
        self.text, self.min_chunk_sec = text, min_chunk_sec
        self.init()

    def init(self, offset=0.0):
        self.offset, self.samples = offset, 0

    def insert_audio_chunk(self, audio):
        self.samples += len(audio)

    def process_iter(self):
        return None

    def finish(self):
        return (self.offset, self.offset + self.samples / 16000, self.text) if self.text else None


class EchoLoader:
    """Stand-in backend: config.model is the text to say ('fail' raises)."""

    def load(self, config):
        if config.model == "fail":
            raise RuntimeError(f"no such model {config.model!r} (lan={config.lan})")
        return Echo(config.model or "", None), {"separator": " "}


@pytest.fixture(autouse=True)
def echo_backend():
    asr_lab.register_loader("echo-test", EchoLoader())
    yield
    registry.unregister_loader("echo-test")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("asr-lab ")


def test_backends_fields_lists_types_defaults_and_descriptions(capsys):
    pytest.importorskip("pocketsphinx")
    assert main(["backends", "--fields", "pocketsphinx"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("min_chunk_size"))
    assert "float" in line and "0.25" in line and "Seconds of new audio" in line
    assert main(["backends", "--fields", "no-such-engine"]) == 2
    assert "unknown backend 'no-such-engine'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--chunk-sec", "0"], "argument --chunk-sec: 0 is out of range: give seconds in (0, 60]"),
        (["--chunk-sec", "-0.5"], "argument --chunk-sec: -0.5 is out of range"),
        (["--limit", "0"], "argument --limit: 0 is out of range: give a whole number >= 1"),
        (["--limit", "-1"], "argument --limit: -1 is out of range"),
        (["--min-chunk-size", "0"], "argument --min-chunk-size: 0 is out of range"),
        (["--repeats", "0"], "argument --repeats: 0 is out of range"),
    ],
)
def test_bad_arguments_are_refused_with_the_allowed_range(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--dataset", MINI, "--backend", "echo-test", "--out", str(tmp_path), *argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # refused before any run


def test_whisper_streaming_flags_set_config_fields():
    import argparse

    from asr_lab.cli import _parser

    args = _parser().parse_args(["compare", "--dataset", "d", "--backend", "a", "--backend", "b",
                                 "--model", "large-v3", "--lan", "de", "--min-chunk-size", "0.5", "--set", "beam_size=1"])
    assert compare_configs(args) == {
        name: {"backend": name, "model": "large-v3", "lan": "de", "min_chunk_size": 0.5, "beam_size": 1} for name in ("a", "b")
    }
    replay_args = _parser().parse_args(["replay", "x.wav", "--backend", "a", "--model", "tiny.en", "--lan", "en", "--min-chunk-size", "1"])
    from asr_lab.cli import engine_config

    assert engine_config(replay_args) == {"backend": "a", "model": "tiny.en", "lan": "en", "min_chunk_size": 1.0}
    assert isinstance(args, argparse.Namespace)


def test_replay_steps_by_min_chunk_size_when_the_processor_has_none(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    audio = str(Path(MINI) / "audio" / "slt-000.flac")
    assert main(["replay", audio, "--backend", "echo-test", "--model", "hello", "--min-chunk-size", "0.75", "--trace", str(trace)]) == 0
    from asr_lab.replay import Trace

    assert Trace.from_jsonl(trace).meta["chunk_sec"] == 0.75 and "hello" in capsys.readouterr().out


def test_every_run_failing_shows_the_failures_first_and_exits_non_zero(tmp_path, capsys):
    code = main(["compare", "--dataset", MINI, "--backend", "echo-test", "--model", "fail", "--lan", "xx",
                 "--limit", "2", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    lines = [x.split("\r")[-1] for x in err.split("\n")]
    lines = [x for x in lines if x.strip() and not x.startswith("compare")]  # the library's progress bar
    assert lines[0].startswith("failed: echo-test / slt-000 (repeat 0): RuntimeError: no such model 'fail' (lan=xx)")
    assert lines[1].startswith("failed: echo-test / rms-001")
    assert "all 2 runs failed" in err and "is not a summary column" not in err
    assert not list(tmp_path.glob("*.png"))  # no empty figures
    assert "RuntimeError: no such model" in (tmp_path / "summary.md").read_text()


def test_compare_reports_runs_from_cache(tmp_path, capsys):
    argv = ["compare", "--dataset", MINI, "--backend", "echo-test", "--model", "the train", "--limit", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "# 0 of 2 runs from cache" in capsys.readouterr().err
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "# 2 of 2 runs from cache" in captured.err and "echo-test" in captured.out
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["latency.png", "stability.png", "waterfall.png", "wer_vs_latency.png"]
    md = (tmp_path / "summary.md").read_text()
    assert "| echo-test | 2 | 0 |" in md  # counts printed as integers
