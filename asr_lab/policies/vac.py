"""Voice-activity-controlled streaming (VAC): run the recogniser only on speech, commit at pauses.

The Whisper-Streaming reference wraps its LocalAgreement processor in a voice-activity
controller. Audio goes through Silero VAD in small steps (``vac_chunk_sec``, 0.04 s);

* while there is no speech, nothing is transcribed (the last second is kept, so an
  utterance can start a little before the VAD noticed it);
* when speech starts, the wrapped processor is re-initialised at the utterance's start
  time and receives the utterance's audio; it is asked to transcribe every
  ``online_chunk_sec`` of new speech;
* when about 500 ms of silence ends the utterance, the wrapped processor is finished, so
  its pending words are committed at once instead of waiting for another agreement.

Silero VAD's ONNX model ships inside the faster-whisper wheel and runs with onnxruntime,
so this works offline. :class:`SileroVAD` keeps the model's recurrent state across calls
(one 512-sample window at a time), :class:`VoiceActivityDetector` turns probabilities
into utterance start/end events, and :class:`VACOnlineASRProcessor` is the
:class:`~asr_lab.ASRProcessor`. :func:`streaming_processor` builds LocalAgreement, with
or without VAC, from any backend's config.

Backlog. The reference's driver inserts all audio that arrived since its last call and
calls ``process_iter()`` once; the VAD runs over all of it and the recogniser runs at most
once, on everything that is there, so an engine that fell behind catches up in one step
(its cost grows with the buffer, not with the backlog). This processor does the same
whatever the chunk size: the queued audio is stepped through the VAD in ``vac_chunk_sec``
pieces (so utterance boundaries do not depend on the chunking), each utterance that ended
in it is finished, and the utterance still open is recognised once, at the end. Fed
exactly ``vac_chunk_sec`` at a time, it makes the reference's calls at the reference's
points. Differences that remain: the VAD runs in ``process_iter()``, so its time counts as
compute; several utterances in one backlog are finished one by one (the reference merges
them into one); ``finish()`` of a stream that ends in silence returns nothing, where the
reference would repeat the last utterance's pending words.

Context. The reference starts every utterance alone, so Whisper hears a sentence without
the one before it, which plain LocalAgreement keeps in its buffer (measured with tiny.en on
LibriVox: "ill-disposed" heard as "old-sposed"). ``context_sec`` > 0 (asr_lab's default 10)
splices up to that much of the previous utterance's audio in front of the next one when the
pause between them is at most ``CONTEXT_GAP_SEC``; the wrapped processor is told that
everything before the splice is settled (``settle_until``), so those words are heard but
never committed again, and no text prompt is given (a prompt of the earlier text made
tiny.en hallucinate). The pause itself is left out: given a buffer holding a pause, Whisper
often ends its answer after the first sentence. If that still happens (a recognition of
the utterance after a second of it gives nothing), the utterance is heard alone from then
on (``context_fallbacks`` counts it).

``transcribe_tail`` (off in the reference) recognises an utterance's last audio once more
before finishing it, so its last words are heard: the reference commits the last
hypothesis, which misses the speech after it (measured with tiny.en: 14 of 220 words lost).
:meth:`VACOnlineASRProcessor.warmup` runs the recogniser (the replay's generic warm-up
would not reach it: a second of audio is below ``online_chunk_sec``).
"""

from __future__ import annotations

import copy
import functools
import os
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from asr_lab.core.audio import as_chunk
from asr_lab.core.protocols import SAMPLE_RATE

__all__ = ["SileroVAD", "VACOnlineASRProcessor", "VoiceActivityDetector", "streaming_processor", "vac_processor"]

Segment = Tuple[float, float, str]

WINDOW = 512
"""Samples per Silero VAD step at 16 kHz (32 ms)."""
CONTEXT = 64
"""Samples of the previous window the model sees before each window."""
STATE_SHAPE = (1, 1, 128)
IDLE_HISTORY_SEC = 1.0
"""Non-speech audio kept so that a detected utterance can begin before the detection."""
MAX_CONTEXT_SEC = 25.0
"""The most of the previous utterance spliced before the next (Whisper hears 30 s at once)."""
CONTEXT_GAP_SEC = 3.0
"""A pause longer than this starts the next utterance without context (a new turn)."""
CONTEXT_FALLBACK_SEC = 1.0
"""Speech heard behind a spliced context with nothing recognised in it that makes VAC drop the context."""


