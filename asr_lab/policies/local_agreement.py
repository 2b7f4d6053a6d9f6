"""LocalAgreement-n: commit the longest common prefix of the last ``n`` hypothesis tails.

Generalises Whisper-Streaming's LocalAgreement-2 (Macháček et al. 2023; Polák et al.
2022 define LA-n) to any ``n``: a word is committed once ``n`` consecutive hypotheses
agree on it (by text, at the same position of their uncommitted tails); it keeps the
newest hypothesis's timestamps. ``n = 1`` commits every hypothesis whole.

The reference LocalAgreement-2 is :class:`~asr_lab.OnlineASRProcessor`, and
``policy="local-agreement"`` with ``agreement_n=2`` runs exactly that. This rule runs on
:class:`~asr_lab.policies.redecoding.RedecodingProcessor`'s fixed schedule instead (its
buffer is cut at segment ends whether or not they were committed); with ``n = 2`` and no
cut it commits exactly what the reference commits (a test checks it).
"""

from __future__ import annotations

from typing import Tuple

__all__ = ["LocalAgreementN"]

Word = Tuple[float, float, str]


class LocalAgreementN:
    """A :class:`~asr_lab.policies.redecoding.CommitRule`: words the last ``n`` tails agree on."""

    name = "local-agreement"

    def __init__(self, n: int = 2) -> None:
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"local-agreement needs n >= 1 hypotheses to agree, not {n!r}")
        self.n = n
        self.reset()

    def reset(self) -> None:
        self.history: list[list[Word]] = []  # the previous n-1 tails, uncommitted parts only

    def decide(self, tail: list[Word], buffer_end: float) -> int:
        earlier = self.history[-(self.n - 1):] if self.n > 1 else []
        if len(earlier) < self.n - 1:
            k = 0
        else:
            k = 0
            while all(k < len(h) for h in earlier) and k < len(tail) and all(h[k][2] == tail[k][2] for h in earlier):
                k += 1
        kept = [h[k:] for h in earlier] + [list(tail[k:])]
        self.history = kept[len(kept) - (self.n - 1):] if self.n > 1 else []
        return k

    def forced(self, until: float) -> None:
        # the schedule committed everything up to `until`: forget it in the remembered tails too
        self.history = [[w for w in h if w[0] > until - 0.1] for h in self.history]
