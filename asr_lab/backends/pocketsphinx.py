"""CMU PocketSphinx 5: a native streaming engine, and an :class:`~asr_lab.ASRBase` for LocalAgreement.

Two backends share one decoder setup (the en-us model bundled in the ``pocketsphinx``
wheel, or a model folder of your own):

``pocketsphinx`` — :class:`PocketSphinxProcessor`, the engine's own streaming
    Audio is cut into 30 ms frames and classified by pocketsphinx's voice-activity
    detector. An *utterance* starts after ``onset_sec`` of speech (with ``preroll_sec`` of
    the audio before it, so weak word onsets are not lost) and ends after
    ``endpoint_silence_sec`` of non-speech (or at the first pause after
    ``max_utterance_sec``, or at ``finish()``). While it lasts, every chunk is decoded at
    once (``process_raw(..., full_utt=False)``) and ``partial()`` is the live hypothesis.
    At its end one segment is committed: with ``final_pass="redecode"`` (default) the
    utterance's audio is decoded again in one piece from fresh feature statistics, so the
    cepstral mean is that of the whole utterance instead of a running estimate that starts
    from the model's prior. On short utterances from a fresh stream this halved the word
    error rate of the live pass (flite voices: 0.13 -> 0.05), for one extra decoding at
    the endpoint (~0.1 x the utterance's length of compute, all in that one call). Since
    the live pass then only makes partials, it runs on a second decoder with a tighter
    search (``live_maxhmmpf``): about 0.17 x real time in all, against 0.33 with one
    decoder at pocketsphinx's default search settings, for the same committed WER.
    ``final_pass="live"`` commits the live pass's own result instead (one decoder), and
    later utterances of a stream profit from the cepstral mean adapted on earlier ones.

    Why a VAD rule and not pocketsphinx's ``Endpointer``: the Endpointer hands audio over
    only after its decision window (0.3 s) is 90 % speech, which delays every partial by
    the window and drops words shorter than that window standing alone ("yes.").
    The rule here starts an utterance after 60 ms of speech and ends it by the same kind
    of silence count the Endpointer uses.

``pocketsphinx-la`` — :class:`PocketSphinxASR` under :class:`~asr_lab.OnlineASRProcessor`
    The whole buffer is decoded in one piece on every call (the Whisper-Streaming way, so
    the policy can be compared on a light engine); segment ends are the pauses of at
    least ``pause_sec`` between words, so LocalAgreement's segment trimming can cut there.

Word times come from ``seg()``: 100 frames per second, end frame inclusive. Fillers
(``<s>``, ``</s>``, ``<sil>``, ``[NOISE]``, ``++UH++``, ``+NSN+``) are removed and
alternate-pronunciation marks (``read(2)``) stripped, see :func:`clean_words`.
Creating a decoder takes ~0.3 s and ~90 MB, so each processor creates its decoders once (the
native backend two under the endpoint re-decode: the final pass's and the live pass's) and
reuses them across ``init()`` calls; ``init()`` resets the utterance and the feature statistics
(cepstral mean, noise estimate: ``reinit_feat()``, ~0.1 ms), not the model, so the same
audio always gives the same answers.
"""

from __future__ import annotations

import collections
import difflib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import pocketsphinx
from pydantic import Field, field_validator, model_validator

from asr_lab.core.audio import to_int16
from asr_lab.core.config import ASRConfig, ConfigError, parse_config
from asr_lab.policies.config import PolicyConfig
from asr_lab.core.protocols import SAMPLE_RATE

__all__ = [
    "FRAMES_PER_SEC",
    "LIVE_PIECE",
    "PocketSphinxASR",
    "PocketSphinxConfig",
    "PocketSphinxLAConfig",
    "PocketSphinxLALoader",
    "PocketSphinxLoader",
    "PocketSphinxModelConfig",
    "PocketSphinxProcessor",
    "PocketSphinxResult",
    "bundled_model",
    "clean_words",
    "create_decoder",
    "is_filler",
    "resolve_model",
]

Word = Tuple[float, float, str]

FRAMES_PER_SEC = 100
"""pocketsphinx's feature frame rate: ``seg()`` frame numbers are hundredths of a second."""
VAD_FRAME = 480
"""Samples per voice-activity decision (30 ms at 16 kHz, pocketsphinx's ``Vad`` default)."""
LIVE_PIECE = SAMPLE_RATE
"""Most samples given to one incremental ``process_raw`` call (1 s).

pocketsphinx 5.1.1 can crash (SIGSEGV in ``cmn_live``) on one incremental call of more
than ~2.5 s of audio once an earlier full-utterance decoding on the same decoder has grown
its feature ring buffer past the 256 frames of its live feature window; this happens to
the endpoint re-decode followed by a stream that has fallen behind and delivers seconds of
audio at once. Feeding at most 1 s per call never crashed. It also makes the live pass
independent of how audio was batched: on a 68 s recording, 0.25 s and 1 s pieces gave the
same words and times, while one 68 s call (its running cepstral mean updated less often)
did not."""
BUNDLED_MODEL_NAMES = ("en-us",)
"""Values of ``model`` that mean the model bundled in the pocketsphinx wheel (as does ``None``)."""

