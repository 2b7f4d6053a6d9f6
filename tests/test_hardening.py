"""Bad input and faults, tried as a hostile user would: each ends in a clear error or a bounded,
documented behaviour, and nothing already computed is lost (issue 14)."""

import math
import time

import numpy as np
import pytest

from asr_lab.replay import replay

SR = 16000


class AnsweringProcessor:
    """Stand-in engine: answers ``answers[k]`` on its k-th process_iter(), then None;
    ``partials`` likewise for partial() when given."""

    def __init__(self, answers, partials=None, hang_at=None):
        self.answers, self.partials, self.hang_at = list(answers), partials, hang_at
        if partials is None:
            self.partial = None  # only processors that have partial() get it called
        self.init()

    def init(self, offset=0.0):
        self.k = self.p = 0

    def insert_audio_chunk(self, audio):
        pass

    def process_iter(self):
        self.k += 1
        if self.hang_at is not None and self.k == self.hang_at:
            time.sleep(30)
        return self.answers[self.k - 1] if self.k <= len(self.answers) else None

    def partial(self):
        self.p += 1
        return self.partials[self.p - 1] if self.p <= len(self.partials) else None

    def finish(self):
        return None


def _run(proc, sec=5.0, **kw):
    kw = dict(clock="unaware", chunk_sec=1.0, warmup_sec=0) | kw
    with pytest.warns(RuntimeWarning, match="replay stopped"):
        return replay(proc, np.zeros(int(sec * SR), dtype=np.float32), **kw)


GOOD = (0.0, 1.0, "hello")
BAD_OUTPUTS = {
    "None as text": ((0.5, 1.5, None), "text must be a str, got NoneType"),
    "bytes as text": ((0.5, 1.5, b"a"), "text must be a str, got bytes"),
    "4-tuple": ((0.5, 1.5, "a", 0.9), "3-tuple"),
    "a bare string": ("hello", "3-tuple"),
    "start after end": ((1.9, 1.2, "a"), "start 1.900 s is after end 1.200 s"),
    "200 s into a 5 s stream": ((200.0, 201.0, "a"), "outside the audio fed so far"),
    "NaN start": ((math.nan, 1.5, "a"), "start must be finite"),
    "text as start": (("0", 1.5, "a"), "start must be a number"),
}


@pytest.mark.parametrize("name", list(BAD_OUTPUTS))
def test_a_malformed_answer_ends_the_run_as_an_error_naming_processor_step_value_and_rule(name):
    bad, rule = BAD_OUTPUTS[name]
    trace = _run(AnsweringProcessor([GOOD, bad, (2.0, 3.0, "never")]))
    assert [e.text for e in trace.emissions] == ["hello"], "what came before is kept"
    err = trace.error
    assert err.type == "InvalidOutputError" and err.step == 1 and err.processor == "AnsweringProcessor"
    assert "AnsweringProcessor.process_iter() at step 1" in err.message
    assert repr(bad)[:20] in err.message and rule in err.message


def test_a_malformed_partial_is_an_error_not_an_index_error():
    trace = _run(AnsweringProcessor([GOOD], partials=[(1.0, 2.0, "par"), ()]))
    assert trace.error.type == "InvalidOutputError" and "partial() at step 1" in trace.error.message
    assert [p.text for p in trace.partials] == ["par"] and trace.text == "hello"


def test_the_references_nothing_and_empty_text_are_not_errors():
    trace = replay(AnsweringProcessor([(None, None, ""), (1.0, 1.0, ""), None, GOOD]), np.zeros(5 * SR, np.float32),
                   clock="unaware", chunk_sec=1.0, warmup_sec=0)
    assert trace.ok and trace.text == "hello"


def test_a_hung_call_ends_the_run_with_a_timeout_naming_the_call():
    t0 = time.perf_counter()
    trace = _run(AnsweringProcessor([GOOD, GOOD], hang_at=2), call_timeout_sec=0.3)
    assert time.perf_counter() - t0 < 5
    assert trace.error.type == "CallTimeoutError" and trace.error.step == 1
    assert "process_iter() at step 1 did not return within 0.3 s" in trace.error.message
    assert trace.text == "hello"


@pytest.mark.parametrize("bad", [0, -1, "10", float("inf"), True])
def test_call_timeout_must_be_positive(bad):
    with pytest.raises(ValueError, match="call_timeout_sec="):
        replay(AnsweringProcessor([]), np.zeros(SR, np.float32), call_timeout_sec=bad)
