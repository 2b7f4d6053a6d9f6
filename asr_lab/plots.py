"""Figures of a comparison: each function returns a matplotlib ``Figure`` (never only shows it).

* :func:`waterfall` — when each word appeared against where it is in the audio: the
  diagonal is zero latency, the vertical distance above it is the word's latency; faint
  marks are partial (unconfirmed) text, which may later be revised.
* :func:`latency_distribution` — per-word latency of each system (box plot, pooled words).
* :func:`wer_vs_latency` — the accuracy/latency trade-off with the Pareto front marked.
* :func:`latency_decomposition` — where latency comes from, per system: recognition,
  policy hold and compute & queueing as stacked mean bars (:mod:`asr_lab.metrics.decomposition`).
* :func:`stability_over_time` — words on display over time: committed (solid) and
  committed + partial (dashed); drops of the dashed line are erasures.

Figures are :class:`LabFigure` objects built without pyplot state, so scripts and worker
threads can build and save them alike. A plain ``matplotlib.figure.Figure`` shows in
Jupyter only as ``<Figure size ...>`` unless pyplot's inline backend happens to be active
(IPython registers its PNG formatter for figures only then); :class:`LabFigure` renders
itself as PNG (``_repr_png_``), so a cell whose value is a figure always shows the image.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Sequence

from matplotlib.figure import Figure

__all__ = ["LabFigure", "waterfall", "latency_distribution", "wer_vs_latency", "stability_over_time", "latency_decomposition",
           "save_all"]


class LabFigure(Figure):
    """A matplotlib ``Figure`` that Jupyter displays as an image whatever the backend.

    ``empty`` is True when there was nothing to draw (the figure then says why);
    :func:`save_all` skips such figures.
    """

    empty: bool = False

    def savefig(self, fname, **kwargs):
        """``Figure.savefig`` that keeps legends placed outside the axes in the file."""
        kwargs.setdefault("bbox_inches", "tight")
        return super().savefig(fname, **kwargs)

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png")
        return buf.getvalue()


def _legend_below(fig) -> None:
    """The figure's legend under the axes, in one or two columns; the figure grows to hold it."""
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if not labels:
        return
    ncols = 2 if max(len(label) for label in labels) <= 42 else 1
    rows = -(-len(labels) // ncols)
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + 0.2 * rows)
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize="small", frameon=False)


def _figure(width: float = 7.0, height: float = 4.5):
    fig = LabFigure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _nothing(fig, ax, message: str):
    fig.empty = True
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def _title_name(utt) -> str:
    """A short name for a title: a file's name, nothing for in-memory audio."""
    name = Path(str(utt)).name if utt else ""
    return "" if name in ("", "array", "None") else f" — {name}"