_PRONUNCIATION_MARK = re.compile(r"\(\d+\)$")
# decoder settings that have their own config field, so decoder_options may not set them
_OWN_SETTINGS = {
    "hmm": "hmm", "lm": "lm", "dict": "dictionary", "loglevel": "loglevel", "topn": "topn", "samprate": "(always 16000)",
    "maxhmmpf": "maxhmmpf", "fwdflat": "fwdflat",
}
_OTHER_SEARCHES = ("jsgf", "fsg", "keyphrase", "kws", "allphone", "lmctl")


# --------------------------------------------------------------------------- words


def is_filler(word: str) -> bool:
    """Whether ``word`` is a non-word token of pocketsphinx: ``<s>``, ``</s>``, ``<sil>``, ``[NOISE]``, ``++UH++``, ``+NSN+``."""
    w = _PRONUNCIATION_MARK.sub("", word)
    return (
        not w
        or (w.startswith("<") and w.endswith(">"))
        or (w.startswith("[") and w.endswith("]"))
        or (len(w) > 1 and w.startswith("+") and w.endswith("+"))
    )


def clean_words(segments: Iterable[Any], offset: float = 0.0, limit: Optional[float] = None) -> list[Word]:
    """Words of a pocketsphinx segmentation as ``(start, end, word)`` seconds, fillers removed.

    ``segments`` are ``pocketsphinx.Segment`` objects from ``decoder.seg()`` (or anything
    with ``word``, ``start_frame`` and ``end_frame``). Frames are 1/100 s and the end frame
    is inclusive, so a word spans ``[start_frame / 100, (end_frame + 1) / 100)``; both are
    shifted by ``offset`` and ends are clipped to ``limit`` (the end of the audio decoded).
    ``read(2)`` becomes ``read``.
    """
    words: list[Word] = []
    for seg in segments or ():  # a decoder that has seen no frames yet answers None
        if is_filler(seg.word):
            continue
        # rounded to a microsecond so that offset + frames / 100 prints as 5.65, not 5.6499999999999995
        start = round(offset + seg.start_frame / FRAMES_PER_SEC, 6)
        end = round(offset + (seg.end_frame + 1) / FRAMES_PER_SEC, 6)
        if limit is not None:
            end = min(end, limit)
            start = min(start, end)
        words.append((start, end, _PRONUNCIATION_MARK.sub("", seg.word)))
    return words


# --------------------------------------------------------------------------- configuration


