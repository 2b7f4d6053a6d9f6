"""Damaged or hostile files: each reader names the file/line/field and refuses what it cannot read
exactly; each writer gives a file its real parser reads back, whatever the text."""

import json

import pytest

from asr_lab import export


def _line(**over):
    rec = {"index": 0, "prediction": "a b", "delays": [500, 1500], "elapsed": [700, 1800],
           "source_length": 2000, "reference": "a b", "source": ["x.wav"]}
    rec.update(over)
    return json.dumps(rec)


@pytest.mark.parametrize(
    "over, match",
    [
        ({"delays": "12"}, r"line 1: 'delays' is '12' \(str\); it must be a JSON list"),
        ({"delays": [True, 1500]}, r"delays\[0\] = True is not a finite non-negative number"),
        ({"delays": [1500, 500], "elapsed": [1600, 1700]}, r"delays\[1\] = 500 ms is before delays\[0\] = 1500 ms"),
        ({"delays": [-100, 500]}, r"delays\[0\] = -100"),
        ({"elapsed": [300, 1800]}, r"elapsed\[0\] = 300 ms is before delays\[0\] = 500 ms"),
        ({"elapsed": "77"}, r"'elapsed' is '77'"),
        ({"prediction": ["a", "b"]}, r"'prediction' is list"),
        ({"source_length": "2000"}, r"source_length = '2000' must be a finite"),
        ({"source_length": True}, r"source_length = True"),
        ({"reference": ["a"]}, r"'reference' is list"),
    ],
)
def test_simuleval_reader_validates_each_field_and_names_the_line(over, match):
    with pytest.raises(ValueError, match=match):
        export.read_simuleval_log([_line(**over)])


def test_simuleval_reader_refuses_non_objects_and_duplicate_sources():
    with pytest.raises(ValueError, match=r"line 2: a SimulEval instance is a JSON object .* not list"):
        export.read_simuleval_log([_line(), "[1, 2]"])
    with pytest.raises(ValueError, match=r"line 1: .* not str"):
        export.read_simuleval_log(['"text"'])
    with pytest.raises(ValueError, match=r"line 3: source 'x.wav' was already read on line 1"):
        export.read_simuleval_log([_line(), _line(source=["y.wav"]), _line()])
    good = export.read_simuleval_log([_line(), _line(source=["y.wav"])])
    assert list(good) == ["x.wav", "y.wav"]
    assert [e.audio_fed for e in good["x.wav"][0].emissions] == [0.5, 1.5]
