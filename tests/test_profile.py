"""Cost profiles (compute="profile"), the "cpu" default's helper-thread and waiting rules, re-timing.

Real engine: pocketsphinx (native and under LocalAgreement/hold-n) on real speech (LibriVox in
Debian's pocketsphinx-testdata). Stand-ins, named as such, isolate the fitting and the clock rules.
"""

import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import asr_lab
from asr_lab.compare import compare
from asr_lab.replay import ProfileError, RetimeError, replay, retime
from asr_lab.replay.profile import (
    FEATURES,
    CostProfile,
    EngineCost,
    fit_costs,
    load_profile,
    machine_fingerprint,
    profile_from_traces,
)
from asr_lab.testing.busy import BusyCores

SR = 16000
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
needs_sphinx = pytest.mark.skipif(not LIBRIVOX.exists(), reason="Debian pocketsphinx-testdata is not installed")


def burn(sec):
    """Spend ``sec`` of this thread's CPU time (CPU time, so the machine's load does not change it)."""
    end = time.thread_time() + sec
    while time.thread_time() < end:
        pass


def silence(sec):
    return np.zeros(int(sec * SR), dtype=np.float32)


def timeline(trace):
    """What a trace says happened, without the measured fields (which no two runs share)."""
    steps = [(s.index, s.fed_from, s.fed_until, s.compute_sec, s.returned_at, s.features) for s in trace.steps]
    return [e.to_dict() for e in trace.emissions], [p.to_dict() for p in trace.partials], steps


# -- fitting ---------------------------------------------------------------------------------


class KnownCostASRStandIn:
    """Stand-in engine whose calls spend a known CPU cost: every process_iter() "transcribes" the
    whole buffer (one call) on every other step, and burns 2 ms + 40 ms per second of buffer + 0.5 ms
    per "token" (one token per 0.3 s of buffer), reporting the call as the Whisper backends do."""

    STEP, PER_SEC, PER_TOKEN = 0.002, 0.040, 0.0005
    cost_identity = '{"stand-in": "known cost"}'

    def __init__(self):
        self.init()

    def init(self, offset=0.0):
        self.offset, self.buffer, self.n, self.calls = offset, 0, 0, []

    def insert_audio_chunk(self, audio):
        self.buffer += len(audio)

    def process_iter(self):
        self.n += 1
        if self.n % 2 == 0:
            sec = self.buffer / SR
            tokens = int(sec / 0.3)
            burn(self.STEP + self.PER_SEC * sec + self.PER_TOKEN * tokens)
            self.calls.append({"audio_sec": round(sec, 3), "tokens": tokens, "fallbacks": 0})
        return None

    def finish(self):
        return None

    def step_info(self):
        calls, self.calls = self.calls, []
        return {"calls": calls} if calls else None


def test_a_fitted_model_recovers_the_known_costs_of_a_stand_in():
    engine = KnownCostASRStandIn()
    traces = [replay(engine, silence(sec), clock="virtual", chunk_sec=chunk, compute="thread", warmup_sec=0)
              for sec, chunk in ((4.0, 0.5), (6.0, 0.3), (3.0, 0.7))]
    profile = profile_from_traces({"stand-in": (engine.cost_identity, traces)}, target="thread",
                                  machine=machine_fingerprint("test"))
    model = profile.engine_for(engine)
    c = model.coefficients
    assert c.get("call_audio_sec", 0) + c.get("tokens", 0) / 0.3 == pytest.approx(KnownCostASRStandIn.PER_SEC + KnownCostASRStandIn.PER_TOKEN / 0.3, rel=0.1)
    assert c.get("calls", 0) == pytest.approx(KnownCostASRStandIn.STEP, abs=0.002)
    # every step's modelled cost is its known cost (a step without a call costs ~nothing)
    for t in traces:
        for s in t.steps:
            known = sum(KnownCostASRStandIn.STEP + KnownCostASRStandIn.PER_SEC * call["audio_sec"]
                        + KnownCostASRStandIn.PER_TOKEN * call["tokens"] for call in (s.info or {}).get("calls", []))
            assert model.cost(s.features) == pytest.approx(known, abs=0.003)
    assert model.fit["r2"] > 0.99 and model.fit["total_ratio"] == pytest.approx(1.0, abs=0.02)


