"""compare() under interruption and faults, with real processes: Ctrl-C, a worker killed,
the CLI killed, a full disk. Every finished run is kept and a re-run resumes exactly."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import asr_lab
from asr_lab.testing import TimelineASR, timeline_dataset

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses Linux process signals and /proc")

ROOT = Path(__file__).resolve().parents[1]
DATA = timeline_dataset([f"word{i} and then more words" for i in range(12)], gap_sec=1.0)
WORDS = [w for u in DATA for w in u.timeline]
KILL_AT = DATA[3].offset  # the stand-in below kills its own worker on utterance u3


class KillingStandIn:
    """A stand-in processor (OnlineASRProcessor over TimelineASR) that SIGKILLs its own process
    when it is given utterance u3's audio (the position is encoded in the samples)."""

    min_chunk_sec = 0.5

    def __init__(self):
        self.inner = asr_lab.OnlineASRProcessor(TimelineASR(WORDS), min_chunk_sec=0.5)

    def init(self, offset=0.0):
        self.inner.init(offset)
        self._first = True

    def insert_audio_chunk(self, audio):
        if self._first and abs(float(audio[0]) * 2**26 / 16000 - KILL_AT) < 0.01:
            os.kill(os.getpid(), signal.SIGKILL)
        self._first = False
        self.inner.insert_audio_chunk(audio)

    def process_iter(self):
        return self.inner.process_iter()

    def finish(self):
        return self.inner.finish()


def test_a_killed_worker_costs_only_its_own_run(tmp_path):
    res = asr_lab.compare({"k": KillingStandIn}, DATA, clock="unaware", workers=2, cache_dir=tmp_path, progress=False,
                          warmup_sec=0)
    failed = {r.utterance: r.error for r in res.failures}
    assert list(failed) == ["u3"], failed
    assert "worker process running this task died (killed by signal 9 (SIGKILL))" in failed["u3"]
    ok = [r for r in res.records if r.ok]
    assert len(ok) == 11 and all(r.trace.text for r in ok)
    again = asr_lab.compare({"k": KillingStandIn}, DATA, clock="unaware", workers=2, cache_dir=tmp_path, progress=False,
                            warmup_sec=0)
    assert again.from_cache == 11 and [r.utterance for r in again.failures] == ["u3"]
    assert [r.trace.text for r in again.records if r.ok] == [r.trace.text for r in ok]


SCRIPT = textwrap.dedent('''
    """compare(workers=2) over a slow stand-in, logging each run's start and finish."""
    import json, os, sys, time
    import asr_lab
    from asr_lab.testing import TimelineASR, timeline_dataset

    DATA = timeline_dataset([f"word{i} and then more words" for i in range(24)], gap_sec=1.0)
    WORDS = [w for u in DATA for w in u.timeline]

    def log(what):
        with open(os.environ["FAULT_LOG"], "a") as f:
            f.write(what + "\\n")

    class SlowStandIn:
        """A stand-in processor: OnlineASRProcessor over TimelineASR, each step slowed by SLOW_SEC."""
        min_chunk_sec = 0.5

        def __init__(self):
            self.inner = asr_lab.OnlineASRProcessor(TimelineASR(WORDS), min_chunk_sec=0.5)

        def init(self, offset=0.0):
            self.inner.init(offset)
            self.first = True

        def insert_audio_chunk(self, audio):
            if self.first:
                log(f"start {float(audio[0]) * 2**26 / 16000:.2f}")
            self.first = False
            self.inner.insert_audio_chunk(audio)

        def process_iter(self):
            time.sleep(float(os.environ.get("SLOW_SEC", "0")))
            return self.inner.process_iter()

        def finish(self):
            return self.inner.finish()

    if __name__ == "__main__":
        res = asr_lab.compare({"slow": SlowStandIn}, DATA, clock="unaware", workers=2, cache_dir=sys.argv[1],
                              progress=False, warmup_sec=0)
        print(json.dumps({"from_cache": res.from_cache, "ok": sum(r.ok for r in res.records), "runs": len(res.records),
                          "texts": [r.trace.text for r in res.records]}))
''')


def _cached_ok(cache: Path) -> list[dict]:
    if not cache.exists():
        return []
    out = []
    for line in cache.read_bytes().split(b"\n"):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("error") is None and rec.get("trace") is not None:
            out.append(rec)
    return out


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **extra}


