"""The replay panel: pick an utterance and some systems, listen, and watch them transcribe side by side.

Each chosen system runs in its own thread through :func:`asr_lab.replay` on the wall clock
(the one replay loop), so its text appears when it would have appeared live; all systems
start together (after each has loaded its engine and warmed up) and one publisher thread
draws their rows. The audio player (``ipywidgets.Audio``) plays the utterance at normal
speed; with ``speed`` other than 1 the transcripts run faster or slower than the sound.
"""

from __future__ import annotations

import html
import io
import json
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

import ipywidgets as W
import numpy as np

from asr_lab.core.protocols import SAMPLE_RATE
from asr_lab.replay import Emission, PartialSnapshot, Trace, replay

__all__ = ["ReplayPanel"]

SPEEDS = (0.5, 1.0, 2.0, 4.0)
_PROCESSOR_METHODS = ("init", "insert_audio_chunk", "process_iter", "finish")
_START_TIMEOUT_SEC = 300.0  # loading an engine may take a while; a stuck one must not hang the others forever
_PUBLISH_EVERY_SEC = 0.1


class _Row:
    """One system's state during a run (written by its thread, drawn by the publisher)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = "waiting"
        self.committed: list[str] = []
        self.partial = ""
        self.lag: float | None = None
        self.error = ""
        self.trace: Trace | None = None
        self.sep = " "


class ReplayPanel(W.VBox):
    """Replay dataset utterances through several systems at once, at wall-clock pace.

    ``dataset``: a :class:`~asr_lab.data.Dataset`, anything :func:`asr_lab.load_dataset`
    reads (e.g. ``"datasets/mini"``), or a list of :class:`~asr_lab.data.Utterance`.
    ``configs``: ``{"name": config}`` (configs as for :func:`asr_lab.load_processor`, or
    ready processors), or a list of configs (named by backend). ``speed``: stream seconds
    per wall second. ``show_reference``: show the reference transcript under the systems.

    Use the Play button, or from code :meth:`play` then :meth:`wait` (which returns
    ``{system: Trace}``). Engines are loaded once, on first use, and reused.
    """

    def __init__(self, dataset: Any, configs: Any, *, speed: float = 1.0, show_reference: bool = True) -> None:
        self.dataset = _as_dataset(dataset)
        if len(self.dataset) == 0:
            raise ValueError("the dataset is empty: give one with at least one utterance, e.g. 'datasets/mini'")
        self.configs = _named(configs)
        if speed not in SPEEDS:
            raise ValueError(f"speed={speed!r} is not offered; choose one of {', '.join(map(str, SPEEDS))}")
        self._loaded: dict[str, tuple[Any, dict]] = {}
        self._rows: dict[str, _Row] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._run_id = 0

        self.utterance = W.Dropdown(
            options=[(_label(u), u.id) for u in self.dataset], description="utterance", layout=W.Layout(width="60%")
        )
        self.system_boxes = {
            name: W.Checkbox(value=True, description=name, indent=False, layout=W.Layout(width="auto"))
            for name in self.configs
        }
        self.speed = W.Dropdown(
            options=[(f"{s:g}×", s) for s in SPEEDS], value=speed, description="speed", layout=W.Layout(width="160px")
        )
        self.show_reference = W.Checkbox(value=show_reference, description="show reference", indent=False)
        self.play_button = W.Button(description="Play", icon="play", button_style="primary")
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True)
        self.status = W.HTML("")
        self.audio = W.Audio(format="wav", autoplay=False, loop=False, controls=True)
        self.transcripts = W.VBox([])
        self.reference = W.HTML("")

        self.play_button.on_click(lambda _: self.play())
        self.stop_button.on_click(lambda _: self.stop())
        self.utterance.observe(lambda _: self._select(), names="value")
        self.show_reference.observe(lambda _: self._draw_reference(), names="value")
        super().__init__(
            [
                W.HBox([self.utterance, self.speed]),
                W.HBox([W.HTML("<b>systems</b>&nbsp;"), *self.system_boxes.values()]),
                W.HBox([self.play_button, self.stop_button, self.status]),
                self.audio,
                self.transcripts,
                self.reference,
            ]
        )
        self._select()

    # -- selection ---------------------------------------------------------------------
    @property
    def selected_systems(self) -> list[str]:
        return [name for name, box in self.system_boxes.items() if box.value]

    def _select(self) -> None:
        utt = self.dataset[self.utterance.value]
        self.audio.value = _wav_bytes(utt.load_audio())
        self._draw_reference()

    def _draw_reference(self) -> None:
        utt = self.dataset[self.utterance.value]
        self.reference.value = (
            f"<div style='color:#555;margin-top:4px'><b>reference</b>: {html.escape(utt.text)}</div>"
            if self.show_reference.value
            else ""
        )

    # -- running -----------------------------------------------------------------------
    def play(
        self,
        utterance: str | None = None,
        systems: list[str] | None = None,
        speed: float | None = None,
        *,
        play_audio: bool = True,
    ) -> None:
        """Start replaying ``utterance`` (an id; default: the selected one) through ``systems``.

        Returns at once; the rows fill in as the systems emit. :meth:`wait` blocks until
        all are done. A run in progress is stopped first.
        """
        if utterance is not None:
            if utterance not in self.dataset:
                raise KeyError(f"utterance {utterance!r} is not in the dataset; ids include {self.dataset.ids[:5]}")
            self.utterance.value = utterance
        if systems is not None:
            unknown = [s for s in systems if s not in self.configs]
            if unknown:
                raise KeyError(f"unknown systems {unknown}; this panel has {list(self.configs)}")
            for name, box in self.system_boxes.items():
                box.value = name in systems
        if speed is not None:
            if speed not in SPEEDS:
                raise ValueError(f"speed={speed!r} is not offered; choose one of {', '.join(map(str, SPEEDS))}")
            self.speed.value = speed
        names = self.selected_systems
        if not names:
            self.status.value = "<span style='color:#b00020'>tick at least one system</span>"
            return
        self.stop()
        self.wait(timeout=30)
        self._stop = threading.Event()
        self._run_id += 1
        run_id = self._run_id
        utt = self.dataset[self.utterance.value]
        audio = utt.load_audio()
        self._rows = {name: _Row(name) for name in names}
        self.transcripts.children = [W.HTML("") for _ in names]
        start = threading.Barrier(len(names) + 1)
        self._threads = [
            threading.Thread(
                target=self._run_system,
                args=(name, audio, float(self.speed.value), start),
                name=f"asr_lab-replay-{name}",
                daemon=True,
            )
            for name in names
        ]
        for thread in self._threads:
            thread.start()
        publisher = threading.Thread(
            target=self._publish_loop, args=(run_id, start, play_audio), name="asr_lab-replay-ui", daemon=True
        )
        self._threads.append(publisher)
        publisher.start()
        self.play_button.disabled = True
        self.stop_button.disabled = False
        self.status.value = "loading engines…"

    def _load(self, name: str) -> tuple[Any, dict]:
        if name not in self._loaded:
            config = self.configs[name]
            if all(callable(getattr(config, m, None)) for m in _PROCESSOR_METHODS):
                self._loaded[name] = (config, {"separator": getattr(getattr(config, "asr", None), "sep", " ") or " "})
            else:
                from asr_lab.backends.registry import load_processor

                self._loaded[name] = load_processor(config)
        return self._loaded[name]

    def _run_system(self, name: str, audio: np.ndarray, speed: float, start: threading.Barrier) -> None:
        row = self._rows[name]
        try:
            row.status = "loading"
            self._dirty.set()
            processor, meta = self._load(name)
            row.sep = meta.get("separator", " ") or " "
        except Exception as exc:  # noqa: BLE001 -- shown in the system's row; the other systems run on
            row.error, row.status = f"{type(exc).__name__}: {exc}", "error"
            self._dirty.set()
            start.abort()  # the others start anyway (see _publish_loop); this row shows why it did not
            return
        try:
            start.wait(_START_TIMEOUT_SEC)
        except threading.BrokenBarrierError:
            pass  # another system failed to load: run anyway, a little out of step
        row.status = "running"
        self._dirty.set()

        def on_emission(e: Emission) -> None:
            row.committed.append(e.text)
            row.lag = e.emitted_at - e.end
            self._dirty.set()

        def on_partial(p: PartialSnapshot) -> None:
            row.partial = p.text
            if p.text and p.end is not None:
                row.lag = p.at - p.end
            self._dirty.set()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a processor error is shown in its row
            trace = replay(
                processor,
                audio,
                clock="wall",
                speed=speed,
                separator=row.sep,
                on_emission=on_emission,
                on_partial=on_partial,
                stop=self._stop,
                meta={"system": name, "utterance": self.utterance.value},
            )
        row.trace = trace
        row.partial = ""
        row.error = "" if trace.ok else f"the engine failed: {trace.error}"
        row.status = "error" if not trace.ok else ("stopped" if self._stop.is_set() else "done")
        self._dirty.set()

    def _publish_loop(self, run_id: int, start: threading.Barrier, play_audio: bool) -> None:
        try:
            start.wait(_START_TIMEOUT_SEC)
        except threading.BrokenBarrierError:
            pass
        if play_audio and float(self.speed.value) == 1.0 and run_id == self._run_id:
            wav = self.audio.value
            self.audio.autoplay = True
            self.audio.value = b""  # a new value makes the front-end reload, and autoplay, the sound
            self.audio.value = wav
            self.audio.autoplay = False
        while run_id == self._run_id:
            self._dirty.wait(_PUBLISH_EVERY_SEC)
            self._dirty.clear()
            finished = all(not t.is_alive() for t in self._threads if t is not threading.current_thread())
            self._draw()
            if finished:
                break
        if run_id == self._run_id:
            self.play_button.disabled = False
            self.stop_button.disabled = True
            failed = [r.name for r in self._rows.values() if r.status == "error"]
            self.status.value = "done" + (
                f" — <span style='color:#b00020'>failed: {', '.join(failed)}</span>" if failed else ""
            )

    def _draw(self) -> None:
        rows = list(self._rows.values())
        self.status.value = "running…" if any(r.status in ("loading", "running") for r in rows) else self.status.value
        for widget, row in zip(self.transcripts.children, rows):
            widget.value = _row_html(row)

    def stop(self) -> None:
        """Stop the running replays (each engine still finishes the audio it was given)."""
        self._stop.set()

    def wait(self, timeout: float | None = 120.0) -> dict[str, Trace]:
        """Block until the current run has finished; return ``{system: Trace}`` (failed loads left out)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise TimeoutError(f"the replay is still running after {timeout} s; call panel.stop() or wait longer")
        return {name: row.trace for name, row in self._rows.items() if row.trace is not None}

    @property
    def traces(self) -> dict[str, Trace]:
        """The traces of the last run's finished systems."""
        return {name: row.trace for name, row in self._rows.items() if row.trace is not None}

    @property
    def texts(self) -> dict[str, str]:
        """What each row shows now: committed text plus partial."""
        return {name: _shown(row) for name, row in self._rows.items()}


