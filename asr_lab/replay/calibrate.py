"""Calibration: measure engines on this machine and fit the cost profile that stands for it.

:func:`calibrate` replays a dataset through each configuration on the virtual clock, with every
call measured (CPU time of the process by default, which counts an engine's helper threads;
elapsed time for engines that wait — the ``"cpu"`` rule of :mod:`asr_lab.replay.compute`), and
fits per engine configuration the linear cost model of :mod:`asr_lab.replay.profile` to the
measured steps. Calibrate on a quiet machine: CPU time is not free of a neighbour's use of the
shared caches and SMT siblings (measured here: 10–70 % more beside heavy work).

    asr-lab calibrate --config configs/baselines.json --dataset datasets/librivox \\
        --machine NAME --out configs/profiles/NAME.json
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping, Optional, Union

from asr_lab.replay.profile import CostProfile, machine_fingerprint, profile_from_traces

__all__ = ["calibrate"]


def calibrate(
    configs: Mapping[str, Any],
    dataset: Any,
    *,
    machine: Optional[str] = None,
    compute: str = "cpu",
    repeats: int = 1,
    out: Union[str, os.PathLike, None] = None,
    command: str = "",
    progress: bool = True,
) -> CostProfile:
    """Fit a :class:`CostProfile` for ``configs`` (``{name: config}``, as :func:`asr_lab.compare`
    takes them) from replays of ``dataset`` on this machine, named ``machine`` (default: the host name).

    ``compute``: the measure fitted (``"cpu"``, ``"process"`` or ``"wall"``). Runs use no
    record-replay (every call is computed and measured). ``out``: also save the profile there.
    Each profile entry keeps its fit (R², median step error, predicted / measured total); a run
    that failed raises, since a profile fitted without it would be silently partial.
    """
    if compute not in ("cpu", "process", "thread", "wall"):
        raise ValueError(f"compute={compute!r}: calibrate measures 'cpu' (default), 'process', 'thread' or 'wall'")
    from asr_lab.compare import compare

    results = compare(configs, dataset, clock="virtual", compute=compute, repeats=repeats, record_replay=False,
                      progress=progress)
    if results.failures:
        first = results.failures[0]
        raise RuntimeError(f"calibration run {first.system} / {first.utterance} failed: {first.error}; fix it and calibrate again")
    groups: dict = {}
    for r in results.records:
        identity = r.trace.meta.get("cost_identity")
        if identity is None:
            raise ValueError(
                f"system {r.system!r}: its processor has no cost_identity, so a profile could not be matched to it; "
                f"give it a cost_identity string attribute (processors from load_processor have one)"
            )
        groups.setdefault(r.system, (identity, []))[1].append(r.trace)
    measures = sorted({r.trace.meta.get("compute") for r in results.records})
    profile = profile_from_traces(groups, measure=f"{compute} ({', '.join(map(str, measures))})",
                                  machine=machine_fingerprint(machine), command=command or _command())
    for system, (identity, traces) in groups.items():
        engine = profile.engines.get(next(e.key for e in profile.engines.values() if e.identity == identity))
        engine.fit["measure"] = sorted({t.meta.get("compute") for t in traces})
        engine.fit["audio_sec"] = round(sum(t.duration for t in traces), 3)
    if out is not None:
        profile.source = os.fspath(profile.save(out))
    return profile


def _command() -> str:
    argv = sys.argv
    return " ".join(["asr-lab", *argv[1:]]) if argv and argv[0].endswith("asr-lab") else ""
