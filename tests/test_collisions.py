"""Collisions that would silently merge or overwrite results: each is refused or kept apart."""

import pytest

from asr_lab.policies import policy_grid
from asr_lab.policies.grid import expand_configs


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
                "policies/record_replay.py"]


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
    # after the restructure the reference LA and VAC live in policies/ too; before, in streaming/
    others = [p for p in ("streaming/vac.py", "streaming/local_agreement.py", "policies/vac.py") if (pkg / p).exists()]
    for rel in POLICY_FILES + others:
        target = pkg / rel
        target.write_text(target.read_text() + "\n# an edit that changes what the policy does\n")
        seen.add(fingerprint())
    assert len(seen) == 1 + len(POLICY_FILES) + len(others)
