"""Hold-n: commit every word of the hypothesis but the last ``n``.

The simplest black-box rule (used, for example, as a baseline in Polák et al. 2022 and
in Whisper-Streaming's discussion): the end of a hypothesis is where the recogniser has
heard least, so it is held back; everything before it is taken as final. ``n = 0``
commits each hypothesis whole.
"""

from __future__ import annotations

from typing import Tuple

__all__ = ["HoldN"]

Word = Tuple[float, float, str]


class HoldN:
    """A :class:`~asr_lab.policies.redecoding.CommitRule`: all but the last ``n`` words of the tail."""

    name = "hold-n"

    def __init__(self, n: int = 2) -> None:
        if not (isinstance(n, int) and n >= 0):
            raise ValueError(f"hold-n needs n >= 0 words to hold back, not {n!r}")
        self.n = n

    def reset(self) -> None:
        pass

    def decide(self, tail: list[Word], buffer_end: float) -> int:
        return max(0, len(tail) - self.n)

    def forced(self, until: float) -> None:
        pass
