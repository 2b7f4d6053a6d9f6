"""The streaming penalty: what streaming costs in accuracy, apart from the model.

With ``compare(..., offline=True)`` (``asr-lab compare --streaming-penalty``) every system ``S`` is
also run offline on each whole utterance: the same configuration, the whole audio fed as
one chunk, one ``process_iter()`` and ``finish()``, on the computation-unaware clock
(:func:`asr_lab.replay.replay` with ``chunk_sec="whole"``), named ``"S (offline)"``. The
penalty is

    penalty(S) = WER(S) − WER(S offline)

with its paired bootstrap interval and two-sided p over the utterances both runs have
(:func:`asr_lab.metrics.paired_bootstrap`: both scored on the same resampled utterances;
Koehn 2004, Bisani & Ney 2004). A positive penalty is accuracy the streaming policy loses
(partial context, commits before the end); its size says nothing about the model itself,
which both runs share.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OFFLINE_SUFFIX", "offline_name", "streaming_penalty"]

OFFLINE_SUFFIX = " (offline)"
"""What the offline twin of a system is called: ``"<system> (offline)"``."""


def offline_name(system: str) -> str:
    """The name of ``system``'s offline run."""
    return f"{system}{OFFLINE_SUFFIX}"


def streaming_penalty(results: Any, metric: str = "wer", *, resamples: int = 1000, level: float = 0.95, seed: int = 0):
    """One row per system that has an offline twin: streaming and offline ``metric``, the
    penalty (streaming − offline) with its interval, p and whether it is significant."""
    import pandas as pd

    rows = {}
    for system in results.systems:
        twin = offline_name(system)
        if system.endswith(OFFLINE_SUFFIX) or twin not in results.systems:
            continue
        s = results.significance(system, twin, metric, resamples=resamples, level=level, seed=seed)
        rows[system] = {
            "utterances": s.utterances,
            f"{metric}_streaming": s.a_value,
            f"{metric}_offline": s.b_value,
            "penalty": s.difference,
            "penalty_low": s.low,
            "penalty_high": s.high,
            "p_value": s.p_value,
            "significant": s.significant,
        }
    if not rows:
        raise ValueError(
            f"no system has an offline run (systems: {', '.join(results.systems)}); run compare(..., offline=True) "
            f"or `asr-lab compare --streaming-penalty`"
        )
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("system")
