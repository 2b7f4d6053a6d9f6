"""Policies by name: what a config's ``policy="..."`` runs, and the one place a new policy is registered.

A policy that decides from whole hypotheses on the fixed re-decoding schedule is a
:class:`~asr_lab.policies.redecoding.CommitRule` (``decide(tail, buffer_end) -> how many words
to commit``, ``forced(until)``, ``reset()``). Registering one is one line::

    register_policy("first-k", lambda config: FirstK(3))

after which ``{"backend": "pocketsphinx-la", "policy": "first-k"}`` runs it on every
policy-aware backend, in :func:`asr_lab.compare`, :func:`~asr_lab.policies.policy_grid` and
the CLI, under VAC too. The factory receives the validated config, so a rule can read the
engine-independent fields it needs (``buffer_trimming_sec``...).

Built in: ``local-agreement`` (n = 2 runs the reference :class:`~asr_lab.OnlineASRProcessor`
itself, other n :class:`~asr_lab.policies.local_agreement.LocalAgreementN`), ``hold-n``,
``stable-prefix``, and ``alignatt``, which steps a decoder token by token instead and is
dispatched by :func:`~asr_lab.policies.processor.policy_processor`.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from asr_lab.core.config import ConfigError

__all__ = ["BUILTIN_POLICIES", "get_rule_factory", "policy_names", "register_policy", "unregister_policy"]

RuleFactory = Callable[[Any], Any]
"""config -> a fresh CommitRule for one stream."""

BUILTIN_POLICIES = ("local-agreement", "hold-n", "stable-prefix", "alignatt")
"""The policies asr_lab ships, in the order tables list them."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _local_agreement(config: Any) -> Any:
    from asr_lab.policies.local_agreement import LocalAgreementN

    return LocalAgreementN(config.agreement_n)


def _hold_n(config: Any) -> Any:
    from asr_lab.policies.hold_n import HoldN

    return HoldN(config.hold_n)


def _stable_prefix(config: Any) -> Any:
    from asr_lab.policies.stable_prefix import StablePrefix

    return StablePrefix(config.stable_delta_sec)


_RULES: dict[str, Optional[RuleFactory]] = {
    "local-agreement": _local_agreement,
    "hold-n": _hold_n,
    "stable-prefix": _stable_prefix,
    "alignatt": None,  # not a CommitRule: policy_processor steps the engine's TokenDecoder
}


def register_policy(name: str, rule: RuleFactory) -> None:
    """Make ``policy=name`` run the CommitRule that ``rule(config)`` returns, on the re-decoding schedule.

    Raises :class:`ValueError` for a malformed name, a name that is built in, or a ``rule``
    that is not callable. Registering the same name again replaces the earlier rule.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"policy name {name!r} is not allowed; use lower-case letters, digits, '-', '_' or '.', e.g. 'first-k'"
        )
    if name in BUILTIN_POLICIES:
        raise ValueError(f"policy {name!r} is built in and cannot be replaced; register yours under another name")
    if not callable(rule):
        raise ValueError(
            f"register_policy({name!r}, ...) needs a callable config -> CommitRule, not {type(rule).__name__}; "
            f"e.g. register_policy({name!r}, lambda config: MyRule())"
        )
    _RULES[name] = rule


def unregister_policy(name: str) -> None:
    """Forget a registered policy (built-ins stay); unknown names are ignored."""
    if name not in BUILTIN_POLICIES:
        _RULES.pop(name, None)


def policy_names() -> tuple[str, ...]:
    """Every policy a config may name: the built-ins, then the registered ones in registration order."""
    return tuple(_RULES)


def get_rule_factory(name: str) -> RuleFactory:
    """The CommitRule factory of policy ``name``; :class:`~asr_lab.ConfigError` naming the known ones otherwise."""
    if name not in _RULES:
        raise ConfigError(
            f"unknown policy {name!r}; known: {', '.join(policy_names())}. A new one is registered with "
            f"asr_lab.policies.register_policy({name!r}, lambda config: MyRule())"
        )
    rule = _RULES[name]
    if rule is None:
        raise ConfigError(f"policy {name!r} is not a commit rule on the re-decoding schedule; it has its own processor")
    return rule