class PocketSphinxModelConfig(ASRConfig):
    """Which pocketsphinx model to load and how to set up its decoder (shared by both backends).

    With nothing set, the US English model bundled in the ``pocketsphinx`` wheel is used
    and ``lan`` must be ``"en"``. A model of your own is a folder in ``model_dir`` (or a
    path in ``model``) holding the acoustic model folder (with ``mdef``), one language
    model (``*.lm.bin``, ``*.lm`` or ``*.arpa``) and one dictionary (``*.dict``); ``hmm``,
    ``lm`` and ``dictionary`` name or override the parts one by one.
    """

    backend: str = Field(default="pocketsphinx", description="Registered backend name.")
    model: Optional[str] = Field(
        default=None,
        description="None or 'en-us' = the US English model bundled with pocketsphinx; or a local model folder.",
    )
    hmm: Optional[str] = Field(default=None, description="Acoustic model folder (pocketsphinx -hmm); overrides the model's.")
    lm: Optional[str] = Field(default=None, description="N-gram language model file (pocketsphinx -lm); overrides the model's.")
    dictionary: Optional[str] = Field(
        default=None, description="Pronunciation dictionary file (pocketsphinx -dict); overrides the model's."
    )
    loglevel: Literal["DEBUG", "INFO", "WARN", "ERROR", "FATAL"] = Field(
        default="FATAL", description="pocketsphinx's own log output on stderr; FATAL keeps it quiet."
    )
    topn: int = Field(
        default=4, ge=1, le=64,
        description="Gaussians scored exactly per senone and frame (pocketsphinx's default, 4). With the endpoint "
        "re-decode, 16 gave the same held-out WER (0.115) on flite speech for ~55 % more compute.",
    )
    maxhmmpf: int = Field(
        default=4000, ge=100, le=1_000_000,
        description="Most HMMs the search keeps active per frame (pocketsphinx's own default is 30000). On held-out "
        "flite speech (32 utterances, 4 voices) 4000 gave the same WER as 30000 (0.107); with fwdflat off a one-piece "
        "decoding took ~0.11 x real time against ~0.17 at pocketsphinx's defaults. 3000 gave 0.127, 2000 0.133-0.140.",
    )
    fwdflat: bool = Field(
        default=False,
        description="Run pocketsphinx's second, flat-lexicon search pass (its own default: on). With the HMM limit "
        "above it did not change the held-out WER and cost ~25 % more compute.",
    )
    decoder_options: dict[str, Union[bool, int, float, str]] = Field(
        default_factory=dict,
        description="Further pocketsphinx decoder settings by name, e.g. {'beam': 1e-60, 'lw': 7.0}; "
        "see pocketsphinx.Config().describe().",
    )

    @field_validator("hmm", "lm", "dictionary", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("decoder_options")
    @classmethod
    def _known_decoder_options(cls, value: dict) -> dict:
        known = {arg.name for arg in pocketsphinx.Config().describe()}
        for name in value:
            if name in _OWN_SETTINGS:
                raise ValueError(
                    f"decoder_options[{name!r}] is set through its own field: use {_OWN_SETTINGS[name]!r} instead"
                )
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                raise ValueError(
                    f"decoder_options has an unknown pocketsphinx setting {name!r}"
                    + (f" (did you mean {close[0]!r}?)" if close else "")
                    + "; pocketsphinx.Config().describe() lists the allowed names"
                )
        return value

    @model_validator(mode="after")
    def _language_and_task(self) -> "PocketSphinxModelConfig":
        if self.task != "transcribe":
            raise ValueError(
                f"task={self.task!r}: pocketsphinx only transcribes; use task='transcribe' "
                f"(or a Whisper backend to translate)"
            )
        if self.lan == "auto":
            raise ValueError("lan='auto': pocketsphinx cannot detect the language; give the model's language, e.g. lan='en'")
        if not self.uses_own_model() and self.lan.split("-")[0].split("_")[0] != "en":
            raise ValueError(
                f"lan={self.lan!r}: the model bundled with pocketsphinx is US English, so lan must be 'en'. "
                f"For another language give a pocketsphinx model for it in model_dir "
                f"(a folder with the acoustic model, a .lm.bin and a .dict), or set hmm, lm and dictionary"
            )
        return self

    def uses_own_model(self) -> bool:
        """Whether any part of the model comes from the user rather than the pocketsphinx wheel."""
        own_model = self.model is not None and self.model not in BUNDLED_MODEL_NAMES
        return bool(own_model or self.model_dir or self.hmm or self.lm or self.dictionary)


class PocketSphinxConfig(PocketSphinxModelConfig):
    """Configuration of the native ``pocketsphinx`` backend: the model, plus endpointing.

    ``endpoint_silence_sec`` is the main latency/accuracy knob: an utterance (and so a
    committed segment) ends after that much non-speech. Shorter commits sooner but may cut
    sentences at their internal pauses, where the language model loses context.
    """

    min_chunk_size: float = Field(
        default=0.25, gt=0, le=30,
        description="Seconds of new audio a driver waits for between process_iter() calls; native streaming "
        "decodes each chunk at once, so small chunks only cost per-call overhead.",
    )
    endpoint_silence_sec: float = Field(
        default=0.5, ge=0.09, le=10.0, description="Seconds of non-speech that end an utterance and commit its text."
    )
    onset_sec: float = Field(
        default=0.06, ge=0.03, le=1.0, description="Seconds of continuous speech that start an utterance."
    )
    preroll_sec: float = Field(
        default=0.3, ge=0.0, le=2.0, description="Seconds of audio before the detected onset included in the utterance."
    )
    max_utterance_sec: float = Field(
        default=20.0, ge=1.0, le=600.0,
        description="After this long, an utterance ends at its next non-speech frame (and at twice this long in any case).",
    )
    vad_mode: int = Field(
        default=0, ge=0, le=3, description="Aggressiveness of pocketsphinx's voice-activity detector: 0 (loose) to 3 (strict)."
    )
    final_pass: Literal["redecode", "live"] = Field(
        default="redecode",
        description="How an utterance's committed text is made: 'redecode' decodes its audio again in one piece "
        "(more accurate, ~0.1 x its length of extra compute at the endpoint); 'live' keeps the live pass's result.",
    )
    live_maxhmmpf: Optional[int] = Field(
        default=1500, ge=100, le=1_000_000,
        description="With final_pass='redecode', the live pass (it only makes partials) runs on a second, lighter "
        "decoder: this HMM limit, no fwdflat, no bestpath. Its partials are rougher (their own WER ~0.3 on flite "
        "speech, against ~0.2 on the final pass's settings); the committed text does not change. None runs the "
        "live pass on the final pass's decoder instead: better partials and ~90 MB less, ~0.03 x real time more.",
    )

    @model_validator(mode="after")
    def _no_vac(self) -> "PocketSphinxConfig":
        if self.vac:
            raise ValueError(
                "vac=True wraps LocalAgreement backends in Silero VAD; the native pocketsphinx backend has its own "
                "voice-activity endpointing (endpoint_silence_sec, vad_mode). Use vac=False here, or backend "
                "'pocketsphinx-la' for LocalAgreement with VAC"
            )
        return self


class PocketSphinxLAConfig(PocketSphinxModelConfig, PolicyConfig):
    """Configuration of ``pocketsphinx-la``: the model, LocalAgreement's fields, and the pause length."""

    backend: str = Field(default="pocketsphinx-la", description="Registered backend name.")
    reference_mode: bool = Field(
        default=True,
        description="LocalAgreement and VAC as whisper_streaming runs them (their fixes were measured on Whisper, "
        "not on pocketsphinx); False applies asr_lab's defaults, and a fix named explicitly applies either way.",
    )
    pause_sec: float = Field(
        default=0.25, ge=0.0, le=5.0,
        description="A gap of at least this many seconds between words ends a segment (where the buffer may be trimmed).",
    )
    tail_guard_sec: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="Words ending within this many seconds of the buffer's end are not reported: they may still be "
        "being spoken. 0 reports every word.",
    )


