"""Replaying audio into processors on a clock, and the traces it records."""

from asr_lab.core.lazy import callable_package
from asr_lab.replay.clocks import CLOCKS, Clock, UnawareClock, VirtualClock, WallClock, make_clock
from asr_lab.replay.compute import COMPUTE
from asr_lab.replay.live import LiveAudio
from asr_lab.replay.replayer import replay
from asr_lab.replay.deadline import CallTimeoutError
from asr_lab.replay.retime import RetimeError, retime, retime_results
from asr_lab.replay.trace import Emission, PartialSnapshot, ReplayError, Step, Trace, TraceFileError
from asr_lab.replay.validate import InvalidOutputError
from asr_lab.replay.profile import CostProfile, ProfileError, load_profile

__all__ = [
    "CLOCKS",
    "COMPUTE",
    "CallTimeoutError",
    "CostProfile",
    "Clock",
    "Emission",
    "InvalidOutputError",
    "LiveAudio",
    "PartialSnapshot",
    "ProfileError",
    "ReplayError",
    "RetimeError",
    "Step",
    "Trace",
    "TraceFileError",
    "UnawareClock",
    "VirtualClock",
    "WallClock",
    "load_profile",
    "make_clock",
    "replay",
    "retime",
    "retime_results",
]

# asr_lab.replay(...) is the replay function, asr_lab.replay.retime a module: both work
callable_package(__name__, replay)