def streaming_processor(asr: Any, config: Any) -> Any:
    """The ASRProcessor a backend config asks for around ``asr`` (an ASRBase).

    :class:`~asr_lab.OnlineASRProcessor` with the config's ``buffer_trimming``,
    ``buffer_trimming_sec`` and ``min_chunk_size``; wrapped in
    :class:`VACOnlineASRProcessor` (stepping ``vac_chunk_size``) when ``config.vac``.
    The named fixes and VAC knobs come from a
    :class:`~asr_lab.policies.config.PolicyConfig` (see
    :func:`~asr_lab.policies.config.policy_settings`); a plain
    :class:`~asr_lab.ASRConfig` gets the reference's behaviour.
    """
    from asr_lab.policies.local_agreement import OnlineASRProcessor
    from asr_lab.policies.config import policy_settings

    settings = policy_settings(config)
    online = OnlineASRProcessor(
        asr,
        buffer_trimming=(config.buffer_trimming, config.buffer_trimming_sec),
        min_chunk_sec=config.min_chunk_size,
        ghost_filter=settings["ghost_filter"],
        guarded_finish=settings["guarded_finish"],
        max_buffer_sec=settings["max_buffer_sec"],
    )
    return vac_processor(online, config) if config.vac else online


def vac_processor(online: Any, config: Any) -> "VACOnlineASRProcessor":
    """``online`` (any ASRProcessor) under VAC with the config's VAD knobs, ``transcribe_tail`` and steps."""
    from asr_lab.policies.config import policy_settings

    settings = policy_settings(config)
    vad = VoiceActivityDetector(
        threshold=settings["vac_threshold"],
        min_silence_ms=settings["vac_min_silence_ms"],
        speech_pad_ms=settings["vac_speech_pad_ms"],
    )
    return VACOnlineASRProcessor(
        online,
        online_chunk_sec=config.min_chunk_size,
        vac_chunk_sec=config.vac_chunk_size,
        vad=vad,
        transcribe_tail=settings["vac_transcribe_tail"],
        context_sec=settings["vac_context_sec"],
    )


