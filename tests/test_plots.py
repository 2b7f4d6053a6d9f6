"""Figures show as images in Jupyter whatever the backend, and are readable: legends off the
data, partials named, axes on the utterance, no "— array" titles, empty figures skipped."""

import subprocess
import sys

import numpy as np
import pytest

import asr_lab
from asr_lab import plots
from asr_lab.testing import TimelineASR, words_from_text

WORDS = words_from_text("one two three four five six seven eight nine ten", pause_every=3)
AUDIO = TimelineASR.stream_audio(WORDS[-1][1] + 0.5)


class WithPartials:
    """Stand-in native engine over the timeline: partial text for words heard so far, committed at pauses."""

    def __init__(self):
        self.init()

    def init(self, offset=0.0):
        self.offset, self.fed, self.done = offset, 0.0, 0

    def insert_audio_chunk(self, audio):
        self.fed += len(audio) / 16000

    def _heard(self):
        return [w for w in WORDS[self.done:] if w[1] <= self.fed]

    def partial(self):
        heard = self._heard()
        return (heard[0][0], heard[-1][1], " ".join(w[2] for w in heard)) if heard else None

    def process_iter(self):
        heard = self._heard()
        if len(heard) >= 3:
            self.done += len(heard)
            return (heard[0][0], heard[-1][1] + 0.8, " ".join(w[2] for w in heard))  # end past the audio on purpose
        return None

    def finish(self):
        heard = [w for w in WORDS[self.done:]]
        self.done = len(WORDS)
        return (heard[0][0], heard[-1][1], " ".join(w[2] for w in heard)) if heard else None


@pytest.fixture(scope="module")
def trace():
    return asr_lab.replay(WithPartials(), AUDIO, clock="unaware", chunk_sec=0.25, meta={"backend": "stand-in"})


def _png_of(fig) -> bytes:
    from IPython.core.interactiveshell import InteractiveShell

    data, _ = InteractiveShell.instance().display_formatter.format(fig)
    assert "image/png" in data, f"IPython shows only {data.get('text/plain')!r}"
    return data["image/png"]


def test_a_figure_displays_as_png_without_any_matplotlib_magic(trace):
    pytest.importorskip("IPython")
    png = _png_of(plots.waterfall(trace, reference_words=WORDS))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_waterfall_is_readable(trace):
    fig = plots.waterfall(trace, reference_words=WORDS)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert "array" not in ax.get_title()
    labels = fig.legends[0].get_texts()
    assert any("partials" in t.get_text() for t in labels) and any("committed" in t.get_text() for t in labels)
    assert ax.get_legend() is None  # the legend is the figure's, outside the axes
    legend_box, axes_box = fig.legends[0].get_window_extent(), ax.get_window_extent()
    assert legend_box.y1 <= axes_box.y0 or not legend_box.overlaps(axes_box)
    assert ax.get_xlim()[1] <= trace.duration * 1.05  # the utterance, not the engine's times past its end
    xs = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections if len(c.get_offsets())])
    assert xs.max() <= trace.duration + 1e-9


class Utt:
    id, text, words = "u0", " ".join(w[2] for w in WORDS), WORDS

    def load_audio(self):
        return AUDIO


def test_wer_vs_latency_names_points_in_a_legend_not_colliding_labels():
    systems = {f"LocalAgreement {step} s": (lambda step=step: asr_lab.OnlineASRProcessor(TimelineASR(WORDS), min_chunk_sec=step))
               for step in (0.5, 0.55, 0.6)}  # three nearly identical points
    res = asr_lab.compare(systems, [Utt()], clock="unaware", progress=False)
    fig = plots.wer_vs_latency(res)
    ax = fig.axes[0]
    assert not ax.texts  # no annotations next to the points to collide
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert all(any(n.startswith(system) for n in names) for system in systems)


def test_empty_figures_are_flagged_and_not_saved(tmp_path):
    from asr_lab.compare import Results, RunRecord

    failed = Results([RunRecord("s", "u", 0, "k", None, "RuntimeError: no model")], {"u": None})
    assert plots.latency_distribution(failed).empty
    assert plots.wer_vs_latency(failed).empty
    assert plots.save_all(failed, tmp_path) == [] and not list(tmp_path.glob("*.png"))


def test_scripts_save_the_same_figures_without_a_display(tmp_path):
    code = (
        "import asr_lab\n"
        "from asr_lab import plots\n"
        "from asr_lab.testing import TimelineASR, words_from_text\n"
        "w = words_from_text('one two three four', pause_every=2)\n"
        "t = asr_lab.replay(asr_lab.OnlineASRProcessor(TimelineASR(w), min_chunk_sec=0.5), TimelineASR.stream_audio(w[-1][1] + 0.5), clock='unaware')\n"
        f"plots.waterfall(t).savefig(r'{tmp_path / 'w.png'}')\n"
        "import matplotlib; print(matplotlib.get_backend())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**__import__("os").environ, "MPLBACKEND": ""})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"


def test_results_in_a_notebook_show_failures_above_the_table():
    from asr_lab.compare import Results, RunRecord

    res = Results([RunRecord("s", "u", 0, "k", None, "RuntimeError: no model <here>")], {"u": None})
    page = res._repr_html_()
    assert page.index("1 of 1 runs failed") < page.index("<table") and "no model &lt;here&gt;" in page
