"""The policy fields of every policy-driven backend config, in one class: :class:`PolicyConfig`.

A backend whose config class derives from :class:`PolicyConfig` lets the user choose the
streaming policy by name (``policy``) and tune it (``agreement_n``, ``hold_n``,
``stable_delta_sec``, ``frame_threshold``). A field that belongs to another policy than the
chosen one is refused rather than ignored, because a silently ignored setting mislabels
every result measured with it.

The same class carries LocalAgreement's named fixes and the VAC knobs. ``reference_mode=True``
makes every default whisper_streaming's (no fix, no buffer cap, VAC without ``transcribe_tail``
or context and with 100 ms of speech padding), so it reproduces the reference exactly; a fix
named explicitly is still applied on top (that is how each fix is measured against the
reference baseline). Otherwise asr_lab's defaults apply: the ghost filter, the guarded finish,
the 30 s buffer cap, ``vac_transcribe_tail``, 300 ms of VAC speech padding and 10 s of VAC
context (each measured in ``bench/vac.py``; the figures are in the README).
:func:`policy_settings` resolves a config (of any backend) to the keyword arguments the
processors take. ``StreamingPolicyConfig`` is the same class under its former name.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from asr_lab.core.config import ASRConfig
from asr_lab.policies.registry import BUILTIN_POLICIES, policy_names

__all__ = [
    "ALIGNATT_LAB",
    "ALIGNATT_REFERENCE",
    "DEFAULT_MAX_BUFFER_SEC",
    "POLICIES",
    "DRIVER_FIELDS",
    "POLICY_FIELDS",
    "PolicyConfig",
    "StreamingPolicyConfig",
    "alignatt_settings",
    "policy_label",
    "policy_metadata",
    "policy_settings",
]

POLICIES = BUILTIN_POLICIES
"""The built-in policy names, in the order tables list them (registered ones: :func:`~asr_lab.policies.registry.policy_names`)."""

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

DRIVER_FIELDS = frozenset({"min_chunk_size", "buffer_trimming", "buffer_trimming_sec", "vac_chunk_size"})
"""Config fields that set how often and on how much audio the policy asks the engine (not what the engine answers)."""


DEFAULT_MAX_BUFFER_SEC = 30.0
"""Whisper's window: beyond it every call decodes two windows and the cost doubles."""

REFERENCE = {
    "ghost_filter": False,
    "guarded_finish": False,
    "max_buffer_sec": None,
    "vac_transcribe_tail": False,
    "vac_threshold": 0.5,
    "vac_min_silence_ms": 500.0,
    "vac_speech_pad_ms": 100.0,
    "vac_context_sec": 0.0,
}
"""whisper_streaming's behaviour, field by field (what a plain ASRConfig gets)."""

LAB_DEFAULTS = {
    "ghost_filter": True,
    "guarded_finish": True,
    "vac_transcribe_tail": True,
    "vac_speech_pad_ms": 300.0,
    "vac_context_sec": 10.0,
}
"""asr_lab's defaults where they differ from the reference (fields left ``None`` outside reference_mode);
the buffer cap's, which follows ``buffer_trimming_sec``, is set in :func:`policy_settings`."""