# --------------------------------------------------------------------------- model and decoder


def bundled_model() -> dict[str, str]:
    """Paths of the US English model shipped in the pocketsphinx wheel: ``{"hmm", "lm", "dict"}``."""
    root = Path(pocketsphinx.get_model_path()) / "en-us"
    return {"hmm": str(root / "en-us"), "lm": str(root / "en-us.lm.bin"), "dict": str(root / "cmudict-en-us.dict")}


def resolve_model(cfg: PocketSphinxModelConfig) -> dict[str, str]:
    """The acoustic model folder, language model and dictionary ``cfg`` asks for, checked to exist.

    Returns ``{"hmm": folder, "lm": file, "dict": file}``. Raises :class:`ConfigError`
    naming the field and the path when something is missing or ambiguous.
    """
    folder, field_name = None, None
    if cfg.model_dir:
        folder, field_name = cfg.model_dir, "model_dir"
    elif cfg.model is not None and cfg.model not in BUNDLED_MODEL_NAMES:
        folder, field_name = cfg.model, "model"
    paths = _find_in_folder(folder, field_name, cfg) if folder else bundled_model()
    if cfg.hmm:
        paths["hmm"] = cfg.hmm
    if cfg.lm:
        paths["lm"] = cfg.lm
    if cfg.dictionary:
        paths["dict"] = cfg.dictionary

    hmm = Path(paths["hmm"]).expanduser()
    if not hmm.is_dir():
        raise ConfigError(f"hmm={paths['hmm']!r} is not a folder; give pocketsphinx's acoustic model folder (it holds mdef, means, ...)")
    if not (hmm / "mdef").is_file():
        raise ConfigError(f"hmm={paths['hmm']!r} has no mdef file, so it is not a pocketsphinx acoustic model folder")
    for key, name in (("lm", "lm"), ("dict", "dictionary")):
        if not Path(paths[key]).expanduser().is_file():
            raise ConfigError(f"{name}={paths[key]!r} does not exist; give an existing file or leave {name} unset")
    return {key: str(Path(value).expanduser()) for key, value in paths.items()}


def _find_in_folder(folder: str, field_name: str, cfg: PocketSphinxModelConfig) -> dict[str, str]:
    root = Path(folder).expanduser()
    if not root.is_dir():
        allowed = " or ".join(repr(n) for n in BUNDLED_MODEL_NAMES)
        raise ConfigError(
            f"{field_name}={folder!r} is not a folder. Give a pocketsphinx model folder (acoustic model folder, "
            f"*.lm.bin, *.dict), or leave it unset (None or {allowed}) for the bundled US English model"
        )
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    hmms = [p for p in candidates if (p / "mdef").is_file()]
    lms = sorted(p for p in root.iterdir() if p.is_file() and p.name.endswith((".lm.bin", ".lm", ".arpa", ".lm.dmp", ".lm.DMP"))
                 and "phone" not in p.name)
    dicts = sorted(p for p in root.iterdir() if p.is_file() and p.suffix == ".dict")
    found: dict[str, str] = {}
    missing: list[str] = []
    for key, name, items in (("hmm", "hmm", hmms), ("lm", "lm", lms), ("dict", "dictionary", dicts)):
        if getattr(cfg, name):
            continue  # given explicitly: the folder's candidates do not matter
        if len(items) > 1:
            raise ConfigError(
                f"{field_name}={folder!r} holds several candidates for {name}: {', '.join(p.name for p in items)}; "
                f"choose one with the {name!r} field"
            )
        if items:
            found[key] = str(items[0])
        else:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"{field_name}={folder!r} lacks {', '.join(missing)} (looked for a sub-folder with mdef, one *.lm.bin/*.lm/*.arpa "
            f"and one *.dict); set {', '.join(repr(m) for m in missing)} explicitly"
        )
    return found


