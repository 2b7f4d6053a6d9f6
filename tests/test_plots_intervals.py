"""The accuracy-vs-latency plot carries its bootstrap intervals, and the waterfall of several
systems on a long stream can be read: one panel per system (shared axes) and/or a time window."""

import numpy as np
import pytest

import asr_lab
from asr_lab import plots

TEXTS = ["one two three four five six", "seven eight nine ten eleven twelve", "alpha beta gamma delta epsilon zeta",
         "red green blue cyan magenta yellow"]
WORD_SEC = 0.5


class Utt:
    """Utterance k: TEXTS[k], word i spoken in [i, i + 1) * WORD_SEC; its audio's level says k."""

    def __init__(self, k):
        self.id, self.text, self.k = f"u{k}", TEXTS[k], k
        self.words = [(i * WORD_SEC, (i + 1) * WORD_SEC, w) for i, w in enumerate(TEXTS[k].split())]

    def load_audio(self):
        return np.full(int((self.words[-1][1] + 0.5) * 16000), (self.k + 1) / 100, np.float32)


class ScriptReader:
    """Stand-in processor: reads from the audio's level which TEXTS line is spoken and commits each
    word once its audio has been fed; ``drop`` words are never said (so WER differs per utterance)."""

    def __init__(self, drop=()):
        self.drop = set(drop)
        self.init()

    def init(self, offset=0.0):
        self.fed, self.said, self.script = 0.0, 0, None

    def insert_audio_chunk(self, audio):
        if self.script is None and len(audio):
            self.script = TEXTS[int(round(float(audio[0]) * 100)) - 1].split()
        self.fed += len(audio) / 16000

    def _say(self, upto):
        words = [(i * WORD_SEC, (i + 1) * WORD_SEC, w) for i, w in enumerate(self.script or []) if self.said <= i < upto]
        self.said = max(self.said, upto)
        kept = [w for w in words if w[2] not in self.drop]
        return (kept[0][0], kept[-1][1], " ".join(w[2] for w in kept)) if kept else None

    def process_iter(self):
        return self._say(int(self.fed // WORD_SEC)) if self.script else None

    def finish(self):
        return self._say(len(self.script or []))


@pytest.fixture(scope="module")
def results():
    systems = {"every word": ScriptReader, "lossy": lambda: ScriptReader(drop={"five", "gamma", "blue", "cyan"}),
               "lossy too": lambda: ScriptReader(drop={"nine", "alpha"})}
    return asr_lab.compare(systems, [Utt(k) for k in range(len(TEXTS))], clock="unaware", chunk_sec=0.5, progress=False)


def test_wer_vs_latency_draws_the_bootstrap_interval_of_both_figures(results):
    fig = plots.wer_vs_latency(results)
    ax = fig.axes[0]
    table = results.table(["wer", "latency_p50"], ci=True)
    segments = [seg for c in ax.collections if type(c).__name__ == "LineCollection" for seg in c.get_segments()]
    for name, row in table.iterrows():
        w, lat = row["wer"], row["latency_p50"]
        vertical = [s for s in segments if np.allclose(s[:, 0], lat) and s[0, 1] != s[1, 1]]
        horizontal = [s for s in segments if np.allclose(s[:, 1], w) and s[0, 0] != s[1, 0]]
        if row["wer_high"] > row["wer_low"]:
            assert any(np.allclose(sorted(s[:, 1]), [row["wer_low"], row["wer_high"]]) for s in vertical), name
        if row["latency_p50_high"] > row["latency_p50_low"]:
            assert any(np.allclose(sorted(s[:, 0]), [row["latency_p50_low"], row["latency_p50_high"]]) for s in horizontal), name
    assert any(row["wer_high"] > row["wer_low"] for _, row in table.iterrows())  # the lossy system's WER moves
    assert "bootstrap interval" in ax.get_title()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("[" in label for label in labels)
    plain = plots.wer_vs_latency(results, ci=False)
    assert not [c for c in plain.axes[0].collections if type(c).__name__ == "LineCollection"]


def test_waterfall_in_panels_gives_each_system_its_own_axes_on_shared_scales(results):
    fig = plots.waterfall(results, "u0", panels=True)
    axes = fig.axes
    assert len(axes) == len(results.systems)
    assert [ax.get_title(loc="left").split(" — ")[0] for ax in axes] == results.systems
    assert len({ax.get_xlim() for ax in axes}) == 1 and len({ax.get_ylim() for ax in axes}) == 1
    for ax, system in zip(axes, results.systems):
        trace = results.traces[(system, "u0", 0)]
        drawn = sum(len(c.get_offsets()) for c in ax.collections)
        assert drawn == sum(len(e.words or e.text.split()) for e in trace.emissions)  # only its own words
    assert len(fig.legends) == 1  # one legend explains the marks


def test_waterfall_window_keeps_only_the_words_that_end_inside_it(results):
    trace = results.traces[("every word", "u0", 0)]
    ends = [end for e in trace.emissions for _, end, _ in plots._spread(e.start, e.end, e.text)]
    lo, hi = 0.8, ends[len(ends) // 2]
    fig = plots.waterfall(results, "u0", systems=["every word"], window=(lo, hi))
    ax = fig.axes[0]
    xs = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections if len(c.get_offsets())])
    assert xs.min() >= lo and xs.max() <= hi and len(xs) == sum(lo <= x <= hi for x in ends)
    assert ax.get_xlim()[0] == lo and ax.get_xlim()[1] <= hi * 1.02
    with pytest.raises(ValueError, match="window=.*start, end"):
        plots.waterfall(results, "u0", window=(5, 1))