def _colors(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _spread(start: float, end: float, text: str) -> list[tuple[float, float, str]]:
    words = text.split()
    if not words:
        return []
    step = (end - start) / len(words)
    return [(start + i * step, start + (i + 1) * step, w) for i, w in enumerate(words)]


def _traces_of(source, utterance: Optional[str], repeat: int, systems) -> tuple[dict, Optional[list], str]:
    """``({system: trace}, reference word timings or None, title)`` from Results, a Trace or a dict of traces."""
    from asr_lab.replay import Trace

    if isinstance(source, Trace):
        source = {source.meta.get("backend", source.meta.get("processor", "trace")): source}
    if isinstance(source, dict):
        traces = {name: t for name, t in source.items() if systems is None or name in systems}
        return traces, None, utterance or (next(iter(traces.values())).meta.get("source", "") if traces else "")
    utt = _pick_utterance(source, utterance)
    names = list(systems or source.systems)
    traces = {s: source.traces[(s, utt, repeat)] for s in names if (s, utt, repeat) in source.traces}
    return traces, getattr(source.references[utt], "words", None), utt


def _pick_utterance(results, utterance: Optional[str]) -> str:
    ids = list(results.references)
    if utterance is None:
        return max(ids, key=lambda u: max((r.trace.duration for r in results.records if r.utterance == u and r.trace), default=0))
    if utterance not in results.references:
        raise KeyError(f"utterance {utterance!r} is not in these results; known: {', '.join(ids[:10])}{' …' if len(ids) > 10 else ''}")
    return utterance


def waterfall(results, utterance: Optional[str] = None, *, systems: Optional[Sequence[str]] = None, repeat: int = 0,
              partials: bool = True, reference_words: Optional[Sequence] = None, panels: bool = False,
              window: Optional[tuple[float, float]] = None):
    """Emission waterfall of one utterance for each system.

    ``results``: :class:`~asr_lab.Results` (``utterance`` defaults to the longest), a single
    :class:`~asr_lab.replay.Trace`, or ``{name: trace}``. x: end of each word in the audio
    (the engine's word time, or the segment split evenly over its words); y: stream time at
    which the word was emitted. The grey diagonal is zero latency; reference word ends
    (from the results, or ``reference_words``) are ticks along the x axis. Both axes cover
    the utterance (engine times past its end are clipped to it); the legend sits outside the
    axes so that it never hides a word.

    ``panels=True``: small multiples, one panel per system sharing both axes, so that four
    systems on a long stream do not hide each other. ``window=(start, end)``: only the words
    whose audio ends in that span of seconds, the axes zoomed to it.
    """
    traces, words, utt = _traces_of(results, utterance, repeat, systems)
    words = reference_words if reference_words is not None else words
    if window is not None:
        lo, hi = (float(v) for v in window)
        if not (0 <= lo < hi):
            raise ValueError(f"window={window!r} must be (start, end) seconds with 0 <= start < end, e.g. (20, 40)")
    n = len(traces) if panels and traces else 1
    fig = LabFigure(figsize=(7.0, 4.2 if n == 1 else 1.2 + 1.9 * n), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    if not traces:
        return _nothing(fig, axes[0], "no trace to draw")
    duration = max((t.duration for t in traces.values()), default=0.0)
    lo, hi = window if window is not None else (0.0, duration)
    hi = min(hi, duration) if duration else hi
    top = hi
    for k, (color, (system, trace)) in enumerate(zip(_colors(len(traces)), traces.items())):
        ax = axes[k if panels else 0]
        top = max(top, _waterfall_system(ax, system, trace, color, duration, partials, (lo, hi), panel=panels))
    for k, ax in enumerate(axes):
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=1, ls="--", label="zero latency" if k == 0 else None)
        if words:
            ends = [min(w[1], duration) for w in words if lo <= min(w[1], duration) <= hi]
            ax.plot(ends, [lo] * len(ends), "|", color="0.3", ms=10, clip_on=False, label="reference word ends" if k == 0 else None)
        ax.set_xlim(lo, lo + (hi - lo) * 1.01 or 1.0)
        ax.set_ylim(lo, lo + (top - lo) * 1.04 or 1.0)
        ax.set_ylabel("emitted at (stream s)" if n == 1 else "emitted at (s)")
    axes[-1].set_xlabel("audio time of the word (s)")
    span = f", {lo:g}–{hi:g} s" if window is not None else ""
    fig.suptitle(f"When words appeared{_title_name(utt)}{span}") if panels else axes[0].set_title(f"When words appeared{_title_name(utt)}{span}")
    _legend_below(fig)
    return fig


def _waterfall_system(ax, system: str, trace, color, duration: float, partials: bool, window: tuple[float, float],
                      panel: bool) -> float:
    """Draw one system's committed (and partial) words on ``ax``; the highest emission time drawn."""
    lo, hi = window
    dur = trace.duration or duration
    top = hi
    n_partials = 0
    if partials:
        xs, ys = [], []
        for p in trace.partials:
            if p.text and p.start is not None:
                for _, end, _ in _spread(p.start, p.end, p.text):
                    if lo <= min(end, dur) <= hi:
                        xs.append(min(end, dur))
                        ys.append(p.at)
        if xs:
            n_partials = len(trace.partials)
            ax.scatter(xs, ys, s=9, color=color, alpha=0.35, linewidths=0,
                       label=f"{system} partials ({len(trace.partials)} updates)" if not panel else "partial (unconfirmed) words")
            top = max(top, *ys)
    xs, ys = [], []
    for e in trace.emissions:
        for _, end, _ in e.words or _spread(e.start, e.end, e.text):
            if lo <= min(end, dur) <= hi:
                xs.append(min(end, dur))
                ys.append(e.emitted_at)
    ax.scatter(xs, ys, s=16, color=color, zorder=3, label=f"{system} committed ({len(xs)} words)" if not panel else "committed words")
    if panel:  # each panel names its system; the figure legend explains the marks once
        for coll in ax.collections:
            if ax is not ax.figure.axes[0]:
                coll.set_label(None)
        note = f"{len(xs)} committed words" + (f", {n_partials} partial updates" if n_partials else "")
        ax.set_title(f"{system} — {note}", fontsize="medium", loc="left")
    return max([top, *ys])


def latency_distribution(results, *, against: str = "reference"):
    """Box plot of per-word latency per system, pooled over all utterances and repeats.

    ``against="reference"``: emitted_at − reference word end (needs word timings);
    ``"engine"``: emitted_at − the engine's own word end (what Whisper-Streaming logs).
    """
    if against not in ("reference", "engine"):
        raise ValueError(f"against={against!r}: use 'reference' or 'engine'")
    data, labels = [], []
    for system in results.systems:
        values = []
        for (s, _, _), sc in results.scores.items():
            if s == system:
                for w in sc.latency.words:
                    v = w.latency if against == "reference" else w.hyp_latency
                    if v is not None:
                        values.append(v)
        if values:
            data.append(values)
            labels.append(system)
    fig, ax = _figure()
    if not data:
        return _nothing(fig, ax, f"no word latencies against the {against}\n(no successful run, or reference word timings missing)")
    box = ax.boxplot(data, orientation="horizontal", patch_artist=True, showfliers=True, medianprops={"color": "black"})
    ax.set_yticks(range(1, len(labels) + 1), labels)
    for patch, color in zip(box["boxes"], _colors(len(data))):
        patch.set_facecolor((*color[:3], 0.45))
    ax.axvline(0, color="0.6", lw=1, ls="--")
    xlabel = f"word latency vs {against} word end (s)"
    left_out = [system for system in results.systems if system not in labels]
    if left_out:  # no matched word: say so rather than drop them silently
        xlabel += "\n" + _wrap("not shown (no matched word): " + ", ".join(left_out))
    ax.set(xlabel=xlabel, title="Per-word latency (box: p25–p75, line: median)")
    return fig


def _wrap(text: str, width: int = 80) -> str:
    import textwrap

    return textwrap.fill(text, width)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (lower is better), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best_y = [], float("inf")
    for i in order:
        if points[i][1] < best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def wer_vs_latency(results, *, latency: str = "latency_p50", ci: bool = True, level: float = 0.95, resamples: int = 1000,
                   seed: int = 0):
    """Corpus WER against a latency column of the summary, with the Pareto front marked.

    Each system is a marker named in the legend (outside the axes), so close points never
    make their labels collide; systems without a WER or that latency are left out.
    ``ci=True`` (default) draws whiskers: the percentile bootstrap interval over utterances
    of the corpus WER (vertical) and of the latency figure (horizontal), at ``level``
    (:func:`asr_lab.metrics.bootstrap_interval`, via ``Results.table(ci=True)``): how far
    each would move on another test set like this one. A system of one utterance has none.
    """
    s = results.summary
    fig, ax = _figure(8.0, 4.5)
    if "wer" not in s.columns:
        return _nothing(fig, ax, "no scored run: nothing to place")
    if latency not in s.columns:
        raise KeyError(f"latency={latency!r} is not a summary column; try latency_p50, latency_p90, latency_mean, first_word_latency")
    rows = [(name, float(r["wer"]), float(r[latency])) for name, r in s.iterrows() if r[latency] == r[latency] and r["wer"] == r["wer"]]
    left_out = [name for name in s.index if name not in {r[0] for r in rows}]
    if not rows:
        return _nothing(fig, ax, f"no system has both a WER and {latency}")
    intervals = results.table(["wer", latency], ci=True, level=level, resamples=resamples, seed=seed) if ci and hasattr(results, "table") else None
    markers = "osD^v<>pPX*h"
    for i, (color, (name, w, l)) in enumerate(zip(_colors(len(rows)), rows)):
        label = f"{name}: WER {w:.3f}, {l:.2f} s"
        if intervals is not None and name in intervals.index:
            iv = intervals.loc[name]
            wl, wh, ll, lh = (float(iv.get(c, float("nan"))) for c in ("wer_low", "wer_high", f"{latency}_low", f"{latency}_high"))
            if wl == wl and wh == wh:
                ax.errorbar([l], [w], yerr=[[max(0.0, w - wl)], [max(0.0, wh - w)]], fmt="none", ecolor=color, elinewidth=1.1, capsize=3, zorder=2)
                label = f"{name}: WER {w:.3f} [{wl:.3f}, {wh:.3f}], {l:.2f} s"
            if ll == ll and lh == lh:
                ax.errorbar([l], [w], xerr=[[max(0.0, l - ll)], [max(0.0, lh - l)]], fmt="none", ecolor=color, elinewidth=1.1, capsize=3, zorder=2)
                label += f" [{ll:.2f}, {lh:.2f}]"
        ax.scatter([l], [w], s=70, color=color, marker=markers[i % len(markers)], zorder=3, edgecolors="white", linewidths=0.6,
                   label=label)
    front = pareto_front([(l, w) for _, w, l in rows])
    if len(front) > 1:
        ax.plot([rows[i][2] for i in front], [rows[i][1] for i in front], color="0.3", lw=1.2, ls="-", zorder=2, label="Pareto front")
    ax.margins(0.12)
    xlabel = f"{latency} (s)"
    if left_out:  # no matched word, so no latency: say so rather than drop them silently
        xlabel += "\n" + _wrap(f"not shown (no {latency}): " + ", ".join(left_out))
    title = "Accuracy vs latency (lower left is better)"
    if intervals is not None:
        title += f"\nwhiskers: {level:.0%} bootstrap interval over utterances"
    ax.set(xlabel=xlabel, ylabel="WER (corpus)", title=title)
    fig.legend(loc="outside right center", fontsize="small", frameon=False)
    return fig


def stability_over_time(results, utterance: Optional[str] = None, *, systems: Optional[Sequence[str]] = None, repeat: int = 0):
    """Words on display over stream time: committed (solid) and committed + partial (dashed).

    ``results``: :class:`~asr_lab.Results`, a :class:`~asr_lab.replay.Trace` or ``{name: trace}``.
    """
    from asr_lab.metrics import display_snapshots

    traces, _, utt = _traces_of(results, utterance, repeat, systems)
    fig, ax = _figure(7.0, 4.0)
    if not traces:
        return _nothing(fig, ax, "no trace to draw")
    end = 0.0
    for color, (system, trace) in zip(_colors(len(traces)), traces.items()):
        times, committed, shown = [0.0], [0], [0]
        for t, comm, part in display_snapshots(emissions=trace.emissions, partials=trace.partials, separator=trace.separator):
            times.append(t)
            committed.append(len(comm.split()))
            shown.append(len(comm.split()) + len(part.split()))
        end = max(end, trace.duration, *times)
        times.append(end)  # hold the last state to the end of the stream
        committed.append(committed[-1])
        shown.append(shown[-1])
        ax.step(times, committed, where="post", color=color, label=f"{system} committed")
        if trace.partials:
            ax.step(times, shown, where="post", color=color, ls="--", alpha=0.7, label=f"{system} committed + partial")
    ax.set_xlim(0, end * 1.01 or 1.0)
    ax.set_ylim(bottom=0)
    ax.set(xlabel="stream time (s)", ylabel="words on display", title=f"Display over time{_title_name(utt)}")
    _legend_below(fig)
    return fig


def save_all(results, out_dir, *, dpi: int = 120) -> list[Path]:
    """Write the figures as PNG files into ``out_dir``; returns their paths.

    A figure with nothing to draw (every run failed, no word timings) is not written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not any(r.trace is not None for r in getattr(results, "records", [])):
        return []
    many = len(getattr(results, "systems", [])) > 2
    figures = {
        "waterfall.png": (lambda r: waterfall(r, panels=True)) if many else waterfall,
        "latency.png": latency_distribution,
        "wer_vs_latency.png": wer_vs_latency,
        "stability.png": stability_over_time,
    }
    paths = []
    for name, make in figures.items():
        fig = make(results)
        if fig.empty:
            continue
        fig.savefig(out / name, dpi=dpi)
        paths.append(out / name)
    return paths


def latency_decomposition(source, *, title: str = "Where word latency comes from"):
    """Stacked horizontal bars, one per system: mean recognition + policy hold + compute &
    queueing = mean latency of the correctly committed words (means add up; medians would
    not). A black tick marks each system's p90 latency; the label gives the word count.

    ``source``: :class:`asr_lab.Results` (utterances with reference word timings) or
    ``{system: Decomposition}`` (:func:`asr_lab.metrics.decomposition.decompose_results`).
    """
    from asr_lab.metrics.decomposition import COMPONENTS, decompose_results

    parts = source if isinstance(source, dict) else decompose_results(source)
    names = [n for n, d in parts.items() if d.words]
    fig, ax = _figure(7.5, 1.2 + 0.6 * max(1, len(names)))
    if not names:
        return _nothing(fig, ax, "no correctly committed word with reference timings")
    labels = {"recognition": "recognition (audio until first correct hypothesis)",
              "policy_hold": "policy hold (until committed)", "compute": "compute & queueing"}
    colors = dict(zip(COMPONENTS, ("#4c72b0", "#dd8452", "#c44e52")))
    ys = list(range(len(names)))[::-1]
    for comp in COMPONENTS:
        left = [sum(getattr(parts[n], c).mean for c in COMPONENTS[: COMPONENTS.index(comp)]) for n in names]
        widths = [getattr(parts[n], comp).mean for n in names]
        ax.barh(ys, widths, left=left, height=0.55, color=colors[comp], label=labels[comp])
    p90 = [parts[n].latency.p90 for n in names]
    ax.scatter(p90, ys, marker="|", s=400, color="black", zorder=3, label="p90 latency")
    ax.set_yticks(ys, [f"{n}\n({len(parts[n].words)} words)" for n in names])
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("seconds after the word's audio ended (mean)")
    ax.set_title(title)
    handles, texts = ax.get_legend_handles_labels()
    order = [texts.index(labels[c]) for c in COMPONENTS] + [texts.index("p90 latency")]
    ax.legend([handles[i] for i in order], [texts[i] for i in order], loc="upper center",
              bbox_to_anchor=(0.5, -0.25), ncol=2, fontsize=8, frameon=False)
    return fig
