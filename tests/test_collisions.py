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
