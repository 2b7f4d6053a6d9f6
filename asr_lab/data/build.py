"""Build speech datasets from text: synthesise, force-align, write FLAC + manifest.

Why: tests and notebooks need audio with an exact transcript *and* the time of every
word (latency metrics measure from a word's end), and nothing can be downloaded here.
Offline synthesis (:mod:`asr_lab.data.synth`, flite / espeak-ng) gives the audio and
transcript; pocketsphinx forced alignment (:mod:`asr_lab.data.forced_alignment`) gives the word times.

Every builder is an idempotent *prepare* step that returns a manifest-backed
:class:`~asr_lab.data.dataset.Dataset` (the lhotse recipe pattern): each output records a
``build_key`` (hash of text, voice, engine, sample rate and recipe version) and the
SHA-256 of its audio file; a later run that finds both matching reuses the file and its
word times without synthesising or aligning again, and leaves the manifest untouched.

* :func:`build_utterances` — sentences → one FLAC per sentence + ``manifest.jsonl``.
* :func:`build_long_form` — utterances → one long stream with pauses, word times shifted.
* :func:`align_dataset`, :func:`dataset_info` — what the ``asr-lab dataset info|align``
  commands call.

The bundled sets are recipes built with these: :mod:`asr_lab.data.recipes.mini` and
:mod:`asr_lab.data.recipes.librivox`. ``python -m asr_lab.data.build datasets/mini`` (the same
as ``asr-lab dataset build datasets/mini``) rebuilds the mini set.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asr_lab.data import synth as _synth
from asr_lab.data.dataset import (
    MANIFEST_NAME,
    SAMPLE_RATE,
    Dataset,
    DatasetError,
    Utterance,
    read_manifest,
)
from asr_lab.data.recipes import load_dataset

__all__ = [
    "DEFAULT_VOICES",
    "RECIPE_VERSION",
    "align_dataset",
    "build_long_form",
    "build_utterances",
    "dataset_info",
]

PathLike = str | os.PathLike
Log = Callable[[str], None] | None

DEFAULT_VOICES: tuple[str, ...] = ("slt", "rms", "awb", "kal16")
"""flite voices at 16 kHz that pocketsphinx recognises well (see FACTS.md)."""

RECIPE_VERSION = "1"
"""Part of every build key: bump it when the recipe changes so old outputs are rebuilt."""


# ----------------------------------------------------------------------------- helpers


def _sha256_file(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _build_key(**recipe: Any) -> str:
    """Short hash of everything that determines an output (JSON with sorted keys)."""
    recipe = {**recipe, "recipe_version": RECIPE_VERSION, "sample_rate": SAMPLE_RATE}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]


def _save_flac_atomic(path: Path, audio: np.ndarray) -> None:
    """Write 16 kHz 16-bit FLAC via a temporary file, so an interrupted build leaves no half file."""
    from asr_lab.core.audio import save_audio

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    save_audio(tmp, audio)
    os.replace(tmp, path)


def _previous_entries(manifest: Path, log: Log) -> dict[str, Utterance]:
    """Utterances of an earlier build (by id), or {} when there is none or it is unreadable."""
    if not manifest.is_file():
        return {}
    try:
        return {u.id: u for u in read_manifest(manifest, check_audio=False)}
    except DatasetError as err:
        _say(log, f"ignoring the unreadable earlier manifest, rebuilding everything: {err}")
        return {}


def _reusable(old: Utterance | None, key: str, need_words: bool) -> bool:
    """An earlier output can be kept: same build key, file present, file hash unchanged."""
    if old is None or old.audio is None or old.meta.get("build_key") != key:
        return False
    if need_words and old.words is None:
        return False
    if not os.path.isfile(old.audio):
        return False
    return _sha256_file(old.audio) == old.meta.get("audio_sha256")


def _say(log: Log, message: str) -> None:
    if log is not None:
        log(message)


def _normalise_sentences(sentences: Any) -> list[tuple[str | None, str]]:
    if isinstance(sentences, str):
        raise DatasetError('sentences must be a list of sentences, not one string; wrap it: ["Hello world."]')
    if isinstance(sentences, Mapping):
        items = list(sentences.items())
    else:
        items = []
        for k, item in enumerate(sentences):
            if isinstance(item, str):
                items.append((None, item))
            elif isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(x, str) for x in item):
                items.append((item[0], item[1]))
            else:
                raise DatasetError(
                    f"sentences[{k}] = {item!r:.60} is neither a sentence (str) nor an (id, sentence) pair"
                )
    for k, (uid, text) in enumerate(items):
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(f"sentence {k} ({uid or 'no id'}) is empty; every sentence needs words to speak")
    if not items:
        raise DatasetError('no sentences given; pass a list such as ["The cat sat on the mat."]')
    return items


# ----------------------------------------------------------------------------- builders


def build_utterances(
    sentences: Iterable[str] | Iterable[tuple[str, str]] | Mapping[str, str],
    out_dir: PathLike,
    voices: Sequence[str] | None = None,
    engine: str = "flite",
    *,
    align: bool = True,
    every_voice: bool = False,
    name: str | None = None,
    log: Log = None,
) -> Dataset:
    """Speak each sentence, align its words, write ``<out_dir>/<id>.flac`` and ``manifest.jsonl``.

    ``sentences``: strings (ids become ``<voice>-<index>``, e.g. ``slt-000``), ``(id, text)``
    pairs, or a ``{id: text}`` mapping. Sentence ``i`` is spoken by ``voices[i % len(voices)]``
    (or by every voice with ``every_voice=True``, ids ``<id>-<voice>``); ``voices=None`` means
    :data:`DEFAULT_VOICES` for flite and ``("en-us",)`` for espeak-ng. Audio is 16 kHz
    16-bit FLAC; ``words`` come from flite's own phone durations for flite speech (no
    recogniser: pocketsphinx, a contestant, must not time what it is scored on) and from
    pocketsphinx forced alignment for espeak-ng (``align=False`` leaves them ``None``). ``meta`` records ``voice``, ``engine``,
    ``kind="utterance"``, ``build_key`` and ``audio_sha256``.

    Idempotent: outputs whose build key and file hash match the existing manifest are
    reused as they are; audio files of the previous manifest that are no longer wanted are
    deleted. The manifest is rewritten only if its content changed. Returns the Dataset
    read back from the manifest.
    """
    if engine not in _synth.ENGINES:
        raise DatasetError(f"engine={engine!r} is not a synthesiser here; use one of {', '.join(_synth.ENGINES)}")
    if voices is None:
        voices = DEFAULT_VOICES if engine == "flite" else ("en-us",)
    voices = [voices] if isinstance(voices, str) else list(voices)
    if not voices or not all(isinstance(v, str) and v for v in voices):
        raise DatasetError(f"voices must be a non-empty list of voice names, got {voices!r}; e.g. {DEFAULT_VOICES}")
    items = _normalise_sentences(sentences)
    plan: list[tuple[str, str, str]] = []  # (id, text, voice)
    for i, (uid, text) in enumerate(items):
        if every_voice:
            base = uid or f"{i:03d}"
            plan.extend((f"{base}-{voice}", text, voice) for voice in voices)
        else:
            voice = voices[i % len(voices)]
            plan.append((uid or f"{voice}-{i:03d}", text, voice))
    seen: set[str] = set()
    for uid, _, _ in plan:
        if uid in seen:
            raise DatasetError(f"utterance id {uid!r} is used twice; give each sentence its own id")
        seen.add(uid)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST_NAME
    previous = _previous_entries(manifest, log)
    utterances: list[Utterance] = []
    made = 0
    for uid, text, voice in plan:
        key = _build_key(kind="utterance", text=text, voice=voice, engine=engine, aligned=align, timings=_timings_source(engine))
        old = previous.get(uid)
        if _reusable(old, key, need_words=align):
            utterances.append(old)
            continue
        audio = _synth.synthesize(text, voice, engine=engine)
        if align:
            words = _flite_timed(audio, text, voice, uid) if engine == "flite" else _align_or_fail(audio, text, uid)
        else:
            words = None
        path = out / f"{_file_stem(uid)}.flac"
        _save_flac_atomic(path, audio)
        made += 1
        _say(log, f"  built {path.name}: {len(audio) / SAMPLE_RATE:.2f} s, {voice}, {len(words or [])} word times")
        utterances.append(
            Utterance(
                id=uid,
                audio=os.path.abspath(path),
                text=text,
                duration=len(audio) / SAMPLE_RATE,
                words=words,
                meta={
                    "kind": "utterance",
                    "voice": voice,
                    "engine": engine,
                    "build_key": key,
                    "audio_sha256": _sha256_file(path),
                },
            )
        )
    _remove_stale(previous, utterances, out, log)
    Dataset(utterances, name=name or out.name, root=out).to_manifest(manifest)
    _say(log, f"{out}: {len(utterances)} utterances ({made} built, {len(utterances) - made} reused)")
    return read_manifest(manifest, name=name)


def _file_stem(uid: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in uid)


def _timings_source(engine: str) -> str:
    return "flite-phone-durations" if engine == "flite" else "pocketsphinx-forced-alignment"


def _flite_timed(audio: np.ndarray, text: str, voice: str, uid: str) -> list[tuple[float, float, str]]:
    """flite's own word times for ``audio`` (from its phone durations): no recogniser involved.

    flite is run again with timing output; its audio must equal ``audio`` sample for
    sample, so the times are those of this very recording.
    """
    from asr_lab.data.synthesis_alignment import flite_words

    try:
        timed_audio, words = flite_words(text, voice)
    except _synth.SynthesisError as err:
        raise DatasetError(f"utterance {uid!r} ({text!r:.80}): {err}") from err
    if not np.array_equal(timed_audio, audio):
        raise DatasetError(
            f"utterance {uid!r}: flite did not reproduce the same audio when asked for timings; build with "
            f"align=False, or align with pocketsphinx (asr_lab.data.forced_alignment)"
        )
    return words


def _align_or_fail(audio: np.ndarray, text: str, uid: str) -> list[tuple[float, float, str]]:
    """Forced alignment of ``text`` on ``audio``; times clipped to the audio's length."""
    from asr_lab.data import forced_alignment as _align

    try:
        words = _align.align_words(audio, text)
    except Exception as err:
        raise DatasetError(
            f"forced alignment failed for utterance {uid!r} ({text!r:.80}): {type(err).__name__}: {err}. "
            f"Use words from pocketsphinx's en-us dictionary, spell numbers out, or build with align=False"
        ) from err
    limit = len(audio) / SAMPLE_RATE
    return [(min(float(s), limit), min(float(e), limit), str(w)) for s, e, w in words]