class PolicyConfig(ASRConfig):
    """All :class:`~asr_lab.ASRConfig` fields, plus the policy's choice, its parameters, LocalAgreement's fixes and VAC's knobs."""

    policy: str = Field(
        default="local-agreement",
        description="Streaming policy: 'local-agreement' (commit what the last agreement_n hypotheses agree on; "
        "n=2 is Whisper-Streaming's reference OnlineASRProcessor), 'hold-n' (commit all but the last hold_n "
        "words), 'stable-prefix' (commit words ending more than stable_delta_sec before the buffer end), "
        "'alignatt' (SimulStreaming's attention-guided decoding; only engines with a steppable decoder), or a name "
        "registered with asr_lab.policies.register_policy.",
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

    reference_mode: bool = Field(
        default=False,
        description="Defaults of whisper_streaming: no buffer cap, no VAC transcribe_tail (with no fix named, "
        "the reference exactly); fixes named explicitly still apply.",
    )
    ghost_filter: Optional[bool] = Field(
        default=None,
        description="Drop words of zero length or beginning after the audio buffer (Whisper emits them at cuts); "
        "None = on, off in reference_mode.",
    )
    guarded_finish: Optional[bool] = Field(
        default=None,
        description="finish() commits no pending sentence that mostly repeats committed text (4-word runs) and no more words than "
        "the remaining audio can hold (5 words/s); None = on, off in reference_mode.",
    )
    max_buffer_sec: Optional[float] = Field(
        default=None,
        gt=0,
        le=600,
        description=f"Hard cap on LocalAgreement's audio buffer (s) when trimming cannot cut; None = "
        f"{DEFAULT_MAX_BUFFER_SEC:g} s, or no cap in reference_mode.",
    )
    vac_transcribe_tail: Optional[bool] = Field(
        default=None,
        description="VAC: recognise an utterance's last audio once more before finishing it (the reference "
        "does not, and loses its last words); None = on, off in reference_mode.",
    )
    vac_context_sec: Optional[float] = Field(
        default=None,
        ge=0,
        le=25,
        description="VAC: seconds of the previous utterance's audio the recogniser hears (already committed) before "
        "each new utterance, after a pause of up to 3 s; None = 10, 0 in reference_mode (each utterance alone).",
    )
    vac_threshold: float = Field(default=0.5, gt=0, lt=1, description="VAC: Silero speech probability that starts speech.")
    vac_min_silence_ms: float = Field(
        default=500.0, ge=0, le=10000, description="VAC: silence (ms) that ends an utterance."
    )
    vac_speech_pad_ms: Optional[float] = Field(
        default=None,
        ge=0,
        le=2000,
        description="VAC: padding (ms) added before and after each utterance; None = 300 (Whisper misreads "
        "utterances cut right at their onset), 100 in reference_mode.",
    )

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in policy_names():
            raise ValueError(
                f"unknown policy {value!r}; known: {', '.join(policy_names())}. A new one is registered with "
                f"asr_lab.policies.register_policy({value!r}, lambda config: MyRule())"
            )
        return value

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

    @model_validator(mode="after")
    def _cap_above_trimming(self) -> "PolicyConfig":
        if self.max_buffer_sec is not None and self.max_buffer_sec < self.buffer_trimming_sec:
            raise ValueError(
                f"max_buffer_sec={self.max_buffer_sec!r} is below buffer_trimming_sec={self.buffer_trimming_sec!r}; "
                f"the cap acts only when trimming cannot: set it >= buffer_trimming_sec (default {DEFAULT_MAX_BUFFER_SEC:g})"
            )
        return self


StreamingPolicyConfig = PolicyConfig
"""The former name of :class:`PolicyConfig` (the fixes and VAC knobs had a class of their own)."""


def policy_label(config: ASRConfig) -> str:
    """A short name of the policy and its parameter: ``"local-agreement-2"``, ``"hold-2"``, ``"stable-1.0s"``, ``"alignatt-25"``."""
    policy = getattr(config, "policy", "local-agreement")
    if policy == "local-agreement":
        return f"local-agreement-{getattr(config, 'agreement_n', 2)}"
    if policy == "hold-n":
        return f"hold-{config.hold_n}"
    if policy == "stable-prefix":
        return f"stable-{config.stable_delta_sec:g}s"
    if policy == "alignatt":
        return f"alignatt-{config.frame_threshold}"
    return policy  # a registered policy: its name


def policy_settings(config: Any) -> dict[str, Any]:
    """The fixes and VAC knobs ``config`` asks for, resolved (``None`` defaults filled in).

    A config without these fields (pocketsphinx's, a plain ASRConfig) gets the reference's.
    """
    if not isinstance(config, PolicyConfig):
        return dict(REFERENCE)
    out = {name: getattr(config, name) for name in REFERENCE}
    defaults = REFERENCE if config.reference_mode else LAB_DEFAULTS
    for name, value in defaults.items():
        if out[name] is None:
            out[name] = value
    if not config.reference_mode and out["max_buffer_sec"] is None:
        out["max_buffer_sec"] = max(DEFAULT_MAX_BUFFER_SEC, config.buffer_trimming_sec)
    return out


def policy_metadata(config: Any) -> dict[str, Any]:
    """The resolved settings for a trace's metadata (``reference_mode`` included), so results say how they were made."""
    return {"reference_mode": bool(getattr(config, "reference_mode", False)), **policy_settings(config)}


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
