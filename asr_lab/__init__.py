"""asr_lab — a laboratory for streaming speech recognition.

Replay the same audio through several real-time engines, score WER, latency and
stability, and compare them in notebooks, scripts and live panels. Every engine plugs in
through :class:`ASRProcessor`; Whisper-family engines through :class:`ASRBase` and the
LocalAgreement-2 policy (:class:`OnlineASRProcessor`).

Importing this package is cheap: engines, librosa and matplotlib load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asr_lab.core.lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first attribute access (PEP 562)
_EXPORTS = {
    "ASRProcessor": "asr_lab.core.protocols",
    "ASRBase": "asr_lab.core.protocols",
    "ModelLoader": "asr_lab.core.protocols",
    "SupportsPartial": "asr_lab.core.protocols",
    "SAMPLE_RATE": "asr_lab.core.protocols",
    "ASRConfig": "asr_lab.core.config",
    "ConfigError": "asr_lab.core.config",
    "load_audio": "asr_lab.core.audio",
    "AudioError": "asr_lab.core.audio",
    "register_loader": "asr_lab.backends.registry",
    "get_loader": "asr_lab.backends.registry",
    "available_backends": "asr_lab.backends.registry",
    "load_processor": "asr_lab.backends.registry",
    "OnlineASRProcessor": "asr_lab.policies.local_agreement",
    "HypothesisBuffer": "asr_lab.policies.local_agreement",
    "check_processor": "asr_lab.testing.conformance",
    "Trace": "asr_lab.replay",
    "Emission": "asr_lab.replay",
    "LiveAudio": "asr_lab.replay",
    "load_dataset": "asr_lab.data",
    "Dataset": "asr_lab.data",
    "Utterance": "asr_lab.data",
    "score": "asr_lab.metrics",
    "Scores": "asr_lab.metrics",
}

__all__ = [
    "ASRBase",
    "ASRConfig",
    "ASRProcessor",
    "AudioError",
    "ConfigError",
    "Dataset",
    "Emission",
    "HypothesisBuffer",
    "LiveAudio",
    "ModelLoader",
    "OnlineASRProcessor",
    "Results",
    "SAMPLE_RATE",
    "Scores",
    "SupportsPartial",
    "Trace",
    "Utterance",
    "__version__",
    "available_backends",
    "check_processor",
    "compare",
    "get_loader",
    "load_audio",
    "load_dataset",
    "load_processor",
    "register_loader",
    "replay",
    "score",
]


# ``asr_lab.replay`` and ``asr_lab.compare`` are packages callable as the functions users call
# (asr_lab.core.lazy.callable_package), so both ``asr_lab.compare(...)`` and
# ``asr_lab.compare.results`` work. They are imported eagerly (they need only numpy).
from asr_lab import compare, replay  # noqa: E402
from asr_lab.compare.results import Results  # noqa: E402

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)


if TYPE_CHECKING:  # pragma: no cover
    from asr_lab.backends.registry import available_backends, get_loader, load_processor, register_loader
    from asr_lab.core.audio import AudioError, load_audio
    from asr_lab.core.config import ASRConfig, ConfigError
    from asr_lab.core.protocols import SAMPLE_RATE, ASRBase, ASRProcessor, ModelLoader, SupportsPartial
    from asr_lab.policies.local_agreement import HypothesisBuffer, OnlineASRProcessor
    from asr_lab.data import Dataset, Utterance, load_dataset
    from asr_lab.metrics import Scores, score
    from asr_lab.replay import Emission, LiveAudio, Trace
    from asr_lab.testing.conformance import check_processor
