"""Cost profiles: an engine call's cost from a measured model of the engine on a named machine.

Under ``compute="cpu"`` or ``"wall"`` the virtual clock advances by what each call cost on the
machine the evaluation runs on, now: another CPU, shared caches or a neighbour's work move the
latencies, and (since a slower call means a bigger next chunk) the transcripts too. Under
``compute="profile"`` it advances by a *modelled* cost instead::

    cost(step) = sum_f  c_f * x_f(step)

where ``x_f`` are counts of what the step did (:data:`FEATURES`: steps, audio seconds fed,
engine calls, audio seconds transcribed, tokens decoded, audio decoded and re-decoded...) and
``c_f >= 0`` are seconds per unit, fitted once per engine configuration by non-negative least
squares (Lawson & Hanson 1974, ``scipy.optimize.nnls``) on calls measured on a quiet machine
(:func:`asr_lab.replay.calibrate.calibrate`, ``asr-lab calibrate``). The features depend only on
the audio chunks the engine was given and on its (deterministic) answers, and the chunk schedule
then depends only on the profile, so traces, latencies and WER are bit-identical from run to run
and from machine to machine given the profile. A profile from another machine answers "what
would this policy do there".

A profile is a small JSON file (:meth:`CostProfile.save`): the machine's fingerprint, the
measure fitted (process CPU time, or elapsed time for engines that wait), and per engine
configuration its identity, coefficients and fit quality. Its :attr:`CostProfile.digest`
(SHA-256 of the canonical JSON) names it in traces and cache keys. A processor is matched to its
entry by its ``cost_identity`` (set by :func:`asr_lab.load_processor`: the configuration without
its policy and driver fields — the model of a call does not depend on which policy asked for it);
a processor with no entry in the profile is refused, naming what the profile holds and the
command that calibrates it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

__all__ = ["FEATURES", "CostProfile", "EngineCost", "ProfileError", "cost_identity", "fit_costs", "load_profile",
           "step_features"]

PROFILE_FORMAT = 1

FEATURES = (
    "steps",           # 1 for every loop step (insert_audio_chunk + process_iter + partial)
    "finishes",        # 1 for the finish() step
    "fed_sec",         # audio seconds inserted in the step
    "calls",           # engine calls (an ASRBase's transcribe; step_info()["calls"])
    "call_audio_sec",  # audio seconds those calls transcribed (buffer lengths)
    "windows",         # 30 s Whisper windows those calls encoded (ceil(audio / 30) per call)
    "tokens",          # tokens those calls decoded
    "fallbacks",       # extra decodings at a higher temperature
    "decoded_sec",     # audio decoded incrementally by a native engine (pocketsphinx's live pass)
    "redecoded_sec",   # audio decoded again in one piece (pocketsphinx's endpoint re-decode)
)
"""What a step did, as counts a cost model can weigh (see :func:`step_features`)."""

_IDENTITY_DROP = {"model_cache_dir"}
_MISSING = object()
_WINDOW_SEC = 30.0


class ProfileError(ValueError):
    """A profile that cannot be read, or that has no model for the engine asked about."""


def cost_identity(config: Any) -> str:
    """The part of a configuration that decides what one engine call costs, as canonical JSON.

    ``config``: a pydantic config (an :class:`~asr_lab.ASRConfig` subclass) or a plain dict of
    its fields. Only fields set to something other than their default count (and ``backend`` and
    ``model``), so a field a later asr_lab adds with a default does not orphan a profile. Policy and driver
    fields (which policy asks, how often) and the model cache folder are left out: the profile
    models a call from what it did, whoever asked for it.
    """
    from asr_lab.policies.config import DRIVER_FIELDS, POLICY_FIELDS

    if hasattr(config, "model_dump"):
        data = {**config.model_dump(exclude_defaults=True), "backend": config.backend}
        if "model" in type(config).model_fields:  # the model always: a default model could change
            data["model"] = config.model
    else:
        data = dict(config)
    drop = set(POLICY_FIELDS) | set(DRIVER_FIELDS) | _IDENTITY_DROP
    return json.dumps({k: v for k, v in data.items() if k not in drop}, sort_keys=True, default=str)


def identity_key(identity: str) -> str:
    """The short name of a cost identity (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def step_features(fed_sec: float, info: Optional[Mapping], final: bool) -> dict[str, float]:
    """The counts :data:`FEATURES` of one replay step.

    ``fed_sec``: audio inserted in the step; ``info``: what the processor's ``step_info()``
    reported (Whisper calls with ``audio_sec``, ``tokens``, ``fallbacks``; pocketsphinx's
    ``decoded_sec``/``redecoded_sec``), ``None`` when it reports nothing; ``final``: the
    ``finish()`` step. Values are rounded to microseconds / whole counts so that they, and
    the cost computed from them, are the same wherever they are computed.
    """
    x = {name: 0.0 for name in FEATURES}
    x["finishes" if final else "steps"] = 1.0
    x["fed_sec"] = round(float(fed_sec), 6)
    if info:
        calls = info.get("calls") or []
        x["calls"] = float(len(calls))
        for c in calls:
            audio = float(c.get("audio_sec", 0.0))
            x["call_audio_sec"] += audio
            x["windows"] += float(max(1, math.ceil(audio / _WINDOW_SEC - 1e-9))) if audio > 0 else 0.0
            x["tokens"] += float(c.get("tokens", 0))
            x["fallbacks"] += float(c.get("fallbacks", 0))
        x["call_audio_sec"] = round(x["call_audio_sec"], 6)
        for name in ("decoded_sec", "redecoded_sec"):
            x[name] = round(float(info.get(name, 0.0)), 6)
    return x


@dataclass
class EngineCost:
    """The cost model of one engine configuration: seconds per unit of each feature, and its fit.

    ``identity``: the :func:`cost_identity` it was fitted for; ``system``: the name it had in the
    calibration; ``coefficients``: ``{feature: seconds per unit}``; ``fit``: steps used, R², the
    median relative error of a step's predicted cost, predicted / measured total.
    """

    identity: str
    system: str
    coefficients: dict
    fit: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return identity_key(self.identity)

    def cost(self, features: Mapping[str, float]) -> float:
        """Modelled seconds for a step with these features (summed in :data:`FEATURES` order)."""
        total = 0.0
        for name in FEATURES:
            c = self.coefficients.get(name, 0.0)
            if c:
                total += c * features.get(name, 0.0)
        return total


@dataclass
class CostProfile:
    """Cost models of engines on one machine (see the module docstring). Save/load as JSON."""

    machine: dict
    measure: str
    engines: dict  # key -> EngineCost
    command: str = ""
    created: str = ""
    format: int = PROFILE_FORMAT
    source: Optional[str] = None
    """The file it was read from (not part of its identity)."""

    @property
    def name(self) -> str:
        return str(self.machine.get("name", "unnamed"))

    def to_dict(self) -> dict:
        return {
            "format": self.format, "machine": self.machine, "measure": self.measure, "command": self.command,
            "created": self.created,
            "engines": {k: asdict(e) for k, e in sorted(self.engines.items())},
        }

    @property
    def digest(self) -> str:
        """SHA-256 (16 hex digits) of the canonical JSON: what traces and cache keys record."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def describe(self) -> dict:
        """What a trace records about the profile it ran under."""
        return {"name": self.name, "digest": self.digest, "measure": self.measure, "source": self.source}

    def save(self, path: Union[str, os.PathLike]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: Mapping, source: Optional[str] = None) -> "CostProfile":
        where = source or "profile"
        if not isinstance(data, Mapping) or "engines" not in data or "machine" not in data:
            raise ProfileError(f"{where}: not a cost profile (a JSON object with 'machine' and 'engines', written by "
                               f"asr-lab calibrate)")
        if data.get("format") != PROFILE_FORMAT:
            raise ProfileError(f"{where}: profile format {data.get('format')!r}, this asr_lab reads format "
                               f"{PROFILE_FORMAT}; re-calibrate with asr-lab calibrate")
        engines = {}
        for key, e in data["engines"].items():
            try:
                engine = EngineCost(e["identity"], e.get("system", "?"), dict(e["coefficients"]), dict(e.get("fit", {})))
            except (KeyError, TypeError) as exc:
                raise ProfileError(f"{where}: engine entry {key!r} is incomplete ({exc})") from None
            unknown = set(engine.coefficients) - set(FEATURES)
            if unknown:
                raise ProfileError(f"{where}: engine {engine.system!r} weighs unknown features {sorted(unknown)}; "
                                   f"known: {', '.join(FEATURES)}")
            engines[engine.key] = engine
        return cls(dict(data["machine"]), str(data.get("measure", "?")), engines, str(data.get("command", "")),
                   str(data.get("created", "")), PROFILE_FORMAT, source)

    def engine_for(self, processor: Any = None, *, identity: Optional[str] = None) -> EngineCost:
        """The model for ``processor`` (by its ``cost_identity``) or for ``identity``; ProfileError if none."""
        if identity is None:
            identity = getattr(processor, "cost_identity", None)
        if not isinstance(identity, str):
            raise ProfileError(
                f"{type(processor).__name__} has no cost_identity, so no profile entry can be chosen for it; "
                f"processors made by asr_lab.load_processor have one; for your own processor set a "
                f"cost_identity string attribute (what decides its cost) and calibrate it"
            )
        engine = self.engines.get(identity_key(identity))
        if engine is None:
            ranked = sorted(self.engines.values(), key=lambda e: _difference(identity, e).count("="))  # nearest first
            held = "; ".join(_difference(identity, e) for e in ranked) or "nothing"
            raise ProfileError(
                f"profile {self.name!r} ({self.source or self.digest}) has no cost model for this engine "
                f"configuration; it holds {held}. Calibrate this configuration on the machine "
                f"(asr-lab calibrate --config CONFIG.json --out PROFILE.json), or use compute='cpu'"
            )
        return engine


def _difference(identity: str, engine: EngineCost) -> str:
    """How ``identity`` differs from ``engine``'s, field by field (both canonical JSON objects)."""
    try:
        mine, theirs = json.loads(identity), json.loads(engine.identity)
    except json.JSONDecodeError:
        return f"{engine.system!r} ({_short(engine.identity, 80)})"
    if not (isinstance(mine, dict) and isinstance(theirs, dict)):
        return f"{engine.system!r} ({_short(engine.identity, 80)})"
    shown = lambda d, k: repr(d[k]) if k in d else "default"
    diff = [f"{k}={shown(mine, k)} (profile: {shown(theirs, k)})" for k in sorted(set(mine) | set(theirs))
            if mine.get(k, _MISSING) != theirs.get(k, _MISSING)]
    return f"{engine.system!r}, which differs in " + ", ".join(diff[:6]) + (" ..." if len(diff) > 6 else "")


def _short(identity: str, limit: int = 160) -> str:
    return identity if len(identity) <= limit else identity[: limit - 3] + "..."


def load_profile(source: Union[str, os.PathLike, CostProfile, Mapping]) -> CostProfile:
    """A :class:`CostProfile` from a JSON file path, a dict, or a profile (returned as is)."""
    if isinstance(source, CostProfile):
        return source
    if isinstance(source, Mapping):
        return CostProfile.from_dict(source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"profile must be a path of a profile .json, a dict or a CostProfile, not {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"cost profile {os.fspath(source)!r} not found (shipped ones: configs/profiles/*.json); make one with "
            f"asr-lab calibrate --config CONFIG.json --out {os.fspath(source)}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{path}: not a JSON cost profile ({exc})") from None
    return CostProfile.from_dict(data, source=os.fspath(path))


def fit_costs(samples: Iterable[tuple[Mapping[str, float], float]]) -> tuple[dict, dict]:
    """Fit ``cost = sum_f c_f x_f`` with ``c_f >= 0`` to ``(features, measured seconds)`` pairs.

    Non-negative least squares on columns scaled to unit maximum (features that never occur get
    0). Returns ``(coefficients, fit)`` where ``fit`` holds ``steps``, ``r2``
    (1 − SS_res / SS_tot), ``median_rel_error`` (median |predicted − measured| / measured over
    steps that cost at least 1 ms) and ``total_ratio`` (Σ predicted / Σ measured).
    """
    import numpy as np
    from scipy.optimize import nnls

    rows = [(x, float(y)) for x, y in samples]
    if not rows:
        raise ValueError("no measured steps to fit a cost model to: calibrate on a dataset with at least one utterance")
    X = np.array([[float(x.get(f, 0.0)) for f in FEATURES] for x, _ in rows], dtype=float)
    y = np.array([v for _, v in rows], dtype=float)
    scale = X.max(axis=0)
    used = scale > 0
    coef = np.zeros(len(FEATURES))
    if used.any():
        sol, _ = nnls(X[:, used] / scale[used], y, maxiter=50 * X.shape[1])
        coef[used] = sol / scale[used]
    pred = X @ coef
    ss_tot = float(((y - y.mean()) ** 2).sum())
    ss_res = float(((y - pred) ** 2).sum())
    big = y >= 1e-3
    fit = {
        "steps": len(rows),
        "r2": round(1.0 - ss_res / ss_tot, 4) if ss_tot > 0 else 1.0,
        "median_rel_error": round(float(np.median(np.abs(pred[big] - y[big]) / y[big])), 4) if big.any() else None,
        "total_ratio": round(float(pred.sum() / y.sum()), 4) if y.sum() > 0 else None,
        "measured_total_sec": round(float(y.sum()), 4),
    }
    # 12 significant digits: the same JSON (and digest) wherever it is written
    coefficients = {f: float(f"{c:.12g}") for f, c in zip(FEATURES, coef) if c > 0}
    return coefficients, fit


def machine_fingerprint(name: Optional[str] = None) -> dict:
    """The machine a profile was measured on: a name, CPU model, cores, platform, and their digest."""
    import platform

    from asr_lab.environment import fingerprint

    env = fingerprint()
    facts = {"cpu_model": env.cpu_model, "logical_cores": env.logical_cores, "usable_cores": env.usable_cores,
             "platform": env.platform, "packages": env.packages}
    facts["digest"] = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    facts["name"] = name or platform.node() or "machine"
    facts["load_at_calibration"] = env.load_before
    return facts


def profile_from_traces(groups: Mapping[str, tuple[str, Sequence[Any]]], *, machine: dict, target: str = "charged",
                        measure: Optional[str] = None, command: str = "") -> CostProfile:
    """A profile from recorded traces: ``{system: (cost identity, [Trace, ...])}``, fitted per system.

    Each trace's steps must carry ``features`` (every replay records them) and the measured
    cost ``target`` (``"process"``, ``"thread"`` or ``"wall"``, or ``"charged"``: what the run's
    clock counted). ``measure``: how the profile describes it (default ``target``).
    """
    if target not in ("charged", "process", "thread", "wall"):
        raise ValueError(f"target={target!r}: fit to 'charged', 'process', 'thread' or 'wall' step costs")
    import time

    engines = {}
    for system, (identity, traces) in groups.items():
        samples = []
        for trace in traces:
            for s in trace.steps:
                if s.features is None:
                    raise ProfileError(f"{system}: a trace step has no features (recorded by an older asr_lab); re-run it")
                y = s.compute_sec if target == "charged" else getattr(s, f"{target}_sec")
                samples.append((s.features, y))
        coefficients, fit = fit_costs(samples)
        engine = EngineCost(identity, system, coefficients, fit)
        if engine.key in engines:
            engines[engine.key].fit.setdefault("also", []).append(system)
            continue
        engines[engine.key] = engine
    return CostProfile(machine, measure or target, engines, command, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
