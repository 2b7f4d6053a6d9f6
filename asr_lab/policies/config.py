"""The ``policy`` fields every policy-driven backend config shares, checked in one place.

A backend whose config class derives from :class:`PolicyConfig` lets the user choose the
streaming policy by name (``policy``) and tune it with the fields below. A field that
belongs to another policy than the chosen one is refused rather than ignored, because a
silently ignored setting mislabels every result measured with it.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, model_validator

from asr_lab.core.config import ASRConfig

__all__ = ["ALIGNATT_LAB", "ALIGNATT_REFERENCE", "POLICIES", "POLICY_FIELDS", "PolicyConfig", "alignatt_settings", "policy_label"]

POLICIES = ("local-agreement", "hold-n", "stable-prefix", "alignatt")
"""Policy names, in the order tables list them."""

_OWN_FIELDS = {
    "agreement_n": "local-agreement",
    "hold_n": "hold-n",
    "stable_delta_sec": "stable-prefix",
    "frame_threshold": "alignatt",
    "alignatt_last_word": "alignatt",
    "alignatt_cut": "alignatt",
    "alignatt_buffer_sec": "alignatt",
    "alignatt_final_threshold": "alignatt",
    "alignatt_rewind_threshold": "alignatt",
    "alignatt_timestamps": "alignatt",
    "alignatt_context_trim": "alignatt",
    "alignatt_heads": "alignatt",
    "alignatt_suppress": "alignatt",
    "alignatt_std_epsilon": "alignatt",
}
POLICY_FIELDS = ("policy", *_OWN_FIELDS)
"""Config fields that choose or tune the policy; everything else configures the engine."""


class PolicyConfig(ASRConfig):
    """Policy selection for a backend (all :class:`~asr_lab.ASRConfig` fields, plus these)."""

    policy: Literal["local-agreement", "hold-n", "stable-prefix", "alignatt"] = Field(
        default="local-agreement",
        description="Streaming policy: 'local-agreement' (commit what the last agreement_n hypotheses agree on; "
        "n=2 is Whisper-Streaming's reference OnlineASRProcessor), 'hold-n' (commit all but the last hold_n "
        "words), 'stable-prefix' (commit words ending more than stable_delta_sec before the buffer end), "
        "'alignatt' (SimulStreaming's attention-guided decoding; only engines with a steppable decoder).",
    )
    agreement_n: int = Field(
        default=2, ge=1, le=10,
        description="local-agreement: how many consecutive hypotheses must agree on a word. 2 = the reference.",
    )
    hold_n: int = Field(default=2, ge=0, le=50, description="hold-n: words at the end of each hypothesis held back.")
    stable_delta_sec: float = Field(
        default=1.0, ge=0.0, le=30.0,
        description="stable-prefix: a word is committed once it ends more than this many seconds before the buffer end.",
    )
    frame_threshold: int = Field(
        default=25, ge=0, le=1500,
        description="alignatt: stop decoding at the first token whose most-attended encoder frame (20 ms each) "
        "lies within this many frames of the audio's end (SimulStreaming's default 25 = 0.5 s).",
    )

    alignatt_last_word: Optional[Literal["hold", "punctuation", "commit", "drop"]] = Field(
        default=None,
        description="alignatt: the last decoded word when decoding stopped at the threshold: 'hold' (kept only when the "
        "stopping token starts a new word), 'punctuation' (also when it ends in , . ? ! ; :), 'commit' (every token, "
        "partial words too: SimulStreaming), 'drop' (always dropped: its --never_fire). None = 'hold' ('punctuation' "
        "measured the same on LibriVox), 'commit' in reference_mode.",
    )
    alignatt_cut: Optional[Literal["after", "before", "chunk"]] = Field(
        default=None,
        description="alignatt: how the buffer is kept within alignatt_buffer_sec: cut at a committed word's end 'after' "
        "or 'before' decoding, or drop whole inserted chunks before decoding ('chunk': SimulStreaming). None = 'after', "
        "'chunk' in reference_mode. A buffer longer than the encoder's 30 s is always cut first (except 'chunk').",
    )
    alignatt_buffer_sec: Optional[float] = Field(
        default=None, gt=0, le=30,
        description="alignatt: longest audio buffer (s). None = min(30, buffer_trimming_sec), 30 in reference_mode.",
    )
    alignatt_final_threshold: Union[int, Literal["eot"], None] = Field(
        default=None,
        description="alignatt: frame threshold at finish(); 'eot' = decode to end-of-text and commit everything. "
        "None = 'eot', 4 in reference_mode (SimulStreaming's, which drops a last word spoken up to the end).",
    )
    alignatt_rewind_threshold: Union[int, Literal["off"], None] = Field(
        default=None,
        description="alignatt: drop a step's new tokens when one attends this many frames before the previous token. "
        "None = 'off', 200 in reference_mode.",
    )
    alignatt_timestamps: Optional[Literal["clean", "reference"]] = Field(
        default=None,
        description="alignatt: 'clean' word times (in order, positive length, no overlap, inside the audio heard) or "
        "SimulStreaming's ('reference'). None = 'clean', 'reference' in reference_mode.",
    )
    alignatt_context_trim: Optional[Literal["tokens", "words"]] = Field(
        default=None,
        description="alignatt: prompt with the last context tokens ('tokens', half the window) or SimulStreaming's text "
        "context cut word by word to fit the window ('words'). None = 'tokens', 'words' in reference_mode.",
    )
    alignatt_heads: Optional[Literal["model", "upper-half"]] = Field(
        default=None,
        description="alignatt: the model's alignment heads (official ones for a size name) or every head of the upper "
        "half of the decoder (SimulStreaming's fallback for a checkpoint not named by its size). None = 'model', "
        "'upper-half' in reference_mode.",
    )
    alignatt_suppress: Optional[Literal["non-speech", "special"]] = Field(
        default=None,
        description="alignatt: tokens never decoded: openai-whisper's non-speech symbols and every special token "
        "('non-speech'), or SimulStreaming's special-token list ('special': '(' and '[' pass). None = 'non-speech', "
        "'special' in reference_mode.",
    )
    alignatt_std_epsilon: Optional[float] = Field(
        default=None, ge=0, le=1,
        description="alignatt: epsilon added to the standard deviation of the attention z-score. None = 1e-8, 0 in "
        "reference_mode.",
    )

    @model_validator(mode="after")
    def _fields_of_the_chosen_policy(self) -> "PolicyConfig":
        for name, owner in _OWN_FIELDS.items():
            if name in self.model_fields_set and owner != self.policy:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} tunes policy {owner!r}, but policy={self.policy!r}; "
                    f"set policy={owner!r} or remove {name}"
                )
        if self.policy != "local-agreement" or self.agreement_n != 2:
            if self.buffer_trimming != "segment":
                raise ValueError(
                    f"buffer_trimming={self.buffer_trimming!r} is LocalAgreement-2's option; policy {policy_label(self)!r} "
                    f"cuts its buffer at segment ends (or, for alignatt, at committed words): use buffer_trimming='segment'"
                )
        return self


def policy_label(config: ASRConfig) -> str:
    """A short name of the policy and its parameter: ``"local-agreement-2"``, ``"hold-2"``, ``"stable-1.0s"``, ``"alignatt-25"``."""
    policy = getattr(config, "policy", "local-agreement")
    if policy == "local-agreement":
        return f"local-agreement-{getattr(config, 'agreement_n', 2)}"
    if policy == "hold-n":
        return f"hold-{config.hold_n}"
    if policy == "stable-prefix":
        return f"stable-{config.stable_delta_sec:g}s"
    return f"alignatt-{config.frame_threshold}"


ALIGNATT_LAB = {
    "alignatt_last_word": "hold",
    "alignatt_cut": "after",
    "alignatt_buffer_sec": None,
    "alignatt_final_threshold": "eot",
    "alignatt_rewind_threshold": "off",
    "alignatt_timestamps": "clean",
    "alignatt_context_trim": "tokens",
    "alignatt_heads": "model",
    "alignatt_suppress": "non-speech",
    "alignatt_std_epsilon": 1e-8,
}
"""asr_lab's AlignAtt defaults (``alignatt_buffer_sec`` None: it follows ``buffer_trimming_sec``)."""

