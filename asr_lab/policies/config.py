"""The ``policy`` fields every policy-driven backend config shares, checked in one place.

A backend whose config class derives from :class:`PolicyConfig` lets the user choose the
streaming policy by name (``policy``) and tune it with the fields below. A field that
belongs to another policy than the chosen one is refused rather than ignored, because a
silently ignored setting mislabels every result measured with it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from asr_lab.core.config import ASRConfig

__all__ = ["POLICIES", "POLICY_FIELDS", "PolicyConfig", "policy_label"]

POLICIES = ("local-agreement", "hold-n", "stable-prefix", "alignatt")
"""Policy names, in the order tables list them."""

_OWN_FIELDS = {
    "agreement_n": "local-agreement",
    "hold_n": "hold-n",
    "stable_delta_sec": "stable-prefix",
    "frame_threshold": "alignatt",
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