# ---------------------------------------------------------------------------- helpers


def _as_dataset(dataset: Any):
    from asr_lab.data.dataset import Dataset, Utterance
    from asr_lab.data.recipes import load_dataset

    if isinstance(dataset, (list, tuple)) and all(isinstance(u, Utterance) for u in dataset):
        return Dataset(dataset)
    return load_dataset(dataset)


def _named(configs: Any) -> dict[str, Any]:
    if isinstance(configs, Mapping):
        named = dict(configs)
    elif isinstance(configs, (list, tuple)):
        named = {}
        for config in configs:
            if isinstance(config, (str, bytes)):
                config = json.loads(config) if str(config).lstrip().startswith("{") else {"backend": config}
            base = (
                config.get("backend", "system")
                if isinstance(config, dict)
                else getattr(config, "backend", type(config).__name__)
            )
            name, k = str(base), 2
            while name in named:
                name, k = f"{base}-{k}", k + 1
            named[name] = config
    else:
        raise TypeError(
            f"configs must be {{'name': config}} or a list of configs, not {type(configs).__name__}; "
            f"e.g. {{'sphinx': {{'backend': 'pocketsphinx'}}}}"
        )
    if not named:
        raise ValueError("no systems to replay: give at least one config, e.g. {'sphinx': {'backend': 'pocketsphinx'}}")
    for name in named:
        if not isinstance(name, str) or not name:
            raise ValueError(f"system names must be non-empty strings, not {name!r}")
    return named


def _label(utt) -> str:
    text = utt.text if len(utt.text) <= 50 else utt.text[:47] + "…"
    return f"{utt.id} — {text}"


def _wav_bytes(audio: np.ndarray) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(audio, dtype=np.float32), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _shown(row: _Row) -> str:
    committed = row.sep.join(row.committed).strip()
    return (committed + (" " if committed and row.partial else "") + row.partial).strip()


def _row_html(row: _Row) -> str:
    committed = html.escape(row.sep.join(row.committed).strip())
    partial = html.escape(row.partial)
    lag = "–" if row.lag is None else f"{row.lag:.2f} s"
    extra = f"lag {lag}"
    if row.trace is not None and row.trace.duration > 0:
        extra += f" · RTF {row.trace.rtf:.2f}"
    error = f"<div style='color:#b00020'>{html.escape(row.error)}</div>" if row.error else ""
    return (
        "<div style='border-left:3px solid #4a90d9;padding:2px 8px;margin:4px 0'>"
        f"<b>{html.escape(row.name)}</b> <span style='color:#888;font-size:90%'>{row.status} · {extra}</span><br>"
        f"<span>{committed}</span> <span style='color:#9a9a9a'>{partial}</span>{error}</div>"
    )