@functools.lru_cache(maxsize=4)
def _session(path: str):
    """One onnxruntime session per model file; it holds no stream state, so processors share it."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # a 32 ms window is tiny; leave the cores to the recogniser
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=options)


def default_model_path() -> str:
    """The Silero VAD ONNX file bundled with faster-whisper."""
    from faster_whisper.utils import get_assets_path

    return os.path.join(get_assets_path(), "silero_vad_v6.onnx")


class SileroVAD:
    """Silero VAD over a stream: the speech probability of each 512-sample window, in order.

    The model is recurrent: its state and the last 64 samples carry over from one window
    to the next, so windows must be given in stream order; :meth:`reset` starts a new
    stream. ``model_path`` defaults to the copy in faster-whisper.
    """

    def __init__(self, model_path: Optional[str] = None) -> None:
        path = model_path or default_model_path()
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Silero VAD model {path!r} not found; install faster-whisper (pip install 'asr-lab[faster-whisper]') "
                f"or give model_path to a silero_vad ONNX file"
            )
        self.session = _session(path)
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def __call__(self, window: np.ndarray) -> float:
        """Speech probability of the next ``WINDOW`` samples."""
        window = np.asarray(window, dtype=np.float32)
        if window.shape != (WINDOW,):
            raise ValueError(f"SileroVAD takes windows of {WINDOW} samples, got shape {window.shape}")
        batch = np.concatenate([self._context, window])[None, :]
        prob, self._h, self._c = self.session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = window[-CONTEXT:]
        return float(np.ravel(prob)[0])


class VoiceActivityDetector:
    """Utterance start and end events from window-by-window speech probabilities.

    A window with probability >= ``threshold`` starts an utterance (if none is open) at
    that window's start minus ``speech_pad_ms``. Once the probability falls below
    ``threshold - 0.15``, a silence begins; if it lasts ``min_silence_ms`` without speech
    coming back, the utterance ends where the silence began, plus ``speech_pad_ms``.
    Positions are samples since :meth:`reset`. ``model`` maps a 512-sample window to a
    probability (default :class:`SileroVAD`).
    """

    def __init__(
        self,
        model: Optional[Any] = None,
        *,
        threshold: float = 0.5,
        min_silence_ms: float = 500,
        speech_pad_ms: float = 100,
    ) -> None:
        if not 0 < threshold < 1:
            raise ValueError(f"threshold={threshold!r} must be between 0 and 1 (Silero's usual value is 0.5)")
        if min_silence_ms < 0 or speech_pad_ms < 0:
            raise ValueError(
                f"min_silence_ms={min_silence_ms!r} and speech_pad_ms={speech_pad_ms!r} must be >= 0 (e.g. 500 and 100)"
            )
        self.model = model if model is not None else SileroVAD()
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01)
        self.min_silence = int(min_silence_ms * SAMPLE_RATE / 1000)
        self.pad = int(speech_pad_ms * SAMPLE_RATE / 1000)
        self.reset()

    def spawn(self) -> "VoiceActivityDetector":
        """A detector with the same settings and model (the ONNX session is shared) in a fresh stream state."""
        twin = copy.copy(self)
        twin.model = copy.copy(self.model)
        twin.reset()
        return twin

    def reset(self) -> None:
        if hasattr(self.model, "reset"):
            self.model.reset()
        self.in_speech = False
        self.position = 0
        """Samples consumed by whole windows so far."""
        self._silence_from = 0  # 0: no silence under way inside an utterance
        self._rest = np.zeros(0, dtype=np.float32)

    def feed(self, audio: np.ndarray) -> list[tuple[str, int]]:
        """Consume ``audio``; return the ``("start" | "end", sample)`` events it completes, in order.

        Samples that do not fill a whole window wait for the next call.
        """
        data = np.concatenate([self._rest, np.asarray(audio, dtype=np.float32)])
        whole = len(data) - len(data) % WINDOW
        events = []
        for i in range(0, whole, WINDOW):
            self.position += WINDOW
            event = self._step(self.model(data[i : i + WINDOW]))
            if event:
                events.append(event)
        self._rest = data[whole:]
        return events

    def _step(self, prob: float) -> Optional[tuple[str, int]]:
        if prob >= self.threshold:
            self._silence_from = 0
            if not self.in_speech:
                self.in_speech = True
                return ("start", max(0, self.position - WINDOW - self.pad))
        elif prob < self.neg_threshold and self.in_speech:
            if not self._silence_from:
                self._silence_from = self.position
            if self.position - self._silence_from >= self.min_silence:
                end = self._silence_from - WINDOW + self.pad
                self._silence_from = 0
                self.in_speech = False
                return ("end", end)
        return None


class VACOnlineASRProcessor:
    """An :class:`~asr_lab.ASRProcessor` that runs ``online`` only on speech and finishes it at pauses.

    ``online`` is the wrapped processor (usually :class:`~asr_lab.OnlineASRProcessor`; any
    ASRProcessor whose ``init(offset)`` starts it afresh works). ``online_chunk_sec`` is
    how much new speech triggers its ``process_iter()``. ``vac_chunk_sec`` is the VAD
    step, and this processor's ``min_chunk_sec``: calling it that often gives the
    reference's latency (calls between recognitions only run the VAD); larger chunks
    give the same output, later. ``transcribe_tail=True`` runs one more recognition over
    an utterance's last audio before finishing it; the reference does not (it commits
    the last hypothesis), so speech after that hypothesis, such as a lone short word, is
    lost there. ``context_sec`` > 0 lets the recogniser hear that much of the previous
    utterance before each one (see the module docstring; it needs a wrapped processor with
    ``settle_until``, and is 0 otherwise). ``vad`` is a
    :class:`VoiceActivityDetector` (default: Silero, 500 ms silence, 100 ms padding, as in
    the reference; asr_lab's configs pad 300 ms).
    """

    def __init__(
        self,
        online: Any,
        *,
        online_chunk_sec: float = 1.0,
        vac_chunk_sec: float = 0.04,
        vad: Optional[VoiceActivityDetector] = None,
        transcribe_tail: bool = False,
        context_sec: float = 0.0,
    ) -> None:
        for name, value in (("online_chunk_sec", online_chunk_sec), ("vac_chunk_sec", vac_chunk_sec)):
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{name}={value!r} must be a positive number of seconds (e.g. 1.0 and 0.04)")
        missing = [m for m in ("init", "insert_audio_chunk", "process_iter", "finish") if not callable(getattr(online, m, None))]
        if missing:
            raise TypeError(f"{type(online).__name__} is not an ASRProcessor: it lacks {', '.join(missing)}")
        self.online = online
        self.online_chunk_sec = float(online_chunk_sec)
        self.vac_chunk_sec = float(vac_chunk_sec)
        self.min_chunk_sec = self.vac_chunk_sec
        self.vad = vad if vad is not None else VoiceActivityDetector()
        self.transcribe_tail = transcribe_tail
        if not (isinstance(context_sec, (int, float)) and 0 <= context_sec <= MAX_CONTEXT_SEC):
            raise ValueError(
                f"context_sec={context_sec!r} must be between 0 (no context, the reference) and {MAX_CONTEXT_SEC:g} s "
                f"(the utterance must still fit Whisper's 30 s window), e.g. 10"
            )
        self.context_sec = float(context_sec) if callable(getattr(online, "settle_until", None)) else 0.0
        self.context_fallbacks = 0
        """Utterances the recogniser missed behind the spliced context, heard again alone (over this processor's life)."""
        self.init()

    @property
    def asr(self) -> Any:
        """The wrapped processor's recogniser (its ``sep`` joins words), if it has one."""
        return getattr(self.online, "asr", None)

    @property
    def fix_stats(self) -> dict:
        """The wrapped processor's counters of what its fixes did, and ``context_fallbacks``."""
        return {**getattr(self.online, "fix_stats", {}), "context_fallbacks": self.context_fallbacks}

    @property
    def sep(self) -> str:
        return getattr(self.asr, "sep", " ")

    # -- the ASRProcessor contract -------------------------------------------------
    def init(self, offset: float = 0.0) -> None:
        """Start a new stream at ``offset`` s: the VAD and the wrapped processor start afresh."""
        self.offset = float(offset) if offset is not None else 0.0
        self.online.init(self.offset)
        self.vad.reset()
        self.in_speech = False
        self._pending = np.zeros(0, dtype=np.float32)  # inserted, not yet stepped through the VAD
        self._audio = np.zeros(0, dtype=np.float32)  # stepped audio not yet given to ``online`` (idle: last second)
        self._audio_start = 0  # stream sample index of _audio[0]
        self._sent = 0  # stream sample index up to which ``online`` has the current utterance
        self._unprocessed = 0  # samples given to ``online`` since its last process_iter()
        self._last_words: list[tuple[float, float, str]] = []
        self._utt_audio: list[np.ndarray] = []  # audio given to ``online`` for the open utterance (context only)
        self._prev: Optional[tuple[int, np.ndarray]] = None  # end sample and last context_sec of the previous utterance
        self._spliced = False  # the previous utterance is spliced before the open one
        self._utt_start = 0

    def insert_audio_chunk(self, audio: np.ndarray) -> None:
        """Queue ``audio``; the VAD and the recogniser run in :meth:`process_iter`."""
        self._pending = np.append(self._pending, as_chunk(audio))  # int16 scaled, stereo averaged

    def process_iter(self) -> Optional[Segment]:
        """Step the queued audio through the VAD; recognise ongoing speech; finish ended utterances.

        A backlog (more than ``vac_chunk_sec`` queued) is handled as the reference does:
        utterances that ended in it are finished, and the open one is recognised once over
        all its audio (see the module docstring). Returns everything committed in this
        call as one ``(start, end, text)``, or ``None``.
        """
        self._last_words = []
        return self._merge(self._consume())

    def finish(self) -> Optional[Segment]:
        """End of stream: finish the utterance in progress, if any."""
        self._last_words = []
        out = self._consume()
        if self.in_speech:
            out.append(self._end_utterance())
        return self._merge(out)

    def last_words(self) -> list[tuple[float, float, str]]:
        """Word timestamps of what the last ``process_iter()``/``finish()`` returned (if the wrapped processor tells)."""
        return list(self._last_words)

    def spawn(self) -> "VACOnlineASRProcessor":
        """A fresh processor with the same settings sharing the recogniser and the VAD model (for servers)."""
        spawn = getattr(self.online, "spawn", None)
        if not callable(spawn):
            raise TypeError(f"{type(self.online).__name__} has no spawn(); load another processor for each stream")
        return VACOnlineASRProcessor(
            spawn(),
            online_chunk_sec=self.online_chunk_sec,
            vac_chunk_sec=self.vac_chunk_sec,
            vad=self.vad.spawn(),
            transcribe_tail=self.transcribe_tail,
            context_sec=self.context_sec,
        )

    def warmup(self, audio: np.ndarray) -> None:
        """Run the VAD model and the recogniser once on ``audio`` before the clock starts (state untouched)."""
        probe = self.vad.spawn()
        probe.feed(np.asarray(audio, dtype=np.float32)[: WINDOW * 4])
        warm = getattr(self.online, "warmup", None)
        if callable(warm):
            warm(audio)

    def partial(self) -> Optional[Segment]:
        """The wrapped processor's unconfirmed words while an utterance is open, else ``None``."""
        partial = getattr(self.online, "partial", None)
        return partial() if self.in_speech and callable(partial) else None

    # -- internals -----------------------------------------------------------------
    def _consume(self) -> list[Optional[Segment]]:
        """Step the queued audio through the VAD, finish ended utterances, recognise the open one once."""
        out: list[Optional[Segment]] = []
        step = max(1, round(self.vac_chunk_sec * SAMPLE_RATE))
        pending, self._pending = self._pending, np.zeros(0, dtype=np.float32)
        for i in range(0, len(pending), step):
            piece = pending[i : i + step]
            self._audio = np.append(self._audio, piece)
            for kind, sample in self.vad.feed(piece):
                if kind == "start":
                    self._start_utterance(sample)
                else:
                    self._send_until(sample)
                    out.append(self._end_utterance())
            if not self.in_speech:
                self._drop_until(self._audio_start + len(self._audio) - int(IDLE_HISTORY_SEC * SAMPLE_RATE))
        if self.in_speech:  # the open utterance's audio goes to ``online`` in one piece
            self._send_until(self._audio_start + len(self._audio))
        if self.in_speech and self._unprocessed > self.online_chunk_sec * SAMPLE_RATE:
            self._unprocessed = 0
            out.append(self._collect(self._recognise()))
        return out

    def _start_utterance(self, sample: int) -> None:
        sample = max(sample, self._audio_start)
        self.in_speech = True
        self._utt_start = sample
        self._utt_audio = []
        prev = self._prev
        self._spliced = self.context_sec > 0 and prev is not None and sample - prev[0] <= CONTEXT_GAP_SEC * SAMPLE_RATE
        self._init_online(prev[1] if self._spliced else None)
        self._drop_until(sample)
        self._sent = sample
        self._unprocessed = 0

    def _init_online(self, prefix: Optional[np.ndarray]) -> None:
        """Start ``online`` at the open utterance; with ``prefix``, that audio is heard first, already settled."""
        start = self.offset + self._utt_start / SAMPLE_RATE
        if prefix is None:
            self.online.init(start)
            return
        self.online.init(start - len(prefix) / SAMPLE_RATE)
        self.online.insert_audio_chunk(prefix)
        self.online.settle_until(start)

    def _drop_context(self) -> None:
        """The recogniser heard only the previous utterance: hear this one alone from now on."""
        self._spliced = False
        self._init_online(None)
        if self._utt_audio:
            self.online.insert_audio_chunk(np.concatenate(self._utt_audio))
        self.context_fallbacks += 1

    def _recognise(self) -> Optional[Segment]:
        """``online.process_iter()``; if a spliced context made the recogniser miss this utterance, once more without it."""
        out = self.online.process_iter()
        if self._spliced and out is None and self.partial() is None:
            heard = sum(len(a) for a in self._utt_audio) / SAMPLE_RATE
            if heard >= CONTEXT_FALLBACK_SEC:
                self._drop_context()
                out = self.online.process_iter()
        return out

    def _send_until(self, sample: int) -> None:
        """Give ``online`` the utterance's audio up to stream sample ``sample`` (if not given yet)."""
        if sample <= self._sent:
            return
        chunk = self._audio[self._sent - self._audio_start : sample - self._audio_start]
        self.online.insert_audio_chunk(chunk)
        if self.context_sec > 0:
            self._utt_audio.append(chunk)
        self._unprocessed += len(chunk)
        self._sent += len(chunk)
        self._drop_until(self._sent)

    def _drop_until(self, sample: int) -> None:
        drop = min(max(0, sample - self._audio_start), len(self._audio))
        self._audio = self._audio[drop:]
        self._audio_start += drop

    def _end_utterance(self) -> Optional[Segment]:
        out: list[Optional[Segment]] = []
        if self.transcribe_tail and self._unprocessed:
            out.append(self._collect(self._recognise()))
        out.append(self._collect(self.online.finish()))
        if self.context_sec > 0 and self._utt_audio:
            audio = np.concatenate(self._utt_audio)[-int(self.context_sec * SAMPLE_RATE) :]
            self._prev = (self._sent, audio)
        self.in_speech = False
        self._unprocessed = 0
        return self._merge(out)

    def _collect(self, segment: Optional[Segment]) -> Optional[Segment]:
        words = getattr(self.online, "last_words", None)
        if segment is not None and callable(words):
            self._last_words.extend(words())
        return segment

    def _merge(self, segments: Sequence[Optional[Segment]]) -> Optional[Segment]:
        found = [s for s in segments if s is not None]
        if not found:
            return None
        return (found[0][0], found[-1][1], self.sep.join(s[2] for s in found))
