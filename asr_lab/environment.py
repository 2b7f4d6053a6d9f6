"""The environment fingerprint: what machine, how loaded, which versions produced a result.

Latencies on a computation-aware clock depend on the machine; a number without the
machine it came from cannot be compared. Every replay records the load around it
(:func:`run_conditions` / :func:`after_run_conditions`, cheap: two file reads), and a
comparison records one full :class:`EnvironmentFingerprint` (CPU model, cores, usable
cores, engine thread settings, load before/after, package versions) with its results.

"Busy" means other programs wanted the CPU: the 1-minute load average minus the
comparison's own engine processes is at least :data:`BUSY_OTHERS` (half a core of other
runnable work on average). Linux's CPU pressure (``/proc/pressure/cpu``, share of time some
task waited for a core, last 10 s) is recorded too where the kernel has it. Both are
averages over the past: a short run can start on a quiet machine and still be disturbed.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

from asr_lab.threads import thread_settings, usable_cores

__all__ = ["EnvironmentFingerprint", "fingerprint", "run_conditions", "after_run_conditions", "busy_reason", "BUSY_OTHERS"]

BUSY_OTHERS = 0.5
"""Load average above the comparison's own processes from which the machine counts as busy."""

PACKAGES = ("asr-lab", "numpy", "faster-whisper", "ctranslate2", "pocketsphinx", "torch", "openai-whisper",
            "mlx", "mlx-whisper", "onnxruntime", "jiwer", "librosa")


@dataclass
class EnvironmentFingerprint:
    """Where and under what load a comparison ran. ``load_*``: 1/5/15-minute load averages;
    ``cpu_pressure_*``: % of the last 10 s some task waited for a core (Linux PSI), ``None`` elsewhere."""

    cpu_model: str
    logical_cores: int
    usable_cores: int
    affinity: Optional[list]
    platform: str
    python: str
    packages: dict
    threads: dict
    load_before: list
    load_after: Optional[list] = None
    cpu_pressure_before: Optional[float] = None
    cpu_pressure_after: Optional[float] = None
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EnvironmentFingerprint":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})

    def finish(self) -> "EnvironmentFingerprint":
        """Record the load after the work."""
        self.load_after, self.cpu_pressure_after = _load(), _cpu_pressure()
        return self

    def busy(self, own_processes: int = 1) -> Optional[str]:
        """Why the machine counts as busy around the work, or ``None``."""
        loads = [self.load_before[0]] + ([self.load_after[0]] if self.load_after else [])
        return busy_reason(max(loads), own_processes, self.cpu_pressure_after)

    def markdown(self) -> str:
        """A short Markdown block for ``summary.md``."""
        t = self.threads
        pkgs = ", ".join(f"{k} {v}" for k, v in self.packages.items())
        after = "–" if self.load_after is None else " / ".join(f"{x:.2f}" for x in self.load_after)
        psi = lambda v: "–" if v is None else f"{v:.1f} %"
        return (
            f"- CPU: {self.cpu_model}; {self.logical_cores} logical cores, {self.usable_cores} usable "
            f"(affinity {self.affinity})\n"
            f"- engine threads in this process: {t.get('default_engine_threads')} per engine, {t.get('workers')} worker(s)"
            + "".join(f"; {k} {v}" for k, v in t.items() if k.startswith(("set_", "OMP", "torch")))
            + "\n"
            f"- load average (1/5/15 min) before: {' / '.join(f'{x:.2f}' for x in self.load_before)}; after: {after}; "
            f"CPU pressure (10 s) before {psi(self.cpu_pressure_before)}, after {psi(self.cpu_pressure_after)}\n"
            f"- {self.platform}, Python {self.python}; {pkgs}\n"
        )


def fingerprint() -> EnvironmentFingerprint:
    """The fingerprint of this machine now (load *before*; call ``.finish()`` after the work)."""
    try:
        affinity: Optional[list] = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return EnvironmentFingerprint(
        cpu_model=_cpu_model(),
        logical_cores=os.cpu_count() or 1,
        usable_cores=usable_cores(),
        affinity=affinity,
        platform=platform.platform(),
        python=platform.python_version(),
        packages=_versions(),
        threads=thread_settings(),
        load_before=_load(),
        cpu_pressure_before=_cpu_pressure(),
    )


def run_conditions() -> dict:
    """Per-replay record before the stream starts: load, CPU pressure, thread settings."""
    return {"load_before": _load()[0], "cpu_pressure_before": _cpu_pressure(), "threads": thread_settings()}


def after_run_conditions() -> dict:
    """Per-replay record after the stream: load and CPU pressure."""
    return {"load_after": _load()[0], "cpu_pressure_after": _cpu_pressure()}


def busy_reason(load1: float, own_processes: int = 1, cpu_pressure: Optional[float] = None) -> Optional[str]:
    """Why a machine with 1-minute load ``load1`` counts as busy, ``own_processes`` of it ours; else ``None``."""
    others = load1 - own_processes
    if others >= BUSY_OTHERS:
        pressure = "" if cpu_pressure is None else f", CPU pressure {cpu_pressure:.0f} %"
        return (f"load average {load1:.2f} with {own_processes} process(es) of ours: about {others:.1f} "
                f"core(s) of other work{pressure}")
    return None


def _load() -> list:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return [float("nan")] * 3


def _cpu_pressure() -> Optional[float]:
    try:
        with open("/proc/pressure/cpu") as f:
            first = f.readline().split()
    except OSError:
        return None
    for item in first:
        if item.startswith("avg10="):
            return float(item[6:])
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict:
    from importlib import metadata

    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
