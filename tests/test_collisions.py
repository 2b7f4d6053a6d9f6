"""Collisions that would silently merge or overwrite results: each is refused or kept apart."""

import pytest

import asr_lab
from asr_lab.policies import policy_grid
from asr_lab.policies.grid import expand_configs
from asr_lab.testing import TimelineASR, words_from_text


@pytest.mark.parametrize(
    "policies, common, match",
    [
        ({"hold-n": {"hold_n": "12"}}, {}, r"policy 'hold-n': hold_n='12' must be a list of values .* character by character"),
        ({"hold-n": {"hold_n": 2}}, {}, r"hold_n=2 must be a list"),
        ({"hold-n": {"hold_n": [1, True]}}, {}, r"hold_n value True \(bool\) is not an integer"),
        ({"hold-n": {"hold_n": [1, 1.0]}}, {}, r"hold_n value 1.0 \(float\) is not an integer"),
        ({"hold-n": {"hold_n": [1, 2, 1]}}, {}, r"holds the setting 1 twice"),
        ({"stable-prefix": {"stable_delta_sec": [1, 1.0]}}, {}, r"holds the setting 1.0 twice"),
        ({"stable-prefix": {"stable_delta_sec": ["0.5"]}}, {}, r"'0.5' \(str\) is not a finite number"),
        ({"hold-n": None}, {"min_chunk_size": [0.5, float("nan")]}, r"sweep: min_chunk_size value nan"),
        ({"hold-n": None}, {"beam_size": [1, True]}, r"mixes booleans"),
        ({"hold-n": None}, {"min_chunk_size": []}, r"sweeps nothing"),
        ({"hold-n": [1, 2]}, {}, r"its parameters \[1, 2\] must be"),
    ],
)
def test_grid_values_are_lists_of_distinct_values_of_the_fields_type(policies, common, match):
    with pytest.raises(ValueError, match=match):
        policy_grid({"backend": "x"}, policies, **common)


def test_near_equal_floats_get_their_own_names():
    grid = policy_grid({}, {"stable-prefix": {"stable_delta_sec": [0.5, 0.5000001]}}, min_chunk_size=[0.25, 1.0])
    assert len(grid) == 4
    assert {c["stable_delta_sec"] for c in grid.values()} == {0.5, 0.5000001}
    assert "stable-0.5000001s @0.25s" in grid and "stable-0.5s @1s" in grid


def test_grid_size_is_bounded_with_a_clear_message():
    thirty = [float(i) / 10 + 0.1 for i in range(30)]
    with pytest.raises(ValueError, match=r"expands to 27000 configurations \(30×30×30\), more than max_configs=500.*max_configs=27000"):
        policy_grid({}, {"stable-prefix": {"stable_delta_sec": thirty}}, min_chunk_size=thirty, buffer_trimming_sec=[x + 5 for x in thirty])
    assert len(policy_grid({}, {"hold-n": {"hold_n": list(range(20))}}, max_configs=20)) == 20
    with pytest.raises(ValueError, match="max_configs=3"):
        expand_configs({"a": {}, "b": {}}, {"hold-n": {"hold_n": [1, 2]}}, max_configs=3)


POLICY_FILES = ["policies/hold_n.py", "policies/stable_prefix.py", "policies/local_agreement.py", "policies/alignatt.py",
                "policies/record_replay.py", "policies/vac.py", "compare/runner.py"]


def test_editing_any_policy_changes_the_cache_key(tmp_path):
    """A copy of the package, edited file by file: every code that shapes a run moves the provenance hash."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import asr_lab

    pkg = tmp_path / "asr_lab"
    shutil.copytree(Path(asr_lab.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    probe = "from asr_lab.provenance import machinery_fingerprint as m; print(m())"

    def fingerprint():
        run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": ""},
                             capture_output=True, text=True, check=True)
        return run.stdout.strip()

    seen = {fingerprint()}
    for rel in POLICY_FILES:
        target = pkg / rel
        target.write_text(target.read_text() + "\n# an edit that changes what the policy does\n")
        seen.add(fingerprint())
    assert len(seen) == 1 + len(POLICY_FILES)


# -- compare(): one row per system name and per utterance id ---------------------------------------

WORDS = words_from_text("the cat sat on the mat", pause_every=3)


class SameAudio:
    """Stand-in utterance: the same audio under every id, each with its own reference text."""

    def __init__(self, id, text):
        self.id, self.text, self.words = id, text, None

    def load_audio(self):
        return TimelineASR.stream_audio(WORDS[-1][1] + 1)


def _la(**kw):
    return asr_lab.OnlineASRProcessor(TimelineASR(WORDS), min_chunk_sec=0.5)


class Named:
    """A stand-in processor factory whose name is what it is, not how it was made."""

    def __call__(self):
        return _la()


def test_same_config_under_two_names_gives_two_rows_and_a_rename_comes_back_renamed(tmp_path):
    pytest.importorskip("pocketsphinx")
    data = [SameAudio("u0", "the cat sat on the mat")]
    cfg = {"backend": "pocketsphinx", "lan": "en"}
    res = asr_lab.compare({"first": cfg, "second": dict(cfg)}, data, clock="unaware", cache_dir=tmp_path, progress=False,
                          warmup_sec=0)
    assert res.systems == ["first", "second"]
    assert res.summary.loc["first", "runs"] == 1 and res.summary.loc["second", "runs"] == 1
    assert {(r.system, r.trace.meta["system"]) for r in res.records} == {("first", "first"), ("second", "second")}
    renamed = asr_lab.compare({"renamed": cfg}, data, clock="unaware", cache_dir=tmp_path, progress=False, warmup_sec=0)
    assert renamed.from_cache == 1 and renamed.systems == ["renamed"] and renamed.records[0].trace.meta["system"] == "renamed"


def test_identical_audio_is_one_row_per_utterance_scored_against_its_own_text():
    data = [SameAudio("a", "the cat sat on the mat"), SameAudio("b", "a dog ran in the park")]
    res = asr_lab.compare({"la": _la}, data, clock="unaware", progress=False, warmup_sec=0)
    rows = res.utterances.set_index("utterance")
    assert list(rows.index) == ["a", "b"]
    assert rows.loc["a", "wer"] == 0 and rows.loc["b", "wer"] > 0.5
    assert res.traces[("la", "b", 0)].meta["utterance"] == "b"


def test_file_names_never_collide_and_markdown_cells_are_escaped(tmp_path):
    data = [SameAudio("u0", "the cat sat on the mat")]
    names = ["a/b", "a_b", "A_B", "pipe | name", "new\nline"]
    res = asr_lab.compare({n: Named() for n in names}, data, clock="unaware", progress=False, warmup_sec=0)
    out = res.to_files(tmp_path / "out")
    traces = sorted((out / "traces").iterdir())
    assert len(traces) == len(names) == len({p.name.lower() for p in traces})
    from asr_lab.replay import Trace

    assert sorted(Trace.from_jsonl(p).meta["system"] for p in traces) == sorted(names)
    assert len(list((out / "simuleval").iterdir())) == len(names)
    md = (out / "summary.md").read_text().splitlines()
    rows = [line for line in md if line.startswith("| ") and not line.startswith("| system")]
    assert len(rows) == len(names)
    for line in rows:  # each row has as many unescaped cell separators as the header
        assert len([i for i, c in enumerate(line) if c == "|" and (i == 0 or line[i - 1] != "\\")]) == md[0].count("|")
    assert any("pipe \\| name" in line for line in rows) and any("new line" in line for line in rows)
