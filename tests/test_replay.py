"""The replay loop: clocks, schedule, traces, errors, live sources."""

import threading
import time

import numpy as np
import pytest

import asr_lab
from asr_lab.replay import LiveAudio, Trace, replay
from asr_lab.testing import TimelineASR, words_from_text

SR = 16000


class BusyProcessor:
    """Stand-in engine of known behaviour: each process_iter() takes ``cost`` seconds and
    commits the audio received up to the previous call (one call of look-ahead)."""

    def __init__(self, cost=0.0, fail_at=None):
        self.cost, self.fail_at = cost, fail_at
        self.init()

    def init(self, offset=0.0):
        self.offset, self.fed, self.done, self.calls, self.chunks = offset, 0, 0, 0, []

    def insert_audio_chunk(self, audio):
        self.fed += len(audio)
        self.chunks.append(len(audio))

    def process_iter(self):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("engine crashed")
        if self.cost:
            time.sleep(self.cost)
        ready = sum(self.chunks[:-1])
        if ready > self.done:
            start = self.offset + self.done / SR
            self.done = ready
            return (start, self.offset + ready / SR, f"w{self.calls}")
        return None

    def partial(self):
        if self.fed > self.done:
            return (self.offset + self.done / SR, self.offset + self.fed / SR, "...")
        return None

    def finish(self):
        if self.fed > self.done:
            start, self.done = self.offset + self.done / SR, self.fed
            return (start, self.offset + self.fed / SR, "end")
        return None


def silence(sec):
    return np.zeros(int(sec * SR), dtype=np.float32)


def test_unaware_clock_feeds_fixed_chunks_and_stamps_at_their_end():
    trace = replay(BusyProcessor(cost=0.01), silence(3.5), clock="unaware", chunk_sec=1.0, warmup_sec=0)
    assert [(s.fed_from, s.fed_until) for s in trace.steps[:-1]] == [(0, 1), (1, 2), (2, 3), (3, 3.5)]
    assert [e.emitted_at for e in trace.emissions] == [2.0, 3.0, 3.5, 3.5]
    assert [e.final for e in trace.emissions] == [False, False, False, True]
    assert trace.text == "w2 w3 w4 end" and trace.ok


def test_virtual_clock_adds_compute_and_a_slow_engine_falls_behind():
    trace = replay(BusyProcessor(cost=0.15), silence(1.0), clock="virtual", compute="wall", chunk_sec=0.1, warmup_sec=0)
    fed = [round(s.fed_until - s.fed_from, 3) for s in trace.steps[:-1]]
    assert fed[0] == 0.1 and max(fed) >= 0.15, "after a 0.15 s call, more than one 0.1 s chunk is waiting"
    previous = 0.0
    for s in trace.steps[:-1]:  # returned = max(clock, chunk ready) + compute: waits jumped, compute added
        assert s.returned_at == pytest.approx(max(previous, min(s.fed_from + 0.1, 1.0)) + s.compute_sec, abs=1e-9)
        previous = s.returned_at
    assert trace.rtf > 1.0  # 0.15 s of work per 0.1 s of audio at first


def test_virtual_slowdown_scales_compute():
    kw = dict(clock="virtual", compute="wall", chunk_sec=0.5, warmup_sec=0)
    fast = replay(BusyProcessor(cost=0.02), silence(2.0), **kw)
    slow = replay(BusyProcessor(cost=0.02), silence(2.0), slowdown=10, **kw)
    lag = lambda t: np.median([s.returned_at - s.fed_until for s in t.steps])
    assert lag(slow) == pytest.approx(10 * lag(fast), rel=0.35)


def test_virtual_matches_wall_latencies():
    kw = dict(chunk_sec=0.25, warmup_sec=0)
    wall = replay(BusyProcessor(cost=0.1), silence(2.0), clock="wall", **kw)
    virt = replay(BusyProcessor(cost=0.1), silence(2.0), clock="virtual", compute="wall", **kw)  # sleeps cost no CPU
    lw = [e.latency for e in wall.emissions]
    lv = [e.latency for e in virt.emissions]
    assert len(lw) == len(lv)
    assert abs(np.median(lw) - np.median(lv)) <= 0.05
    assert wall.meta["wall_sec"] >= 1.9 and virt.meta["wall_sec"] < 1.5


def test_wall_clock_speed_plays_faster():
    trace = replay(BusyProcessor(), silence(2.0), clock="wall", chunk_sec=0.5, speed=8, warmup_sec=0)
    assert trace.meta["wall_sec"] < 0.6
    assert trace.emissions[0].emitted_at == pytest.approx(1.0, abs=0.05)


def test_a_processor_that_raises_keeps_what_it_emitted():
    with pytest.warns(RuntimeWarning, match="engine crashed"):
        trace = replay(BusyProcessor(fail_at=4), silence(6.0), clock="unaware", chunk_sec=1.0, warmup_sec=0)
    assert [e.text for e in trace.emissions] == ["w2", "w3"]
    assert not trace.ok and trace.error.type == "RuntimeError" and trace.error.step == 3
    assert "engine crashed" in trace.error.traceback
    with pytest.raises(RuntimeError, match="engine crashed"):
        trace.raise_for_error()


def test_warmup_failure_is_recorded_too():
    with pytest.warns(RuntimeWarning):
        trace = replay(BusyProcessor(fail_at=1), silence(2.0), clock="unaware")
    assert trace.error.step == -1 and trace.emissions == []


