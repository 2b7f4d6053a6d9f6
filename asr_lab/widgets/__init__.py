"""Jupyter panels: a live microphone transcriber and a side-by-side replay of a dataset.

* :class:`LiveMicPanel` — the browser's microphone, streamed to the kernel and through any
  backend, with the transcript (committed text plus grey partial), the lag and the dropped
  audio on screen; sessions are saved as dataset utterances to be scored later.
* :class:`ReplayPanel` — pick utterances and backends, listen, and watch every system's
  transcript appear at wall-clock pace.

Both drive engines through :func:`asr_lab.replay`, the one replay loop. They need the
``widgets`` extra (``pip install 'asr-lab[widgets]'``: anywidget, ipywidgets, JupyterLab).
This package is never imported by ``import asr_lab``; its own names load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from asr_lab.core.lazy import lazy_exports

_EXPORTS = {
    "LiveMicPanel": "asr_lab.widgets.live",
    "SavedSession": "asr_lab.widgets.live",
    "decode_audio_message": "asr_lab.widgets.live",
    "encode_audio_message": "asr_lab.widgets.live",
    "ReplayPanel": "asr_lab.widgets.replay_panel",
}

__all__ = ["LiveMicPanel", "ReplayPanel", "SavedSession", "capture_js", "decode_audio_message", "encode_audio_message"]


def capture_js() -> str:
    """The browser microphone capture code (``capture.js``), shared by the live panel and the
    server's page: ``asrLabStartCapture({chunkSec, onChunk})``."""
    return Path(__file__).with_name("capture.js").read_text(encoding="utf-8")


_WIDGET_EXTRAS = {"anywidget": "widgets", "ipywidgets": "widgets", "traitlets": "widgets"}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS, extras=_WIDGET_EXTRAS)


if TYPE_CHECKING:  # pragma: no cover
    from asr_lab.widgets.live import (
        LiveMicPanel,
        SavedSession,
        decode_audio_message,
        encode_audio_message,
    )
    from asr_lab.widgets.replay_panel import ReplayPanel