ALIGNATT_REFERENCE = {
    "alignatt_last_word": "commit",
    "alignatt_cut": "chunk",
    "alignatt_buffer_sec": 30.0,
    "alignatt_final_threshold": 4,
    "alignatt_rewind_threshold": 200,
    "alignatt_timestamps": "reference",
    "alignatt_context_trim": "words",
    "alignatt_heads": "upper-half",
    "alignatt_suppress": "special",
    "alignatt_std_epsilon": 0.0,
}
"""SimulStreaming's ``simulstreaming_whisper.py`` (its defaults, on a checkpoint not named by its size) in these fields."""


def alignatt_settings(config: Any) -> dict[str, Any]:
    """The AlignAtt fields of ``config`` resolved: those set, else ``reference_mode``'s or asr_lab's defaults.

    Returns ``{"processor": kwargs for AlignAttProcessor, "decoder": kwargs for the decoder's configure(),
    "fields": the resolved fields}``.
    """
    reference = bool(getattr(config, "reference_mode", False))
    defaults = ALIGNATT_REFERENCE if reference else ALIGNATT_LAB
    fields = {}
    for name, default in defaults.items():
        value = getattr(config, name, None)
        fields[name] = default if value is None else value
    if fields["alignatt_buffer_sec"] is None:
        fields["alignatt_buffer_sec"] = min(30.0, float(getattr(config, "buffer_trimming_sec", 30.0)))
    final = fields["alignatt_final_threshold"]
    rewind = fields["alignatt_rewind_threshold"]
    processor = {
        "frame_threshold": getattr(config, "frame_threshold", 25),
        "final_frame_threshold": None if final == "eot" else int(final),
        "max_buffer_sec": float(fields["alignatt_buffer_sec"]),
        "min_chunk_sec": float(getattr(config, "min_chunk_size", 1.0)),
        "max_new_tokens": None if reference else (getattr(config, "max_new_tokens", None) or 128),
        "last_word": fields["alignatt_last_word"],
        "cut": fields["alignatt_cut"],
        "rewind_threshold": None if rewind == "off" else int(rewind),
        "timestamps": fields["alignatt_timestamps"],
        "context_trim": fields["alignatt_context_trim"],
    }
    decoder = {
        "heads": fields["alignatt_heads"],
        "suppress": fields["alignatt_suppress"],
        "std_epsilon": float(fields["alignatt_std_epsilon"]),
        "max_context_tokens": None if fields["alignatt_context_trim"] == "words" else -1,
    }
    return {"processor": processor, "decoder": decoder, "fields": {"reference_mode": reference, **fields}}