def test_fit_is_exact_on_noiseless_linear_costs_and_never_negative():
    rng = np.random.default_rng(0)
    truth = {"steps": 0.003, "fed_sec": 0.05, "calls": 0.01, "call_audio_sec": 0.02, "tokens": 0.001}
    rows = []
    for _ in range(60):
        x = {f: 0.0 for f in FEATURES}
        x.update(steps=1.0, fed_sec=float(rng.uniform(0.1, 1)), calls=float(rng.integers(0, 3)),
                 call_audio_sec=float(rng.uniform(0, 20)), tokens=float(rng.integers(0, 80)))
        rows.append((x, sum(truth[f] * x[f] for f in truth)))
    coef, fit = fit_costs(rows)
    assert set(coef) == set(truth)
    for f, v in truth.items():
        assert coef[f] == pytest.approx(v, rel=1e-6)
    assert fit["r2"] == pytest.approx(1.0, abs=1e-9)
    # a feature that only ever lowers the cost gets 0, not a negative price
    rows = [({**x, "fallbacks": float(i % 2)}, y - 0.5 * (i % 2) * 0.001) for i, (x, y) in enumerate(rows)]
    assert fit_costs(rows)[0].get("fallbacks", 0.0) >= 0.0


def test_a_profile_round_trips_through_json_and_its_digest_names_it(tmp_path):
    engine = EngineCost('{"backend": "x"}', "x", {"steps": 0.01, "fed_sec": 0.1}, {"steps": 3})
    profile = CostProfile({"name": "box"}, "cpu (thread)", {engine.key: engine})
    path = profile.save(tmp_path / "box.json")
    again = load_profile(path)
    assert again.digest == profile.digest and again.engines[engine.key].coefficients == engine.coefficients
    changed = CostProfile({"name": "box"}, "cpu (thread)", {engine.key: EngineCost(engine.identity, "x", {"steps": 0.02})})
    assert changed.digest != profile.digest
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ProfileError, match="not a JSON cost profile"):
        load_profile(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text(json.dumps({**profile.to_dict(), "format": 0}))
    with pytest.raises(ProfileError, match="re-calibrate with asr-lab calibrate"):
        load_profile(tmp_path / "old.json")
    with pytest.raises(FileNotFoundError, match="asr-lab calibrate"):
        load_profile(tmp_path / "missing.json")


# -- real engine: pocketsphinx ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sphinx_profile(tmp_path_factory):
    """A profile for pocketsphinx and pocketsphinx-la, fitted here from CPU-measured runs on two
    LibriVox recordings (the features and the fit are what is tested, not this machine's speed)."""
    if not LIBRIVOX.exists():
        pytest.skip("Debian pocketsphinx-testdata is not installed")
    pytest.importorskip("pocketsphinx")
    wavs = sorted(LIBRIVOX.glob("*.wav"))[:2]
    groups = {}
    for backend in ("pocketsphinx", "pocketsphinx-la"):
        proc, meta = asr_lab.load_processor({"backend": backend})
        groups[backend] = (proc.cost_identity, [replay(proc, str(w), clock="virtual", separator=meta["separator"]) for w in wavs])
    profile = profile_from_traces(groups, machine=machine_fingerprint("test-machine"))
    return profile.save(tmp_path_factory.mktemp("profile") / "test-machine.json")


@needs_sphinx
def test_profile_traces_are_identical_run_to_run_and_beside_a_busy_process(sphinx_profile):
    wav = str(sorted(LIBRIVOX.glob("*.wav"))[2])
    for backend in ("pocketsphinx", "pocketsphinx-la"):
        proc, meta = asr_lab.load_processor({"backend": backend})
        kw = dict(clock="virtual", compute="profile", profile=sphinx_profile, separator=meta["separator"])
        first, second = replay(proc, wav, **kw), replay(proc, wav, **kw)
        with BusyCores():
            busy = replay(proc, wav, **kw)
        stretch = sum(s.wall_sec for s in busy.steps) / sum(s.thread_sec for s in busy.steps)
        assert stretch > 1.3, f"the busy loops did not compete for the CPU (elapsed / CPU {stretch:.2f})"
        assert timeline(first) == timeline(second) == timeline(busy)
        assert first.emissions and first.meta["compute"] == "profile"
        assert first.meta["compute_profile"]["digest"] == load_profile(sphinx_profile).digest
        assert [e.latency for e in first.emissions] == [e.latency for e in busy.emissions]
        assert first.text == busy.text


@needs_sphinx
def test_a_profile_for_another_engine_or_config_is_refused(sphinx_profile, tmp_path):
    wav = str(sorted(LIBRIVOX.glob("*.wav"))[0])
    proc, _ = asr_lab.load_processor({"backend": "pocketsphinx", "maxhmmpf": 3000})
    with pytest.raises(ProfileError, match=r"no cost model for this engine configuration; it holds 'pocketsphinx', which differs in maxhmmpf=3000 \(profile: default\).*asr-lab calibrate"):
        replay(proc, wav, compute="profile", profile=sphinx_profile)
    with pytest.raises(ProfileError, match=r"system 'tight': .*no cost model"):
        compare({"tight": {"backend": "pocketsphinx", "maxhmmpf": 3000}}, [asr_lab.Utterance("u", wav, "x")],
                compute="profile", profile=sphinx_profile, progress=False)

    class NoIdentityStandIn(KnownCostASRStandIn):
        cost_identity = None

    with pytest.raises(ProfileError, match="has no cost_identity"):
        replay(NoIdentityStandIn(), silence(1.0), compute="profile", profile=sphinx_profile)
    with pytest.raises(ValueError, match="compute='profile' needs profile="):
        replay(proc, wav, compute="profile")
    with pytest.raises(ValueError, match="profile= is used by compute='profile' only"):
        replay(proc, wav, compute="cpu", profile=sphinx_profile)
    # a policy does not change what a call costs: pocketsphinx-la's model serves hold-n and another step
    la, _ = asr_lab.load_processor({"backend": "pocketsphinx-la", "policy": "hold-n", "min_chunk_size": 0.5})
    assert load_profile(sphinx_profile).engine_for(la).system == "pocketsphinx-la"


@needs_sphinx
def test_the_cache_key_includes_the_profile(sphinx_profile, tmp_path):
    wav = str(sorted(LIBRIVOX.glob("*.wav"))[0])
    utts = [asr_lab.Utterance("u", wav, "x")]
    kw = dict(compute="profile", cache_dir=tmp_path / "cache", progress=False)
    a = compare({"ps": {"backend": "pocketsphinx"}}, utts, profile=sphinx_profile, **kw)
    again = compare({"ps": {"backend": "pocketsphinx"}}, utts, profile=sphinx_profile, **kw)
    assert a.from_cache == 0 and again.from_cache == 1
    slower = load_profile(sphinx_profile)
    for e in slower.engines.values():
        e.coefficients = {k: 2 * v for k, v in e.coefficients.items()}
    b = compare({"ps": {"backend": "pocketsphinx"}}, utts, profile=slower, **kw)
    assert b.from_cache == 0
    assert b.records[0].trace.meta["compute_profile"]["digest"] == slower.digest != load_profile(sphinx_profile).digest
    assert b.records[0].trace.compute_sec == pytest.approx(2 * a.records[0].trace.compute_sec)


@needs_sphinx
def test_with_a_profile_record_replay_serves_every_call_of_the_second_policy(sphinx_profile):
    """hold-n over pocketsphinx-la, two settings: the second asks the same questions on the same
    schedule, so every one of its engine calls is answered from the first's recording."""
    wav = str(sorted(LIBRIVOX.glob("*.wav"))[1])
    res = compare({"la": {"backend": "pocketsphinx-la", "min_chunk_size": 0.5}}, [asr_lab.Utterance("u", wav, "x")],
                  policies={"hold-n": {"hold_n": [1, 2]}}, compute="profile", profile=sphinx_profile, progress=False)
    first, second = (r.trace for r in res.records)
    asked = first.meta["engine_calls_live"] + first.meta["engine_calls_replayed"]
    assert first.meta["engine_calls_live"] > 5
    assert second.meta["engine_calls_live"] == 0 and second.meta["engine_calls_replayed"] == asked
    assert [s.returned_at for s in second.steps] == [s.returned_at for s in first.steps]


@needs_sphinx
def test_a_killed_and_resumed_cli_run_gives_the_uninterrupted_table(sphinx_profile, tmp_path):
    args = ["--dataset", "datasets/librivox", "--limit", "4", "--backend", "pocketsphinx", "--backend", "pocketsphinx-la",
            "--compute", "profile", "--profile", str(sphinx_profile)]
    cli = [sys.executable, "-m", "asr_lab.cli", "compare"]
    whole = subprocess.run(cli + args + ["--out", str(tmp_path / "whole")], capture_output=True, text=True, timeout=900)
    assert whole.returncode == 0, whole.stderr[-2000:]
    cache = tmp_path / "cut" / "cache" / "runs.jsonl"
    run = subprocess.Popen(cli + args + ["--out", str(tmp_path / "cut")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while run.poll() is None and time.monotonic() < deadline:
        if cache.exists() and cache.read_text().count("\n") >= 3:
            run.kill()
            break
        time.sleep(0.05)
    run.wait()
    assert run.returncode != 0, "the run ended before it could be killed; nothing was resumed"
    resumed = subprocess.run(cli + args + ["--out", str(tmp_path / "cut")], capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "of 8 runs from cache" in resumed.stderr and "# 0 of 8" not in resumed.stderr
    assert resumed.stdout == whole.stdout
    assert (tmp_path / "cut" / "summary.csv").read_text() == (tmp_path / "whole" / "summary.csv").read_text()


# -- the "cpu" default: helper threads, waiting engines --------------------------------------------


class MatmulInHelperThreadsStandIn:
    """Stand-in for torch with an OpenMP pool: from its third call on, each process_iter() multiplies
    matrices in two helper threads (numpy releases the GIL) while the calling thread waits; the
    warm-up calls do no such work, so the warm-up cannot see the helpers."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(2)
        self.helper_cpu = []
        self.calls = 0
        self.init()

    def init(self, offset=0.0):
        self.offset = offset

    def insert_audio_chunk(self, audio):
        pass

    def _work(self, a):
        t0 = time.thread_time()
        for _ in range(3):
            a = a @ a
            a /= np.abs(a).max()
        return time.thread_time() - t0

    def process_iter(self):
        self.calls += 1
        if self.calls > 2:
            a = np.random.default_rng(self.calls).standard_normal((300, 300))
            self.helper_cpu.append(sum(self.pool.map(self._work, [a, a.copy()])))
        return None

    def finish(self):
        return None


def test_cpu_counts_helper_threads_the_warm_up_did_not_see():
    engine = MatmulInHelperThreadsStandIn()
    trace = replay(engine, silence(3.0), clock="virtual", chunk_sec=0.5, warmup_sec=0.5)
    assert trace.meta["compute_asked"] == "cpu" and trace.meta["compute"] == "process"
    assert "compute_switched_at_step" in trace.meta
    switched = trace.meta["compute_switched_at_step"]
    heavy = [s for s in trace.steps[:-1] if s.index >= switched]
    assert len(heavy) == len(engine.helper_cpu) and heavy
    for s, helper in zip(heavy, engine.helper_cpu):
        assert s.compute_sec == s.process_sec
        assert s.compute_sec >= 0.9 * helper > s.thread_sec  # the helpers' CPU is charged, not only the caller's


class WaitingStandIn:
    """Stand-in for an engine that waits on a GPU or a server: each process_iter() sleeps 250 ms and
    commits the audio fed so far."""

    def init(self, offset=0.0):
        self.offset, self.fed, self.done = offset, 0, 0

    def insert_audio_chunk(self, audio):
        self.fed += len(audio)

    def process_iter(self):
        time.sleep(0.25)
        if self.fed > self.done:
            start, self.done = self.done, self.fed
            return (self.offset + start / SR, self.offset + self.fed / SR, f"w{self.fed}")
        return None

    def finish(self):
        return None


def test_a_waiting_engine_is_charged_elapsed_time_by_default_and_matches_the_wall_clock():
    audio = silence(3.0)
    virtual = replay(WaitingStandIn(), audio, clock="virtual", chunk_sec=0.5, warmup_sec=0.5)
    wall = replay(WaitingStandIn(), audio, clock="wall", chunk_sec=0.5, warmup_sec=0.5)
    assert virtual.meta["compute"] == "wall" and "waits" in virtual.meta["compute_chosen_by"], virtual.meta["compute_chosen_by"]
    lat_v = [e.latency for e in virtual.emissions]
    lat_w = [e.latency for e in wall.emissions]
    assert len(lat_v) == len(lat_w) == 6
    assert statistics.median(lat_v) == pytest.approx(statistics.median(lat_w), abs=0.05)
    unaware = replay(WaitingStandIn(), audio, clock="unaware", chunk_sec=0.5, warmup_sec=0)
    assert statistics.median(lat_v) > statistics.median(e.latency for e in unaware.emissions) + 0.1


# -- re-timing -------------------------------------------------------------------------------------


@needs_sphinx
def test_the_documented_retime_call_works_and_a_profile_trace_retimes_exactly(sphinx_profile):
    wav = str(sorted(LIBRIVOX.glob("*.wav"))[3])
    proc, meta = asr_lab.load_processor({"backend": "pocketsphinx"})
    kw = dict(clock="virtual", compute="profile", profile=sphinx_profile, separator=meta["separator"])
    trace = replay(proc, wav, **kw)
    assert asr_lab.replay.retime is retime  # README: asr_lab.replay.retime(trace, slowdown=2)
    # at 1.5x pocketsphinx keeps up: re-timing without the engine is exactly a run at that slowdown
    assert timeline(asr_lab.replay.retime(trace, slowdown=1.5)) == timeline(replay(proc, wav, slowdown=1.5, **kw))
    # at 20x it falls behind, so the engine would be fed other chunks: retime alone refuses ...
    with pytest.raises(RetimeError, match="re-run"):
        asr_lab.replay.retime(trace, slowdown=20)
    # ... and with the engine it re-runs, which under a profile is exactly a run at that slowdown
    slow = asr_lab.replay.retime(trace, slowdown=20, processor=proc)
    assert slow.meta["retimed_by"] == "re-run"
    assert timeline(slow) == timeline(replay(proc, wav, slowdown=20, **kw))
    assert slow.steps[1].fed_until - slow.steps[1].fed_from > trace.steps[1].fed_until - trace.steps[1].fed_from
    # another machine's profile prices the recorded steps (exact while the schedule holds)
    same = retime(trace, 1.0, compute="profile", profile=sphinx_profile)
    assert timeline(same) == timeline(trace)


# -- falling behind ------------------------------------------------------------------------------


class EchoStandIn:
    """Stand-in engine that commits the audio fed at every step and costs nothing itself: its cost
    is whatever the profile says (so the test is the same on every machine)."""

    cost_identity = '{"stand-in": "echo"}'

    def init(self, offset=0.0):
        self.offset, self.fed, self.done = offset, 0, 0

    def insert_audio_chunk(self, audio):
        self.fed += len(audio)

    def process_iter(self):
        if self.fed > self.done:
            start, self.done = self.done, self.fed
            return (self.offset + start / SR, self.offset + self.fed / SR, "w")
        return None

    def finish(self):
        return None


@pytest.mark.parametrize("per_audio_sec, behind", [(0.3, False), (1.3, True)])
def test_an_engine_that_cannot_keep_up_is_flagged_and_warned_about(per_audio_sec, behind):
    from asr_lab.metrics.lag import lag_slope

    engine = EngineCost(EchoStandIn.cost_identity, "echo", {"fed_sec": per_audio_sec, "steps": 0.01})
    profile = CostProfile({"name": "box"}, "test", {engine.key: engine})
    utts = [asr_lab.Utterance.from_array(f"u{i}", silence(20.0 + i), "w") for i in range(2)]
    with __import__("warnings").catch_warnings(record=True) as seen:
        __import__("warnings").simplefilter("always")
        res = compare({"echo": EchoStandIn}, utts, compute="profile", profile=profile, chunk_sec=0.5, progress=False)
    row = res.table().loc["echo"]
    assert bool(row["falls_behind"]) is behind
    slope = res.summary.loc["echo", "lag_slope"]
    assert slope == pytest.approx(lag_slope(r.trace for r in res.records))
    told = [w for w in seen if "falls behind the audio" in str(w.message)]
    assert bool(told) is behind
    if behind:  # RTF 1.3: each chunk takes 1.3x its length, so the lag grows ~0.3 s per second
        assert slope > 0.2
    else:
        assert abs(slope) < 0.01