_CREATE_LOCK = threading.Lock()
"""Decoders are built one at a time: pocketsphinx does not document building as thread-safe,
and it is cheap (~0.3 s) next to decoding."""


def create_decoder(cfg: PocketSphinxModelConfig, *, live: bool = False) -> Any:
    """A ``pocketsphinx.Decoder`` for 16 kHz audio set up as ``cfg`` says (~0.3 s, ~90 MB).

    ``live=True`` builds the native backend's light live-pass decoder: ``cfg.live_maxhmmpf``
    HMMs per frame, no fwdflat and no bestpath pass (its results are only partials).
    """
    with _CREATE_LOCK:
        return _create_decoder(cfg, live)


def _create_decoder(cfg: PocketSphinxModelConfig, live: bool = False) -> Any:
    paths = resolve_model(cfg)
    options: dict[str, Any] = {"maxhmmpf": cfg.maxhmmpf, "fwdflat": cfg.fwdflat, **cfg.decoder_options}
    if live:
        options.update(maxhmmpf=getattr(cfg, "live_maxhmmpf", None) or cfg.maxhmmpf, fwdflat=False, bestpath=False)
    if not any(key in options for key in _OTHER_SEARCHES):
        options["lm"] = paths["lm"]
    try:
        return pocketsphinx.Decoder(
            hmm=paths["hmm"], dict=paths["dict"], samprate=SAMPLE_RATE, loglevel=cfg.loglevel, topn=cfg.topn, **options
        )
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"pocketsphinx could not create a decoder from hmm={paths['hmm']!r}, lm={paths['lm']!r}, "
            f"dictionary={paths['dict']!r}, decoder_options={cfg.decoder_options!r}: {exc}. "
            f"Check that these files belong to one model; loglevel='INFO' shows pocketsphinx's own explanation"
        ) from None


# --------------------------------------------------------------------------- native streaming


@dataclass
class _Utterance:
    start: int  # first sample, counted from the start of the stream
    chunks: list = field(default_factory=list)  # int16 arrays: the utterance's audio, for the final pass
    length: int = 0  # samples
    silent_frames: int = 0  # consecutive non-speech VAD frames at the end

    def add(self, samples: np.ndarray) -> None:
        self.chunks.append(samples)
        self.length += len(samples)


