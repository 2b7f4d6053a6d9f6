"""Stable prefix by time: commit the words that ended more than δ seconds before the buffer end.

A word the recogniser has heard δ seconds of audio after is unlikely to change; words
closer to the end are held back. Uses the engine's word timestamps, so its quality
follows theirs. The longest prefix of the tail whose words all end before
``buffer_end - δ`` is committed (a word is never committed before an earlier one).
"""

from __future__ import annotations

from typing import Tuple

__all__ = ["StablePrefix"]

Word = Tuple[float, float, str]


class StablePrefix:
    """A :class:`~asr_lab.policies.redecoding.CommitRule`: the prefix of words ending before ``buffer_end - delta``."""

    name = "stable-prefix"

    def __init__(self, delta_sec: float = 1.0) -> None:
        if not (isinstance(delta_sec, (int, float)) and delta_sec >= 0):
            raise ValueError(f"stable-prefix needs delta_sec >= 0 seconds, not {delta_sec!r}")
        self.delta_sec = float(delta_sec)

    def reset(self) -> None:
        pass

    def decide(self, tail: list[Word], buffer_end: float) -> int:
        horizon = buffer_end - self.delta_sec
        k = 0
        while k < len(tail) and tail[k][1] <= horizon:
            k += 1
        return k

    def forced(self, until: float) -> None:
        pass