def test_start_at_skips_audio_and_sets_the_offset():
    words = words_from_text("a b c d e f g h i j", pause_every=2)
    proc = asr_lab.OnlineASRProcessor(TimelineASR(words), min_chunk_sec=0.5)
    trace = replay(proc, TimelineASR.stream_audio(5.0), clock="unaware", start_at=2.0, warmup_sec=0)
    assert trace.steps[0].fed_from == 2.0 and trace.duration == 3.0
    assert all(e.start >= 2.0 - 0.1 for e in trace.emissions)
    assert trace.text.split()[0] == "d"  # the first word starting after 2 s: d at 2.0


def test_partials_are_recorded_when_they_change_and_callbacks_fire():
    seen, partials = [], []
    trace = replay(
        BusyProcessor(), silence(2.0), clock="unaware", chunk_sec=0.5, warmup_sec=0,
        on_emission=seen.append, on_partial=partials.append,
    )
    assert seen == trace.emissions and partials == trace.partials
    assert trace.partials[-1].text == "" and trace.partials[-1].committed == trace.text
    assert all(p.text == "..." for p in trace.partials[:-1])


def test_a_raising_callback_warns_and_the_replay_goes_on():
    def bad(_):
        raise ValueError("display broke")

    with pytest.warns(RuntimeWarning, match="display broke"):
        trace = replay(BusyProcessor(), silence(2.0), clock="unaware", chunk_sec=0.5, warmup_sec=0, on_emission=bad)
    assert trace.ok and len(trace.emissions) == 4


def test_trace_round_trips_through_jsonl(tmp_path):
    with pytest.warns(RuntimeWarning):
        trace = replay(BusyProcessor(fail_at=3), silence(4.0), clock="unaware", chunk_sec=1.0, warmup_sec=0, meta={"backend": "busy"})
    path = tmp_path / "t.jsonl"
    trace.to_jsonl(path)
    again = Trace.from_jsonl(path)
    assert again == trace
    assert Trace.from_jsonl(trace.to_jsonl()) == trace
    df = trace.to_dataframe()
    assert list(df["text"]) == ["w2"] and df["latency"].iloc[0] == pytest.approx(1.0)


def test_bad_arguments_are_named():
    p = BusyProcessor()
    with pytest.raises(ValueError, match="clock='fast'"):
        replay(p, silence(1), clock="fast")
    with pytest.raises(ValueError, match="chunk_sec=0"):
        replay(p, silence(1), chunk_sec=0)
    with pytest.raises(ValueError, match="start_at=5"):
        replay(p, silence(1), start_at=5)
    with pytest.raises(ValueError, match="slowdown applies to clock='virtual'"):
        replay(p, silence(1), clock="wall", slowdown=2)
    with pytest.raises(TypeError, match="is not an ASRProcessor"):
        replay(object(), silence(1))
    with pytest.raises(ValueError, match="use clock='wall'"):
        replay(p, LiveAudio(), clock="virtual")


def test_live_audio_from_another_thread_is_replayed_on_the_wall_clock():
    live = LiveAudio()
    audio = silence(1.5)

    def microphone():
        for i in range(0, len(audio), 1600):  # 100 ms chunks in real time
            live.push(audio[i : i + 1600])
            time.sleep(0.1)
        live.close()

    threading.Thread(target=microphone, daemon=True).start()
    trace = replay(BusyProcessor(), live, clock="wall", chunk_sec=0.25, warmup_sec=0.1)
    assert trace.duration == pytest.approx(1.5)
    assert trace.emissions[-1].end == pytest.approx(1.5)
    assert trace.meta["dropped_chunks"] == 0
    lags = [s.returned_at - s.fed_until for s in trace.steps]
    assert np.median(lags) < 0.15


def test_live_audio_drops_and_counts_when_full():
    live = LiveAudio(max_pending_sec=0.25)
    assert live.push(silence(0.2)) and not live.push(silence(0.1))
    assert live.dropped_chunks == 1 and live.dropped_sec == pytest.approx(0.1)
    assert len(live.read()) == int(0.2 * SR) and live.push(silence(0.1))
    live.close()
    assert not live.push(silence(0.1)) and live.dropped_chunks == 2
    assert len(live.recorded_audio()) == int(0.3 * SR)


def test_stop_event_ends_a_live_stream_and_finish_still_runs():
    live, stop = LiveAudio(), threading.Event()
    live.push(silence(0.5))
    threading.Timer(0.4, stop.set).start()
    trace = replay(BusyProcessor(), live, clock="wall", chunk_sec=0.25, warmup_sec=0, stop=stop)
    assert trace.ok and trace.emissions[-1].final and trace.emissions[-1].end == pytest.approx(0.5)


def test_live_stream_time_starts_when_the_first_chunk_arrived():
    live = LiveAudio()
    live.push(silence(0.2))
    time.sleep(0.4)  # audio arrives while the engine is still loading
    live.push(silence(0.2))
    live.push(silence(0.2))  # 0.6 s of audio arrived by ~0.4 s after the first chunk
    live.close()
    trace = replay(BusyProcessor(), live, clock="wall", chunk_sec=0.2, warmup_sec=0)
    # the first step returns no earlier than 0.2 + 0.4 s of stream time: latency is never negative
    assert trace.steps[0].returned_at >= 0.6 - 0.01
    assert all(e.latency >= -0.01 for e in trace.emissions)


def test_a_live_stream_with_no_audio_ends_on_stop():
    live, stop = LiveAudio(), threading.Event()
    threading.Timer(0.3, stop.set).start()
    trace = replay(BusyProcessor(), live, clock="wall", warmup_sec=0, stop=stop)
    assert trace.ok and trace.emissions == [] and trace.duration == 0