def _remove_stale(previous: Mapping[str, Utterance], kept: Sequence[Utterance], out: Path, log: Log) -> None:
    """Delete audio files of the earlier manifest that the new one no longer uses (inside ``out`` only)."""
    keep = {os.path.abspath(u.audio) for u in kept if u.audio}
    out_abs = os.path.abspath(out)
    for old in previous.values():
        if not old.audio:
            continue
        path = os.path.abspath(old.audio)
        if path not in keep and os.path.dirname(path) == out_abs and os.path.isfile(path):
            os.remove(path)
            _say(log, f"  removed stale {os.path.basename(path)}")


def build_long_form(
    utterances: Iterable[Utterance],
    out_path: PathLike,
    pause_sec: float | tuple[float, float] = (0.6, 1.5),
    seed: int | None = 0,
    *,
    id: str | None = None,
    meta: dict | None = None,
) -> Utterance:
    """Join ``utterances`` into one stream with pauses between them; write it as FLAC.

    Each pause lasts a number of seconds drawn uniformly from ``pause_sec`` (a
    ``(low, high)`` range, or one number for equal pauses) with ``random.Random(seed)``,
    so the same inputs and seed give the same stream. Every word time is shifted by the
    start of its utterance (in whole samples, so times stay exact); ``meta["sources"]``
    lists each source ``{id, start, end, text, voice}`` and ``meta["kind"]`` is
    ``"long_form"``. If any source has no word timings, the stream's ``words`` is ``None``.
    Returns the new :class:`Utterance` (id: ``id`` or the file's stem).
    """
    sources = list(utterances)
    if not sources:
        raise DatasetError("build_long_form needs at least one utterance to join; got none")
    for k, u in enumerate(sources):
        if not isinstance(u, Utterance):
            raise DatasetError(f"utterances[{k}] is a {type(u).__name__}, not an Utterance")
    if isinstance(pause_sec, (int, float)) and not isinstance(pause_sec, bool):
        low = high = float(pause_sec)
    else:
        try:
            low, high = (float(x) for x in pause_sec)
        except (TypeError, ValueError):
            raise DatasetError(
                f"pause_sec must be seconds or a (low, high) range, got {pause_sec!r}; e.g. (0.6, 1.5)"
            ) from None
    if not (0 <= low <= high):
        raise DatasetError(f"pause_sec range ({low}, {high}) needs 0 <= low <= high (seconds)")
    rng = random.Random(seed)
    pieces: list[np.ndarray] = []
    words: list[tuple[float, float, str]] | None = []
    source_info = []
    position = 0  # in samples
    for k, u in enumerate(sources):
        if k > 0:
            gap = round(rng.uniform(low, high) * SAMPLE_RATE)
            pieces.append(np.zeros(gap, dtype=np.float32))
            position += gap
        audio = u.load_audio()
        offset = position / SAMPLE_RATE
        pieces.append(audio)
        if words is not None and u.words is not None:
            words.extend((offset + s, offset + e, w) for s, e, w in u.words)
        else:
            words = None
        source_info.append(
            {
                "id": u.id,
                "start": offset,
                "end": (position + len(audio)) / SAMPLE_RATE,
                "text": u.text,
                "voice": u.voice,
            }
        )
        position += len(audio)
    stream = np.concatenate(pieces)
    out = Path(out_path)
    if out.suffix.lower() not in (".flac", ".wav"):
        raise DatasetError(f"out_path {os.fspath(out_path)!r} must end in .flac or .wav")
    _save_flac_atomic(out, stream)
    voices = sorted({str(s["voice"]) for s in source_info if s["voice"] is not None})
    engines = sorted({str(u.meta["engine"]) for u in sources if "engine" in u.meta})
    info = {
        "kind": "long_form",
        "voices": voices,
        "pause_sec": [low, high],
        "seed": seed,
        "sources": source_info,
    }
    if len(engines) == 1:
        info["engine"] = engines[0]
    info = {k: v for k, v in info.items() if v is not None}
    return Utterance(
        id=id or out.stem,
        audio=os.path.abspath(out),
        text=" ".join(u.text.strip() for u in sources),
        duration=len(stream) / SAMPLE_RATE,
        words=words,
        meta={**info, **(meta or {})},
    )