class PocketSphinxProcessor:
    """PocketSphinx's native streaming as an :class:`~asr_lab.ASRProcessor` with ``partial()``.

    Audio given to ``insert_audio_chunk`` is worked on in ``process_iter`` (so the work
    counts as compute time there). Each utterance, delimited by voice activity as the
    module docstring describes, becomes one committed segment; if one call ends several,
    they are returned together as one. Times are absolute stream seconds.

    ``config`` is a :class:`PocketSphinxConfig` (or a dict for one). ``decoder`` (the final
    pass's) and ``live_decoder`` reuse already created ``pocketsphinx.Decoder`` objects
    (which nothing else may use meanwhile) instead of creating them from the config.
    """

    sep = " "

    def __init__(
        self, config: Union[PocketSphinxConfig, dict, None] = None, *, decoder: Any = None, live_decoder: Any = None
    ) -> None:
        self.config = parse_config(config if config is not None else {}, PocketSphinxConfig)
        cfg = self.config
        started = time.perf_counter()
        self.decoder = decoder if decoder is not None else create_decoder(cfg)
        """The decoder whose result is committed (the re-decode, or the live pass with final_pass='live')."""
        if live_decoder is not None:
            self.live_decoder = live_decoder
        elif cfg.final_pass == "redecode" and cfg.live_maxhmmpf is not None:
            self.live_decoder = create_decoder(cfg, live=True)
        else:
            self.live_decoder = self.decoder
        """The decoder audio goes to as it arrives (partials); a lighter one with the endpoint re-decode."""
        self.decoder_seconds = time.perf_counter() - started
        """How long creating the decoders took (0 when they were given)."""
        self._in_decoder_utt = False
        self._onset_frames = max(1, round(cfg.onset_sec * SAMPLE_RATE / VAD_FRAME))
        self._endpoint_frames = max(1, round(cfg.endpoint_silence_sec * SAMPLE_RATE / VAD_FRAME))
        self._preroll_frames = round(cfg.preroll_sec * SAMPLE_RATE / VAD_FRAME)
        self._max_samples = int(cfg.max_utterance_sec * SAMPLE_RATE)
        self.min_chunk_sec = cfg.min_chunk_size
        """How much new audio a driver should wait for between calls (the config's ``min_chunk_size``)."""
        self.init()

    # -- the ASRProcessor contract -------------------------------------------------
    def init(self, offset: float = 0.0) -> None:
        """Start a new stream at ``offset`` s: drop any open utterance, reset the feature statistics; keep the model."""
        if self._in_decoder_utt:
            self.live_decoder.end_utt()
            self._in_decoder_utt = False
        self.decoder.reinit_feat()  # fresh cepstral mean and noise estimate (~0.1 ms): same audio, same answers
        if self.live_decoder is not self.decoder:
            self.live_decoder.reinit_feat()
        self._vad = pocketsphinx.Vad(self.config.vad_mode, SAMPLE_RATE, VAD_FRAME / SAMPLE_RATE)
        self._offset = float(offset)
        self._pending = np.zeros(0, dtype=np.int16)  # inserted, not yet cut into VAD frames
        self._position = 0  # samples cut into frames so far
        # the frames before an utterance starts: pre-roll, then the onset's speech frames
        self._preroll: collections.deque = collections.deque(maxlen=self._preroll_frames + self._onset_frames)
        self._speech_run = 0
        self._utt: Optional[_Utterance] = None
        self._live: list = []  # frames of the current utterance not yet given to the decoder
        self._ready: list[list[Word]] = []  # words of ended utterances, not yet returned
        self._last_end = self._offset
        self._last_words: list[Word] = []
        self._decoded = 0  # samples given to the live decoder since the last step_info()
        self._redecoded = 0  # samples re-decoded by the endpoint pass since the last step_info()

    def insert_audio_chunk(self, audio: np.ndarray) -> None:
        """Queue ``audio`` (float32 in [-1, 1], 16 kHz, mono; int16 PCM also accepted); decoded in ``process_iter()``."""
        samples = np.asarray(audio)
        if samples.ndim != 1 or not (samples.dtype.kind == "f" or samples.dtype == np.int16):
            raise ValueError(
                f"audio chunk of shape {samples.shape} and dtype {samples.dtype}: give a 1-D float32 array "
                f"at 16 kHz (asr_lab.load_audio converts files, other dtypes and multichannel arrays)"
            )
        if samples.size:
            pcm = samples if samples.dtype == np.int16 else to_int16(samples)
            self._pending = np.concatenate([self._pending, pcm])

    def process_iter(self) -> Optional[Tuple[float, float, str]]:
        """Decode the queued audio; return the text of utterances that ended, or ``None``."""
        self._advance(final=False)
        return self._take_ready()

    def finish(self) -> Optional[Tuple[float, float, str]]:
        """End of stream: decode what is left, end the open utterance, return what was not yet returned."""
        self._advance(final=True)
        if self._utt is not None:
            self._end_utterance()
        return self._take_ready()

    def partial(self) -> Optional[Tuple[float, float, str]]:
        """The live hypothesis of the open utterance as ``(start, end, text)``, or ``None``.

        It changes as more audio arrives and may differ from what the utterance finally
        commits (the final pass re-decodes it).
        """
        if self._utt is None or not self._in_decoder_utt:
            return None
        words = self._words(self.live_decoder.seg(), self._utt)
        return _join(words)

    def last_words(self) -> list[Word]:
        """Word timings of the segment the last ``process_iter()``/``finish()`` returned."""
        return list(self._last_words)

    def step_info(self) -> Optional[dict]:
        """Audio decoded live and re-decoded at endpoints since the previous step (seconds), for the
        trace and for cost profiles (:mod:`asr_lab.replay.profile`); ``None`` when nothing was decoded."""
        decoded, redecoded = self._decoded, self._redecoded
        self._decoded = self._redecoded = 0
        if not decoded and not redecoded:
            return None
        return {"decoded_sec": decoded / SAMPLE_RATE, "redecoded_sec": redecoded / SAMPLE_RATE}

    # -- utterances ----------------------------------------------------------------
    def _advance(self, final: bool) -> None:
        n_frames = len(self._pending) // VAD_FRAME
        for k in range(n_frames):
            frame = self._pending[k * VAD_FRAME : (k + 1) * VAD_FRAME]
            speech = self._vad.is_speech(frame.tobytes())
            self._position += VAD_FRAME
            utt = self._utt
            if utt is None:
                self._preroll.append(frame)
                self._speech_run = self._speech_run + 1 if speech else 0
                if self._speech_run >= self._onset_frames:
                    self._start_utterance()
                continue
            utt.add(frame)
            self._live.append(frame)
            utt.silent_frames = 0 if speech else utt.silent_frames + 1
            if (
                utt.silent_frames >= self._endpoint_frames
                or (utt.length >= self._max_samples and not speech)
                or utt.length >= 2 * self._max_samples
            ):
                self._end_utterance()
        self._pending = self._pending[n_frames * VAD_FRAME :]
        if final and len(self._pending):
            if self._utt is not None:
                self._utt.add(self._pending)
                self._live.append(self._pending)
            self._position += len(self._pending)
            self._pending = self._pending[:0]
        self._feed_live()

    def _start_utterance(self) -> None:
        frames = list(self._preroll)
        start = self._position - VAD_FRAME * len(frames)
        self._utt = _Utterance(start)
        for frame in frames:
            self._utt.add(frame)
        self._live = list(frames)
        self._preroll.clear()
        self._speech_run = 0
        self.live_decoder.start_utt()
        self._in_decoder_utt = True

    def _feed_live(self) -> None:
        if self._live and self._in_decoder_utt:
            pcm = np.concatenate(self._live)
            self._decoded += len(pcm)
            # in pieces: see LIVE_PIECE for the crash one large call can cause
            for i in range(0, len(pcm), LIVE_PIECE):
                self.live_decoder.process_raw(pcm[i : i + LIVE_PIECE].tobytes(), full_utt=False)
        self._live = []

    def _end_utterance(self) -> None:
        utt = self._utt
        self._feed_live()
        self.live_decoder.end_utt()
        self._in_decoder_utt = False
        if self.config.final_pass == "redecode":
            # from fresh feature statistics, as a one-off decoding of this audio would be; a
            # final pass that inherited the live pass's running cepstral mean did measurably worse
            self.decoder.reinit_feat()
            self.decoder.start_utt()
            pcm = np.concatenate(utt.chunks)
            self._redecoded += len(pcm)
            self.decoder.process_raw(pcm.tobytes(), full_utt=True)
            self.decoder.end_utt()
        words = self._words(self.decoder.seg(), utt)
        if words:
            self._ready.append(words)
        self._utt = None

    def _words(self, segments: Iterable[Any], utt: _Utterance) -> list[Word]:
        start = self._offset + utt.start / SAMPLE_RATE
        return clean_words(segments, offset=start, limit=start + utt.length / SAMPLE_RATE)

    def _take_ready(self) -> Optional[Tuple[float, float, str]]:
        words = [w for utterance in self._ready for w in utterance]
        self._ready = []
        if not words:
            return None
        self._last_words = words
        start = max(words[0][0], self._last_end)
        end = max(words[-1][1], start)
        self._last_end = end
        return (start, end, self.sep.join(w[2] for w in words))


