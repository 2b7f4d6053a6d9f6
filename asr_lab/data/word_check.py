"""The dataset check on reference word times: in spoken order and inside the audio.

Latency metrics pair each hypothesis word with a reference word's end time, so a
reference whose times run backwards (an aligner that restarted its clock at a sentence)
or past the end of the recording gives wrong latencies without any error. This check
fails loudly instead, naming the utterance, the word and its times.

:meth:`asr_lab.data.Dataset.check` runs it (every manifest read does) and raises
:class:`asr_lab.data.dataset.WordTimeError`. A word passes when ``0 <= start <= end``, ``end <= duration + tolerance`` and
``start >= previous end - tolerance`` (words may touch; ``tolerance`` absorbs the
millisecond rounding of stored times).
"""

from __future__ import annotations

__all__ = ["TOLERANCE_SEC", "describe_problems", "word_time_problems"]

TOLERANCE_SEC = 0.002
"""Slack for stored times rounded to the millisecond (and medians across voices)."""


def word_time_problems(utterance, tolerance: float = TOLERANCE_SEC) -> list[str]:
    """What is wrong with one utterance's word times, one sentence per problem ([] when nothing)."""
    words = utterance.words
    if not words:
        return []
    problems = []
    duration = utterance.duration
    previous_end, previous_word = 0.0, None
    for k, (start, end, word) in enumerate(words):
        where = f"utterance {utterance.id!r}, word {k} {word!r} ({start:.3f}-{end:.3f} s)"
        if start < 0 or end < start:
            problems.append(f"{where}: needs 0 <= start <= end")
        if previous_word is not None and start < previous_end - tolerance:
            problems.append(
                f"{where} starts before the previous word {previous_word!r} ends ({previous_end:.3f} s): times are not monotonic"
            )
        if duration is not None and end > duration + tolerance:
            problems.append(f"{where} ends after the audio ({duration:.3f} s)")
        previous_end, previous_word = max(previous_end, end), word
    return problems


def describe_problems(problems: list[str], where: str) -> str:
    """The message of a failed check: how many problems, the first ten, and what to do."""
    shown = "\n  ".join(problems[:10])
    more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    return (
        f"{where}: {len(problems)} word time problem(s):\n  {shown}{more}\nRe-align the words (e.g. "
        f"`asr-lab dataset align`, or the dataset's recipe with realign) or drop the timings (words=None)"
    )