# ----------------------------------------------------------------------------- CLI helpers


def align_dataset(
    dataset: Any,
    out: PathLike | None = None,
    *,
    overwrite: bool = False,
    log: Log = None,
) -> Dataset:
    """Add forced-alignment word timings to utterances that lack them (all with ``overwrite``).

    ``dataset`` is anything :func:`~asr_lab.data.dataset.load_dataset` accepts (e.g. a
    LibriSpeech folder). Utterances are changed in place. With ``out`` (a manifest path or
    folder), the result is saved there with :meth:`Dataset.to_manifest`; audio kept only in
    memory is written beside it as FLAC.
    """
    ds = load_dataset(dataset)
    done = 0
    for utt in ds:
        if utt.words is not None and not overwrite:
            continue
        audio = utt.load_audio()
        utt.words = _align_or_fail(audio, utt.text, utt.id)
        if utt.duration is None:
            utt.duration = len(audio) / SAMPLE_RATE
        done += 1
        _say(log, f"  aligned {utt.id}: {len(utt.words)} words")
    _say(log, f"aligned {done} of {len(ds)} utterances")
    if out is not None:
        path = ds.to_manifest(out)
        _say(log, f"wrote {path}")
    return ds


def dataset_info(source: Any, *, as_json: bool = False) -> str:
    """A readable description of a dataset (``Dataset.info()``), or its summary as JSON."""
    ds = load_dataset(source)
    return json.dumps(ds.summary(), indent=2) if as_json else ds.info()


if __name__ == "__main__":  # the script's own module (__main__), so importing the CLI here forms no cycle
    from asr_lab.cli import main as cli_main

    _argv = sys.argv[1:]
    sys.exit(cli_main(["dataset", *(_argv if _argv and _argv[0] in ("build", "info", "align") else ["build", *_argv])]))