# --------------------------------------------------------------------------- whole-buffer ASRBase


@dataclass(frozen=True)
class PocketSphinxResult:
    """What :meth:`PocketSphinxASR.transcribe` returns: timed words of the buffer and its length."""

    words: list[Word]
    duration: float

    @property
    def text(self) -> str:
        return " ".join(w[2] for w in self.words)


class PocketSphinxASR:
    """PocketSphinx as an :class:`~asr_lab.ASRBase`: each call decodes the whole buffer in one piece.

    ``init_prompt`` is accepted and ignored: pocketsphinx's n-gram search cannot be
    conditioned on earlier text. ``segments_end_ts`` ends a segment wherever two words are
    at least ``pause_sec`` apart (and at the last word).

    ``ts_words`` leaves out the words that end within ``tail_guard_sec`` of the buffer's
    end. Such a word is usually cut off mid-way, and pocketsphinx, being deterministic,
    often guesses the same wrong word on two consecutive calls, which LocalAgreement then
    commits. On flite speech this guard cut the WER of ``pocketsphinx-la`` from 0.22 to
    0.06 with 100 ms steps and from 0.12 to 0.08 with 250 ms steps. Its cost: a stream
    that stops in the middle of its last word (no trailing silence at all) loses that word.
    """

    sep = " "

    def __init__(self, config: Union[PocketSphinxLAConfig, dict, None] = None, *, decoder: Any = None) -> None:
        self.config = parse_config(config if config is not None else {}, PocketSphinxLAConfig)
        started = time.perf_counter()
        self.decoder = decoder if decoder is not None else create_decoder(self.config)
        self.decoder_seconds = time.perf_counter() - started
        self.pause_sec = self.config.pause_sec
        self.tail_guard_sec = self.config.tail_guard_sec
        self._calls: list[dict] = []  # since the last step_info()

    def transcribe(self, audio: np.ndarray, init_prompt: str = "") -> PocketSphinxResult:
        """Decode ``audio`` (float32, 16 kHz) from scratch; times are relative to its start."""
        pcm = to_int16(np.asarray(audio).reshape(-1))
        duration = len(pcm) / SAMPLE_RATE
        self._calls.append({"audio_sec": round(duration, 6)})
        if len(pcm) < VAD_FRAME or not pcm.any():
            # too short for a few feature frames, or digital silence, which the acoustic model
            # cannot normalise (it "hears" a word such as "dog" in pure zeros)
            return PocketSphinxResult([], duration)
        self.decoder.reinit_feat()  # independent of earlier calls: the same buffer always gives the same words
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), full_utt=True)
        self.decoder.end_utt()
        return PocketSphinxResult(clean_words(self.decoder.seg(), limit=duration), duration)

    def step_info(self) -> Optional[dict]:
        """The calls since the previous step (``{"calls": [{"audio_sec": ...}, ...]}``), or ``None``."""
        calls, self._calls = self._calls, []
        return {"calls": calls} if calls else None

    def ts_words(self, result: PocketSphinxResult) -> list[Word]:
        """The words of ``result`` (seconds from the buffer's start), without those still being spoken."""
        limit = result.duration - self.tail_guard_sec
        words = list(result.words)
        while words and words[-1][1] > limit:
            words.pop()
        return words

    def segments_end_ts(self, result: PocketSphinxResult) -> list[float]:
        words = self.ts_words(result)
        ends = [a[1] for a, b in zip(words, words[1:]) if b[0] - a[1] >= self.pause_sec]
        if words:
            ends.append(words[-1][1])
        return ends


