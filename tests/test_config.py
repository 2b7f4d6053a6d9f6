"""ASRConfig: defaults, subclassing, and errors that name the field, the value and what is allowed."""

import json

import pytest
from pydantic import Field, ValidationError

from asr_lab import ASRConfig, ConfigError
from asr_lab.core.config import parse_config


def test_defaults_match_the_whisper_streaming_reference():
    c = ASRConfig()
    assert (c.task, c.min_chunk_size, c.buffer_trimming, c.buffer_trimming_sec) == ("transcribe", 1.0, "segment", 15.0)
    assert c.lan == "en" and c.model is None and c.model_dir is None


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("buffer_trimming", "segmnt", ["buffer_trimming", "segmnt", "'segment' or 'sentence'"]),
        ("task", "transcribee", ["task", "transcribee", "'transcribe' or 'translate'"]),
        ("min_chunk_size", -1, ["min_chunk_size", "-1", "greater than 0"]),
        ("buffer_trimming_sec", 0, ["buffer_trimming_sec", "greater than 0"]),
        ("lan", "english!", ["lan", "english!", "'auto'"]),
        ("backend", "  ", ["backend", "available_backends"]),
    ],
)
def test_invalid_values_name_field_value_and_allowed(field, value, words):
    with pytest.raises(ConfigError) as err:
        parse_config({field: value})
    for w in words:
        assert w in str(err.value)
    with pytest.raises(ValidationError):  # direct construction is validated too
        ASRConfig(**{field: value})


def test_misspelled_field_is_rejected_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"'bufer_trimming' \(did you mean 'buffer_trimming'\?\)"):
        parse_config({"bufer_trimming": "segment"})


def test_assignment_is_validated():
    c = ASRConfig()
    with pytest.raises(ValidationError):
        c.buffer_trimming = "words"


def test_json_text_and_instances_parse():
    body = '{"backend": "my_engine", "model": "/m", "lan": "EN", "min_chunk_size": 0.5}'
    c = parse_config(body)
    assert (c.backend, c.model, c.lan, c.min_chunk_size) == ("my_engine", "/m", "en", 0.5)
    assert parse_config(c) is c
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_config("{backend: x}")
    with pytest.raises(ConfigError, match="not list"):
        parse_config("[1, 2]")


def test_subclass_adds_fields_and_keeps_validation():
    class Extended(ASRConfig):
        device: str = Field(default="cpu")
        batch_size: int = Field(default=1, ge=1)

    c = parse_config({"backend": "x", "batch_size": 4}, Extended)
    assert c.device == "cpu" and c.batch_size == 4
    base = ASRConfig(backend="x", lan="de")
    assert parse_config(base, Extended).lan == "de"  # re-validated as the subclass
    with pytest.raises(ConfigError, match="batch_size=0"):
        parse_config({"batch_size": 0}, Extended)
    with pytest.raises(ConfigError, match="did you mean 'device'"):
        parse_config({"devic": "cuda"}, Extended)


def test_round_trips_through_json():
    c = ASRConfig(backend="faster-whisper", model="tiny", lan="auto", vac=True)
    assert ASRConfig.model_validate(json.loads(c.model_dump_json())) == c
