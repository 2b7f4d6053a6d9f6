"""Named configurations for a policy sweep: one base engine config × policies × their parameters.

``policy_grid(base, {"local-agreement": {"agreement_n": [2, 3]}, "hold-n": {"hold_n": [1, 2]}},
min_chunk_size=[0.5, 1.0])`` gives ``{"local-agreement-2 @0.5s": {...}, ...}`` for
:func:`asr_lab.compare`, which then runs every configuration; re-decoding policies on
the same engine share its recorded answers (:mod:`asr_lab.policies.record_replay`).
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Optional, Sequence

__all__ = ["expand_configs", "policy_grid"]


def policy_grid(
    base: Mapping[str, Any],
    policies: Mapping[str, Optional[Mapping[str, Sequence[Any]]]],
    **common: Sequence[Any],
) -> dict[str, dict]:
    """Every combination of ``policies`` (name -> {field: values}) and ``common`` fields (field=values).

    Names read ``"<policy label>"`` plus ``" @<field>=<value>"`` for each swept common
    field (``min_chunk_size`` is written ``@0.5s``). Fields are validated when
    :func:`asr_lab.compare` (or :func:`asr_lab.load_processor`) reads the configs.
    """
    from asr_lab.policies.config import POLICIES

    if not policies:
        raise ValueError(f"policy_grid needs at least one policy, e.g. {{'hold-n': {{'hold_n': [1, 2]}}}}; known: {', '.join(POLICIES)}")
    out: dict[str, dict] = {}
    common_items = [(k, list(v)) for k, v in common.items()]
    for policy, params in policies.items():
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; use one of {', '.join(POLICIES)}")
        param_items = [(k, list(v)) for k, v in (params or {}).items()]
        keys = [k for k, _ in param_items] + [k for k, _ in common_items]
        for values in itertools.product(*[v for _, v in param_items], *[v for _, v in common_items]):
            config = {**base, "policy": policy, **dict(zip(keys, values))}
            out[_name(config, [k for k, _ in common_items])] = config
    return out


def _name(config: dict, swept: list[str]) -> str:
    policy = config["policy"]
    label = {
        "local-agreement": lambda: f"local-agreement-{config.get('agreement_n', 2)}",
        "hold-n": lambda: f"hold-{config.get('hold_n', 2)}",
        "stable-prefix": lambda: f"stable-{config.get('stable_delta_sec', 1.0):g}s",
        "alignatt": lambda: f"alignatt-{config.get('frame_threshold', 25)}",
    }[policy]()
    for key in swept:
        value = config[key]
        label += f" @{value:g}s" if key == "min_chunk_size" else f" @{key}={value}"
    return label


def expand_configs(configs: Mapping[str, Any], policies: Mapping[str, Any], sweep: Optional[Mapping[str, Sequence[Any]]] = None) -> dict[str, Any]:
    """Each named config × :func:`policy_grid`: names become ``"<name> <policy label>"`` (what ``compare(policies=...)`` runs)."""
    out: dict[str, Any] = {}
    for name, config in configs.items():
        if not isinstance(config, Mapping):
            raise TypeError(f"config {name!r}: a policy sweep needs a config dict, not {type(config).__name__}")
        for label, expanded in policy_grid(config, policies, **dict(sweep or {})).items():
            out[f"{name} {label}"] = expanded
    return out