def _wait_for(predicate, what, limit=180.0):
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["group", "parent"])
def test_ctrl_c_stops_at_once_keeps_finished_runs_and_a_rerun_resumes(tmp_path, target):
    """``group``: a terminal's Ctrl-C (SIGINT to the whole process group, workers included);
    ``parent``: Jupyter's "interrupt kernel" (SIGINT to the kernel process only)."""
    script = tmp_path / "slow_compare.py"
    script.write_text(SCRIPT)
    log, cache_dir = tmp_path / "runs.log", tmp_path / "cache"
    cache = cache_dir / "runs.jsonl"
    proc = subprocess.Popen([sys.executable, str(script), str(cache_dir)], env=_env(FAULT_LOG=str(log), SLOW_SEC="0.25"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: len(_cached_ok(cache)) >= 3 or proc.poll() is not None, "three finished runs")
        if target == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    kept = _cached_ok(cache)
    started = [x for x in log.read_text().splitlines() if x.startswith("start")]
    # nothing queued ran after the interrupt: only what was running then (2 workers) beyond what finished
    assert 3 <= len(kept) < 24 and len(started) <= len(kept) + 4, (len(kept), len(started))
    log.write_text("")
    rerun = subprocess.run([sys.executable, str(script), str(cache_dir)], env=_env(FAULT_LOG=str(log), SLOW_SEC="0"),
                           capture_output=True, text=True, timeout=300, check=True)
    out = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert out["from_cache"] == len(kept) and out["ok"] == out["runs"] == 24
    assert len(log.read_text().splitlines()) == 24 - len(kept)  # each missing run once, no finished run again
    assert {rec["trace"][0]["utterance"] for rec in kept} <= {f"u{i}" for i in range(24)}
    assert all(out["texts"])


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
def test_kill_9_of_the_cli_ends_its_workers(tmp_path):
    pytest.importorskip("pocketsphinx", reason="pip install 'asr-lab[pocketsphinx]'")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "asr_lab.cli", "compare", "--dataset", str(ROOT / "datasets" / "mini"),
         "--backend", "pocketsphinx", "--workers", "2", "--out", str(out)],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    workers: list[int] = []
    try:
        _wait_for(lambda: len(_cached_ok(out / "cache" / "runs.jsonl")) >= 1 or proc.poll() is not None, "a finished run")
        assert proc.poll() is None, "the comparison finished before it could be killed"
        workers += [p for p in _children(proc.pid) if _alive(p)]
        assert len(workers) >= 2  # the pool's processes, each with an engine loaded
        proc.kill()  # kill -9: no handler, no clean-up runs in the CLI
        proc.wait(timeout=30)
        _wait_for(lambda: not any(_alive(p) for p in workers), "the workers to end with their parent", limit=60)
    finally:
        for p in [proc.pid] + _children(proc.pid) + workers:  # never leave orphans behind
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


def test_a_full_disk_names_the_cache_file_and_a_rerun_resumes(tmp_path, monkeypatch):
    import importlib

    compare_module = importlib.import_module("asr_lab.compare.runner")  # where compare() finds _append
    real, calls = compare_module._append, []

    def filling(path, record):
        calls.append(record)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, record)

    data = [u for u in DATA if u.id != "u3"][:5]  # KillingStandIn kills only on u3; here it runs in this process
    monkeypatch.setattr(compare_module, "_append", filling)
    cache = tmp_path / "runs.jsonl"
    with pytest.raises(OSError) as caught:
        asr_lab.compare({"s": KillingStandIn}, data, clock="unaware", cache_dir=tmp_path, progress=False, warmup_sec=0)
    message = str(caught.value)
    assert caught.value.errno == errno.ENOSPC
    assert str(cache) in message and "The cache is intact" in message and "resumes from there" in message
    monkeypatch.setattr(compare_module, "_append", real)
    again = asr_lab.compare({"s": KillingStandIn}, data, clock="unaware", cache_dir=tmp_path, progress=False, warmup_sec=0)
    assert again.from_cache == 2 and all(r.ok for r in again.records) and len(again.records) == 5


def _failing_start(workers):
    raise RuntimeError("a stand-in initializer that fails in every worker")


def test_workers_that_cannot_start_fail_every_run_once_instead_of_looping():
    from asr_lab.compare.pool import WorkerDied, WorkerPool

    pool = WorkerPool(2, initializer=_failing_start, initargs=(2,))
    try:
        out = list(pool.run(abs, [-1, -2, -3], key=str))
    finally:
        pool.close()
    assert sorted(item for item, _, _ in out) == [-3, -2, -1]
    assert all(result is None and isinstance(err, WorkerDied) and "before running any task" in str(err) for _, result, err in out)
