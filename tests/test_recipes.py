"""Dataset recipes: one module per corpus, the same shape for each, found by name through RECIPES."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_lab.data.dataset import MANIFEST_NAME, DatasetError, DatasetFileNotFoundError, read_manifest
from asr_lab.data.recipes import RECIPES, load_dataset, recipe

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_has_the_same_shape(name):
    module = importlib.import_module(RECIPES[name])
    assert recipe(name) is module and module.NAME == name
    assert callable(module.prepare)
    # a corpus read where it lies says how to recognise it; one with a fixed home names it
    assert callable(getattr(module, "load", None)) == callable(getattr(module, "matches", None))
    assert callable(getattr(module, "load", None)) or isinstance(getattr(module, "DEFAULT_DIR", None), str)


def test_a_recipe_name_loads_its_bundled_folder(monkeypatch):
    monkeypatch.chdir(ROOT)
    if not (ROOT / "datasets" / "mini" / MANIFEST_NAME).is_file():
        pytest.fail("datasets/mini is not built; rebuild with `python -m asr_lab.data.build datasets/mini`")
    by_name, by_path = load_dataset("mini"), load_dataset("datasets/mini")
    assert by_name.ids == by_path.ids and by_name.name == "mini"
    assert [u.text for u in by_name] == [u.text for u in by_path]


def test_a_recipe_name_without_a_home_or_build_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no datasets/ here
    with pytest.raises(DatasetError, match=r"recipe 'librispeech' reads a corpus you give it"):
        load_dataset("librispeech")
    with pytest.raises(DatasetFileNotFoundError, match=r"dataset 'mini' is not built.*recipes\.mini\.prepare"):
        load_dataset("mini")
    with pytest.raises(DatasetError, match=r"no dataset recipe named 'nope'; the recipes are: asterisk, common_voice, hf"):
        recipe("nope")


def test_librispeech_prepare_writes_a_manifest_equal_to_loading_in_place(tmp_path):
    from asr_lab.data.recipes import librispeech

    folder = tmp_path / "corpus" / "84" / "121123"
    folder.mkdir(parents=True)
    lines = ["GO DO YOU HEAR", "FOREVER ALONE"]
    with open(folder / "84-121123.trans.txt", "w") as f:
        for k, line in enumerate(lines):
            f.write(f"84-121123-{k:04d} {line}\n")
            sf.write(folder / f"84-121123-{k:04d}.flac", tone(0.5 + 0.25 * k), SR)
    assert librispeech.matches(tmp_path / "corpus") and not librispeech.matches(tmp_path / "corpus" / "84" / "121123" / "x")
    in_place = librispeech.load(tmp_path / "corpus")
    prepared = librispeech.prepare(tmp_path / "corpus", tmp_path / "out", name="tiny")
    assert (tmp_path / "out" / MANIFEST_NAME).is_file()
    again = read_manifest(tmp_path / "out" / MANIFEST_NAME)
    for ds in (prepared, again):
        assert ds.ids == in_place.ids and [u.text for u in ds] == lines
        assert [round(u.duration, 3) for u in ds] == [0.5, 0.75]
        assert all(Path(u.audio).is_file() for u in ds)


def test_pocketsphinx_la_keeps_the_reference_policy_settings():
    """The one policy config class gave pocketsphinx-la the fix fields; their defaults there stay the reference's."""
    pytest.importorskip("pocketsphinx")
    from asr_lab.backends.pocketsphinx import PocketSphinxLAConfig
    from asr_lab.core.config import ASRConfig
    from asr_lab.policies.config import PolicyConfig, policy_settings

    assert policy_settings(PocketSphinxLAConfig()) == policy_settings(ASRConfig())
    assert policy_settings(PocketSphinxLAConfig(reference_mode=False)) == policy_settings(PolicyConfig(backend="pocketsphinx-la"))
    assert policy_settings(PocketSphinxLAConfig(ghost_filter=True))["ghost_filter"] is True


def test_the_librivox_script_takes_one_folder_and_no_options(tmp_path, monkeypatch, capsys):
    from asr_lab.data.recipes import librivox

    monkeypatch.chdir(tmp_path)
    assert librivox.main(["--help"]) == 0 and "usage: python -m asr_lab.data.recipes.librivox" in capsys.readouterr().err
    assert librivox.main(["a", "b"]) == 2 and "got ['a', 'b']" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing built into a folder named after an option