# --------------------------------------------------------------------------- loaders


class PocketSphinxLoader:
    """Native pocketsphinx streaming: VAD endpointing, live partials, one segment per utterance."""

    config_class = PocketSphinxConfig
    description = "CMU PocketSphinx, native streaming with partials and endpointing (bundled en-us model)"

    def check(self, config: Union[PocketSphinxConfig, dict]) -> None:
        """Before any run: the model files exist."""
        resolve_model(parse_config(config, PocketSphinxConfig))

    def load(self, config: Union[PocketSphinxConfig, dict]) -> tuple[PocketSphinxProcessor, dict]:
        cfg = parse_config(config, PocketSphinxConfig)
        processor = PocketSphinxProcessor(cfg)
        return processor, _metadata(cfg, processor.decoder, processor.decoder_seconds, streaming="native")


class PocketSphinxLALoader:
    """PocketSphinx decoding the whole buffer under LocalAgreement-2 (or VAC when ``vac=True``)."""

    config_class = PocketSphinxLAConfig
    description = "CMU PocketSphinx re-decoding the buffer under the LocalAgreement-2 policy"

    def check(self, config: Union[PocketSphinxLAConfig, dict]) -> None:
        """Before any run: the policy runs on pocketsphinx, and the model files exist."""
        from asr_lab.policies.processor import check_policy

        cfg = parse_config(config, PocketSphinxLAConfig)
        check_policy(cfg, can_step=False)
        resolve_model(cfg)

    def load(self, config: Union[PocketSphinxLAConfig, dict]) -> tuple[Any, dict]:
        from asr_lab.policies.processor import policy_processor

        cfg = parse_config(config, PocketSphinxLAConfig)
        asr = PocketSphinxASR(cfg)
        meta = _metadata(cfg, asr.decoder, asr.decoder_seconds, streaming=cfg.policy)
        meta["vac"] = cfg.vac
        return policy_processor(asr, cfg), meta


def _metadata(cfg: PocketSphinxModelConfig, decoder: Any, seconds: float, streaming: str) -> dict:
    return {
        "separator": " ",
        "model": cfg.model_dir or cfg.model or "en-us (bundled)",
        "hmm": decoder.config["hmm"],
        "lm": decoder.config["lm"],
        "dictionary": decoder.config["dict"],
        "language": cfg.lan,
        "streaming": streaming,
        "decoder_seconds": round(seconds, 3),
    }


def _join(words: Sequence[Word]) -> Optional[Tuple[float, float, str]]:
    if not words:
        return None
    return (words[0][0], words[-1][1], " ".join(w[2] for w in words))
