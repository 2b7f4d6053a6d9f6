"""The extension points CONTRIBUTING.md documents, used end to end: one new engine, policy and recipe.

Each is one new module (here: code written to a temporary folder, or defined in this file)
plus the one registration line CONTRIBUTING.md shows, and then runs through the public path
users take: ``load_dataset(name)`` → ``asr_lab.compare`` → scores. The engine is a stand-in
(:class:`~asr_lab.testing.TimelineASR`, an ideal recogniser of a known word timeline); this
proves the extension points, not recognition.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

import asr_lab
from asr_lab.backends.registry import get_loader, register_loader, unregister_loader
from asr_lab.data.recipes import RECIPES, load_dataset
from asr_lab.policies import register_policy, unregister_policy

SENTENCES = ["the cat sat on the mat", "a dog ran in the park today"]

# -- a recipe: the module a contributor writes (asr_lab/data/recipes/<corpus>.py) --------------------
RECIPE = '''
"""Recipe for the toy corpus: two sentences as position-coded float WAV (for TimelineASR only)."""

from pathlib import Path

import soundfile as sf

from asr_lab.data.dataset import MANIFEST_NAME, Dataset, Utterance, read_manifest
from asr_lab.testing import TimelineASR, timeline_dataset

NAME = "toy-corpus"
DEFAULT_DIR = None  # set by the test: where the prepared copy lives
SENTENCES = {sentences!r}


def prepare(out_dir):
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    utterances = []
    for u in timeline_dataset(SENTENCES):
        path = out / "audio" / f"{{u.id}}.wav"
        sf.write(path, u.load_audio(), 16000, subtype="FLOAT")  # float32 exactly: the stand-in reads positions
        utterances.append(Utterance(id=u.id, audio=str(path), text=u.text, duration=None, words=u.words,
                                    meta={{"offset": u.offset}}))
    manifest = Dataset(utterances, name=NAME, root=out).to_manifest(out / MANIFEST_NAME)
    return read_manifest(manifest, name=NAME)
'''


# -- an engine: an ASRBase and its loader (asr_lab/backends/<engine>.py) ----------------------------
class TimelineLoader:
    """Loads the stand-in recogniser under whatever policy the config names."""

    from asr_lab.policies.config import PolicyConfig as config_class

    def load(self, config):
        from asr_lab.policies.processor import policy_processor
        from asr_lab.testing import TimelineASR, timeline_dataset

        timeline = [w for u in timeline_dataset(SENTENCES) for w in u.timeline]
        return policy_processor(TimelineASR(timeline), config), {"separator": " ", "streaming": config.policy}


# -- a policy: a CommitRule (asr_lab/policies/<policy>.py) -------------------------------------------
class CommitAllButLast:
    """Commit every word of each hypothesis except the last one (hold-1, written from scratch)."""

    made = 0

    def __init__(self):
        CommitAllButLast.made += 1

    def reset(self):
        pass

    def decide(self, tail, buffer_end):
        return max(0, len(tail) - 1)

    def forced(self, until):
        pass


@pytest.fixture
def extended(tmp_path, monkeypatch):
    module_dir = tmp_path / "contrib"
    module_dir.mkdir()
    (module_dir / "toy_recipe.py").write_text(textwrap.dedent(RECIPE.format(sentences=SENTENCES)))
    monkeypatch.syspath_prepend(str(module_dir))
    monkeypatch.delitem(sys.modules, "toy_recipe", raising=False)
    # the three registration lines CONTRIBUTING.md shows
    monkeypatch.setitem(RECIPES, "toy-corpus", "toy_recipe")
    register_loader("timeline-standin", TimelineLoader())
    register_policy("all-but-last", lambda config: CommitAllButLast())
    yield tmp_path
    unregister_loader("timeline-standin")
    unregister_policy("all-but-last")


def test_a_new_engine_policy_and_recipe_run_end_to_end(extended, monkeypatch):
    import toy_recipe

    with pytest.raises(asr_lab.data.DatasetError, match="recipe 'toy-corpus' reads a corpus you give it"):
        load_dataset("toy-corpus")  # no home yet
    toy_recipe.prepare(extended / "toy")
    monkeypatch.setattr(toy_recipe, "DEFAULT_DIR", str(extended / "toy"))
    data = load_dataset("toy-corpus")
    assert data.ids == ["u0", "u1"] and [u.text for u in data] == SENTENCES

    assert "timeline-standin" in {b.name for b in asr_lab.available_backends()}
    assert isinstance(get_loader("timeline-standin"), TimelineLoader)
    made = CommitAllButLast.made
    results = asr_lab.compare(
        {"mine": {"backend": "timeline-standin", "policy": "all-but-last", "min_chunk_size": 0.5},
         "hold-1": {"backend": "timeline-standin", "policy": "hold-n", "hold_n": 1, "min_chunk_size": 0.5}},
        data, clock="unaware", progress=False, record_replay=False,
    )
    assert not results.failures, results.failures
    assert CommitAllButLast.made > made  # the registered rule ran
    summary = results.summary
    # the ideal recogniser under either policy ends with every word right
    assert summary.loc["mine", "wer"] == 0.0 and summary.loc["hold-1", "wer"] == 0.0
    mine = [r for r in results.records if r.system == "mine"]
    hold = [r for r in results.records if r.system == "hold-1"]
    # the new rule is hold-1 written again: the same commits at the same moments
    for a, b in zip(mine, hold):
        assert [(e.text, e.emitted_at) for e in a.trace.emissions] == [(e.text, e.emitted_at) for e in b.trace.emissions]
        assert a.trace.meta["policy"] == "all-but-last" and b.trace.meta["policy"] == "hold-1"


def test_registration_mistakes_are_refused_with_the_fix(extended):
    with pytest.raises(ValueError, match="'hold-n' is built in"):
        register_policy("hold-n", lambda config: CommitAllButLast())
    with pytest.raises(ValueError, match="policy name 'Bad Name' is not allowed"):
        register_policy("Bad Name", lambda config: CommitAllButLast())
    with pytest.raises(ValueError, match="needs a callable config -> CommitRule"):
        register_policy("x", CommitAllButLast())
    with pytest.raises(ValueError, match=r"unknown policy 'nope'; known: local-agreement, hold-n, stable-prefix, alignatt, all-but-last"):
        asr_lab.load_processor({"backend": "timeline-standin", "policy": "nope"})
