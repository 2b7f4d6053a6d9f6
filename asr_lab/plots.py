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

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot state), so they
display once in a notebook and can be saved from scripts and worker threads alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

__all__ = ["waterfall", "latency_distribution", "wer_vs_latency", "stability_over_time", "latency_decomposition", "save_all"]


def _figure(width: float = 7.0, height: float = 4.5):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


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
        return traces, None, utterance or next(iter(traces.values())).meta.get("source", "")
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
              partials: bool = True, reference_words: Optional[Sequence] = None):
    """Emission waterfall of one utterance for each system.

    ``results``: :class:`~asr_lab.Results` (``utterance`` defaults to the longest), a single
    :class:`~asr_lab.replay.Trace`, or ``{name: trace}``. x: end of each word in the audio
    (the engine's word time, or the segment split evenly over its words); y: stream time at
    which the word was emitted. The grey diagonal is zero latency; reference word ends
    (from the results, or ``reference_words``) are ticks along the x axis.
    """
    traces, words, utt = _traces_of(results, utterance, repeat, systems)
    words = reference_words if reference_words is not None else words
    fig, ax = _figure()
    top = 0.0
    for color, (system, trace) in zip(_colors(len(traces)), traces.items()):
        if partials:
            xs, ys = [], []
            for p in trace.partials:
                if p.text and p.start is not None:
                    for _, end, _ in _spread(p.start, p.end, p.text):
                        xs.append(end)
                        ys.append(p.at)
            ax.scatter(xs, ys, s=6, color=color, alpha=0.15, linewidths=0)
        xs, ys = [], []
        for e in trace.emissions:
            for _, end, _ in e.words or _spread(e.start, e.end, e.text):
                xs.append(end)
                ys.append(e.emitted_at)
        ax.scatter(xs, ys, s=14, color=color, label=f"{system} ({len(xs)} words)")
        top = max([top, trace.duration, *ys])
    ax.plot([0, top], [0, top], color="0.6", lw=1, ls="--", label="zero latency")
    if words:
        ax.plot([w[1] for w in words], [0] * len(words), "|", color="0.3", ms=8, label="reference word ends")
    ax.set(xlabel="audio time of the word (s)", ylabel="emitted at (stream s)", title=f"When words appeared — {Path(str(utt)).name}")
    ax.legend(fontsize="small", loc="upper left")
    return fig


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
        ax.text(0.5, 0.5, f"no word latencies against the {against}\n(reference word timings missing?)", ha="center", va="center", transform=ax.transAxes)
        return fig
    box = ax.boxplot(data, orientation="horizontal", patch_artist=True, showfliers=True)
    ax.set_yticks(range(1, len(labels) + 1), labels)
    for patch, color in zip(box["boxes"], _colors(len(data))):
        patch.set_facecolor((*color[:3], 0.45))
    ax.axvline(0, color="0.6", lw=1, ls="--")
    ax.set(xlabel=f"word latency vs {against} word end (s)", title="Per-word latency (box: p25–p75, line: median)")
    return fig


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (lower is better), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best_y = [], float("inf")
    for i in order:
        if points[i][1] < best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def wer_vs_latency(results, *, latency: str = "latency_p50"):
    """Corpus WER against a latency column of the summary, with the Pareto front marked."""
    s = results.summary
    if latency not in s.columns:
        raise KeyError(f"latency={latency!r} is not a summary column; try latency_p50, latency_p90, latency_mean, first_word_latency")
    rows = [(name, float(r["wer"]), float(r[latency])) for name, r in s.iterrows() if r[latency] == r[latency] and r["wer"] == r["wer"]]
    fig, ax = _figure()
    for color, (name, w, l) in zip(_colors(len(rows)), rows):
        ax.scatter([l], [w], s=60, color=color, zorder=3)
        ax.annotate(name, (l, w), textcoords="offset points", xytext=(6, 4), fontsize="small")
    front = pareto_front([(l, w) for _, w, l in rows])
    if len(front) > 1:
        ax.plot([rows[i][2] for i in front], [rows[i][1] for i in front], color="0.3", lw=1.2, ls="-", zorder=2, label="Pareto front")
        ax.legend(fontsize="small")
    ax.set(xlabel=f"{latency} (s)", ylabel="WER (corpus)", title="Accuracy vs latency (lower left is better)")
    return fig


def stability_over_time(results, utterance: Optional[str] = None, *, systems: Optional[Sequence[str]] = None, repeat: int = 0):
    """Words on display over stream time: committed (solid) and committed + partial (dashed).

    ``results``: :class:`~asr_lab.Results`, a :class:`~asr_lab.replay.Trace` or ``{name: trace}``.
    """
    from asr_lab.metrics import display_snapshots

    traces, _, utt = _traces_of(results, utterance, repeat, systems)
    fig, ax = _figure()
    for color, (system, trace) in zip(_colors(len(traces)), traces.items()):
        times, committed, shown = [0.0], [0], [0]
        for t, comm, part in display_snapshots(emissions=trace.emissions, partials=trace.partials, separator=trace.separator):
            times.append(t)
            committed.append(len(comm.split()))
            shown.append(len(comm.split()) + len(part.split()))
        ax.step(times, committed, where="post", color=color, label=f"{system} committed")
        if trace.partials:
            ax.step(times, shown, where="post", color=color, ls="--", alpha=0.7, label=f"{system} + partial")
    ax.set(xlabel="stream time (s)", ylabel="words on display", title=f"Display over time — {Path(str(utt)).name}")
    ax.legend(fontsize="small", loc="upper left")
    return fig


def save_all(results, out_dir, *, dpi: int = 120) -> list[Path]:
    """Write the four figures as PNG files into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "waterfall.png": waterfall(results),
        "latency.png": latency_distribution(results),
        "wer_vs_latency.png": wer_vs_latency(results),
        "stability.png": stability_over_time(results),
    }
    paths = []
    for name, fig in figures.items():
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
        ax.text(0.5, 0.5, "no correctly committed word with reference timings", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
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
