"""Trace audits: each impossible or suspicious event is found, a clean replay has none."""

import numpy as np
import pytest

import asr_lab
from asr_lab.replay import Emission, ReplayError, Step, Trace
from asr_lab.replay.audit import AUDIT_KINDS, audit
from asr_lab.testing import TimelineASR, words_from_text

WORDS = words_from_text("the cat sat on the mat and then it slept all day long", pause_every=4)


def test_a_clean_replay_has_no_findings():
    proc = asr_lab.OnlineASRProcessor(TimelineASR(WORDS), min_chunk_sec=0.5)
    trace = asr_lab.replay(proc, TimelineASR.stream_audio(WORDS[-1][1] + 1), clock="virtual")
    # nothing impossible; a latency spike would be real contention on a shared machine, not a bug
    assert trace.emissions and [f for f in trace.audit() if f.kind != "latency_spike"] == []


def em(start, end, text, at, fed, step=0, final=False, words=None):
    return Emission(start, end, text, emitted_at=at, compute_sec=0.01, audio_fed=fed, step=step, final=final, words=words)


def kinds(findings):
    return sorted(f.kind for f in findings)


def test_each_kind_is_found():
    trace = Trace(
        emissions=[
            em(0.0, 1.5, "early", at=1.1, fed=1.0),  # ends after the audio fed
            em(1.2, 2.0, "overlapping", at=2.2, fed=2.0),  # starts inside the previous span
            em(0.5, 0.9, "backwards", at=2.1, fed=2.5, step=2),  # starts before; emitted earlier than #1; emitted before fed
            em(2.5, 4.0, "late", at=4.2, fed=4.0, step=3, words=[(2.5, 2.5, "ghost"), (2.6, 4.0, "late")]),
        ],
        steps=[Step(i, i * 1.0, i + 1.0, 0.01, i + 1.01) for i in range(4)],
        meta={"duration": 3.0, "clock": "virtual"},
    )
    found = kinds(audit(trace))
    for kind in ("before_audio", "overlap", "out_of_order", "emitted_before_fed", "past_audio_end", "zero_length"):
        assert kind in found, (kind, found)
    assert all(k in AUDIT_KINDS for k in found)
    assert any("ghost" in f.message for f in audit(trace) if f.kind == "zero_length")
    assert all(str(f).startswith(f"[{f.kind}]") for f in audit(trace))


class FinishOnlyProcessor:
    """Stand-in engine that says nothing while streaming and everything in finish()."""

    def init(self, offset=0.0):
        self.n = 0

    def insert_audio_chunk(self, audio):
        self.n += len(audio)

    def process_iter(self):
        return None

    def finish(self):
        return (0.0, self.n / 16000, "everything at once")


def test_text_committed_only_at_finish_is_flagged():
    trace = asr_lab.replay(FinishOnlyProcessor(), np.zeros(16000 * 3, np.float32), clock="virtual", chunk_sec=0.5)
    found = trace.audit()
    assert kinds(found) == ["finish_only"] and "3 words" in found[0].message


def test_latency_spikes_and_errors():
    ems = [em(i, i + 0.5, f"w{i}", at=i + 0.8, fed=i + 0.6, step=i) for i in range(6)]
    ems[4] = em(4, 4.5, "stalled", at=9.0, fed=4.6, step=4)
    steps = [Step(i, i, i + 1.0, 0.1, i + 1.1) for i in range(6)]
    steps[4] = Step(4, 4, 5, 4.4, 9.0)
    trace = Trace(emissions=ems, steps=steps, meta={"duration": 10.0, "clock": "virtual"},
                  error=ReplayError("RuntimeError", "boom", 6, 10.0))
    found = audit(trace)
    spikes = [f for f in found if f.kind == "latency_spike"]
    assert {f.emission for f in spikes} == {4, None} and {f.step for f in spikes} == {4}
    assert "error" in kinds(found)
    assert audit(trace, spike_sec=10.0) and not [f for f in audit(trace, spike_sec=10.0) if f.kind == "latency_spike"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="tolerance=-1"):
        audit(Trace(), tolerance=-1)
    with pytest.raises(TypeError, match="Trace"):
        audit([1, 2])
