"""Named configurations for a policy sweep: one base engine config × policies × their parameters.

``policy_grid(base, {"local-agreement": {"agreement_n": [2, 3]}, "hold-n": {"hold_n": [1, 2]}},
min_chunk_size=[0.5, 1.0])`` gives ``{"local-agreement-2 @0.5s": {...}, ...}`` for
:func:`asr_lab.compare`, which then runs every configuration; re-decoding policies on
the same engine share its recorded answers (:mod:`asr_lab.policies.record_replay`).
"""

from __future__ import annotations

import itertools
import math
import typing
from typing import Any, Mapping, Optional, Sequence

__all__ = ["MAX_CONFIGS", "expand_configs", "policy_grid"]

MAX_CONFIGS = 500
"""Most configurations one grid may expand to (each is a full run over the dataset); pass
``max_configs=`` to allow more, knowingly."""


def _kind(field: str) -> Optional[type]:
    """The value type (bool, int, float or str) a config field takes, from PolicyConfig's annotation;
    None for a field it does not declare (a backend's own)."""
    from asr_lab.policies.config import PolicyConfig

    info = PolicyConfig.model_fields.get(field)
    if info is None:
        return None
    ann = info.annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)] if typing.get_origin(ann) is typing.Union else [ann]
    for a in args:
        if typing.get_origin(a) is typing.Literal:
            return str
        if a in (bool, int, float, str):
            return a
    return None


def _checked_values(field: str, values: Any, where: str) -> list:
    """``values`` as a list after checking it is a list of distinct values of ``field``'s type."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, (list, tuple)):
        raise ValueError(
            f"{where}: {field}={values!r:.60} must be a list of values to sweep, e.g. {field}=[{_example(field)}]; "
            f"a {type(values).__name__} is not one (a string would be swept character by character)"
        )
    if not values:
        raise ValueError(f"{where}: {field}=[] sweeps nothing; give at least one value")
    kind = _kind(field)
    for v in values:
        if kind is None:
            ok = isinstance(v, (bool, int, float, str)) or v is None
        elif kind is float:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        elif kind is int:
            ok = isinstance(v, int) and not isinstance(v, bool)
        else:
            ok = isinstance(v, kind)
        if not ok:
            want = {None: "a number, string, boolean or null", float: "a finite number", int: "an integer (not a boolean)",
                    bool: "true or false", str: "a string"}[kind]
            raise ValueError(f"{where}: {field} value {v!r:.40} ({type(v).__name__}) is not {want}; fix the list {values!r:.80}")
    kinds = {type(v) for v in values} - ({int, float} if kind is float else set())
    if kind is None and len(kinds) > 1 and bool in kinds:
        raise ValueError(f"{where}: {field}={values!r:.80} mixes booleans with other values; sweep one kind of value")
    seen: dict = {}
    for v in values:
        key = (type(v) is bool, v)
        if key in seen:
            raise ValueError(
                f"{where}: {field}={values!r:.80} holds the setting {v!r} twice ({seen[key]!r} and {v!r}); "
                "each value runs one system: remove the repeat"
            )
        seen[key] = v
    return list(values)


def _example(field: str) -> str:
    return {int: "1, 2", float: "0.5, 1.0", bool: "False, True", str: "'a', 'b'"}.get(_kind(field), "1, 2")


def policy_grid(
    base: Mapping[str, Any],
    policies: Mapping[str, Optional[Mapping[str, Sequence[Any]]]],
    max_configs: int = MAX_CONFIGS,
    **common: Sequence[Any],
) -> dict[str, dict]:
    """Every combination of ``policies`` (name -> {field: values}) and ``common`` fields (field=values).

    Names read ``"<policy label>"`` plus ``" @<field>=<value>"`` for each swept common
    field (``min_chunk_size`` is written ``@0.5s``). Each field's values must be a list of
    distinct values of that field's type (``[1, 1.0, True]`` is one setting, three times;
    ``"12"`` is not a list); two configurations with the same name are refused, and so is a
    grid of more than ``max_configs`` configurations. The other field rules are checked
    when :func:`asr_lab.compare` (or :func:`asr_lab.load_processor`) reads the configs.
    """
    from asr_lab.policies.registry import policy_names

    POLICIES = policy_names()
    if not policies:
        raise ValueError(f"policy_grid needs at least one policy, e.g. {{'hold-n': {{'hold_n': [1, 2]}}}}; known: {', '.join(POLICIES)}")
    if not isinstance(policies, Mapping):
        raise ValueError(f"policies={policies!r:.60} must map policy names to {{field: [values]}}, e.g. {{'hold-n': {{'hold_n': [1, 2]}}}}")
    common_items = [(k, _checked_values(k, v, "sweep")) for k, v in common.items()]
    plan = []
    for policy, params in policies.items():
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; use one of {', '.join(POLICIES)}")
        if params is not None and not isinstance(params, Mapping):
            raise ValueError(f"policy {policy!r}: its parameters {params!r:.60} must be {{field: [values]}} or None")
        param_items = [(k, _checked_values(k, v, f"policy {policy!r}")) for k, v in (params or {}).items()]
        plan.append((policy, param_items))
    total = sum(math.prod(len(v) for _, v in items + common_items) for _, items in plan)
    if total > max_configs:
        sizes = " + ".join(
            "×".join(str(len(v)) for _, v in items + common_items) or "1" for _, items in plan
        )
        raise ValueError(
            f"this grid expands to {total} configurations ({sizes}), more than max_configs={max_configs}; each is a full "
            f"run over the dataset. Sweep fewer values, or pass max_configs={total} if you mean it"
        )
    out: dict[str, dict] = {}
    for policy, param_items in plan:
        keys = [k for k, _ in param_items] + [k for k, _ in common_items]
        for values in itertools.product(*[v for _, v in param_items], *[v for _, v in common_items]):
            config = {**base, "policy": policy, **dict(zip(keys, values))}
            name = _name(config, [k for k, _ in common_items])
            if name in out:
                raise ValueError(
                    f"two configurations of the grid are both named {name!r} ({_diff(out[name], config)}); "
                    "one would overwrite the other: remove one of the values"
                )
            out[name] = config
    return out


def _diff(a: dict, b: dict) -> str:
    return ", ".join(f"{k}={a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) or type(a.get(k)) is not type(b.get(k))) or "the same settings"


def _num(value: Any) -> str:
    """``value`` short (``0.5``, ``1``) when that reads back as the same number, else its exact repr."""
    if isinstance(value, float) and float(f"{value:g}") != value:
        return repr(value)
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _name(config: dict, swept: list[str]) -> str:
    policy = config["policy"]
    label = {
        "local-agreement": lambda: f"local-agreement-{config.get('agreement_n', 2)}",
        "hold-n": lambda: f"hold-{config.get('hold_n', 2)}",
        "stable-prefix": lambda: f"stable-{_num(config.get('stable_delta_sec', 1.0))}s",
        "alignatt": lambda: f"alignatt-{config.get('frame_threshold', 25)}",
    }.get(policy, lambda: policy)()  # a registered policy is labelled by its name
    for key in swept:
        value = config[key]
        label += f" @{_num(value)}s" if key == "min_chunk_size" else f" @{key}={_num(value)}"
    return label


def expand_configs(
    configs: Mapping[str, Any], policies: Mapping[str, Any], sweep: Optional[Mapping[str, Sequence[Any]]] = None,
    max_configs: int = MAX_CONFIGS,
) -> dict[str, Any]:
    """Each named config × :func:`policy_grid`: names become ``"<name> <policy label>"`` (what ``compare(policies=...)`` runs).

    The same rules as :func:`policy_grid`; ``max_configs`` bounds the total over all configs.
    """
    out: dict[str, Any] = {}
    for name, config in configs.items():
        if not isinstance(config, Mapping):
            raise TypeError(f"config {name!r}: a policy sweep needs a config dict, not {type(config).__name__}")
        for label, expanded in policy_grid(config, policies, max_configs=max_configs, **dict(sweep or {})).items():
            full = f"{name} {label}"
            if full in out:
                raise ValueError(f"two configurations are both named {full!r}; rename one of the configs")
            out[full] = expanded
        if len(out) > max_configs:
            raise ValueError(
                f"the sweep over {len(configs)} configs expands to more than max_configs={max_configs} configurations; "
                "sweep fewer values, or raise max_configs if you mean it"
            )
    return out
