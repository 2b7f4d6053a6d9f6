"""Utterances, datasets and the manifest format every corpus is turned into.

An :class:`Utterance` is one recording with its transcript and, when known, the time of
every word (``[(start, end, word), ...]`` in seconds); a :class:`Dataset` is a named list
of them. Every source ends up in that one shape, so the replayer, the metrics and the
comparison runner never care where audio came from.

The on-disk form is a **manifest**: a JSON Lines file (``manifest.jsonl``), one utterance
per line, with audio paths relative to the manifest's folder so a dataset folder can be
moved or zipped as a whole (the lhotse/NeMo convention)::

    {"id": "slt-000", "audio": "audio/slt-000.flac", "text": "The cat sat on the mat.",
     "duration": 2.135, "words": [[0.12, 0.31, "the"], [0.31, 0.58, "cat"], ...],
     "meta": {"voice": "slt", "engine": "flite"}}

``words`` is ``null`` when timings are unknown; ``meta`` is optional and free-form.

:func:`read_manifest` reads that form back. Corpora in other forms (LibriSpeech, Common
Voice, Hugging Face ``datasets``, the bundled sets) are read by their recipes in
:mod:`asr_lab.data.recipes`, and :func:`~asr_lab.data.recipes.load_dataset` picks the right
one. Heavy libraries (soundfile, librosa) are imported inside the functions that need them,
so importing this module stays cheap.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MANIFEST_NAME",
    "Dataset",
    "DatasetError",
    "DatasetFileNotFoundError",
    "Utterance",
    "WordTiming",
    "WordTimeError",
    "read_manifest",
]

MANIFEST_NAME = "manifest.jsonl"
"""The file name :func:`load_dataset` looks for inside a dataset folder."""

SAMPLE_RATE = 16000
WordTiming = tuple[float, float, str]
PathLike = str | os.PathLike

_AUDIO_SUFFIXES = (".flac", ".wav", ".mp3", ".ogg", ".opus", ".m4a")


class DatasetError(ValueError):
    """A dataset source that cannot be read as given; the message names it, what is allowed and the fix."""


class WordTimeError(DatasetError):
    """Reference word times out of order or outside the audio (:meth:`Dataset.check`)."""


class DatasetFileNotFoundError(DatasetError, FileNotFoundError):
    """A manifest, folder or audio file that a dataset needs does not exist."""


# ----------------------------------------------------------------------------- Utterance


@dataclass
class Utterance:
    """One recording, its transcript and (optionally) the time of every word.

    ``id``
        Unique within its dataset; used to find it (``dataset["slt-000"]``) and to name
        results.
    ``audio``
        Path of the audio file (any format :func:`asr_lab.core.audio.load_audio` reads), or
        ``None`` for an utterance whose audio lives only in memory (see :meth:`from_array`)
        or is unknown. Loaders give absolute paths (so a later ``chdir`` does not break
        them); in a manifest the path is stored relative to the manifest's folder.
    ``text``
        The reference transcript, as written (normalisation is the metrics' job).
    ``duration``
        Seconds of audio, or ``None`` when not measured.
    ``words``
        Reference word timings ``[(start, end, word), ...]`` in seconds from the start of
        the audio, in spoken order, or ``None`` when unknown (latency metrics need them).
    ``meta``
        Anything else: voice, engine, speaker, source utterances of a long-form stream...
    """

    id: str
    audio: str | None
    text: str
    duration: float | None = None
    words: list[WordTiming] | None = None
    meta: dict = field(default_factory=dict)
    _array_loader: Callable[[], np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise DatasetError(f"utterance id must be a non-empty string, got {self.id!r}")
        if self.audio is not None:
            if not isinstance(self.audio, (str, os.PathLike)):
                raise DatasetError(
                    f"utterance {self.id!r}: audio must be a file path (str) or None, got "
                    f"{type(self.audio).__name__}; for samples in memory use Utterance.from_array(...)"
                )
            self.audio = os.fspath(self.audio)
        if not isinstance(self.text, str):
            raise DatasetError(f"utterance {self.id!r}: text must be a string, got {type(self.text).__name__}")
        if self.duration is not None:
            if isinstance(self.duration, bool) or not isinstance(self.duration, (int, float, np.number)):
                raise DatasetError(
                    f"utterance {self.id!r}: duration must be seconds (a number) or None, got {self.duration!r}"
                )
            if not math.isfinite(float(self.duration)) or self.duration < 0:
                raise DatasetError(f"utterance {self.id!r}: duration must be >= 0 seconds, got {self.duration!r}")
            self.duration = float(self.duration)
        if self.words is not None:
            self.words = _parse_words(self.words, f"utterance {self.id!r}")
        if not isinstance(self.meta, dict):
            raise DatasetError(f"utterance {self.id!r}: meta must be a dict, got {type(self.meta).__name__}")

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_array(
        cls,
        id: str,
        audio: np.ndarray,
        text: str,
        sr: int = SAMPLE_RATE,
        *,
        words: Iterable | None = None,
        meta: dict | None = None,
    ) -> Utterance:
        """An utterance whose audio is an array in memory (converted to float32 16 kHz mono now).

        :meth:`Dataset.to_manifest` writes such audio to FLAC beside the manifest.
        """
        from asr_lab.core.audio import load_audio

        samples = load_audio(np.asarray(audio), sr=sr)
        return cls(
            id=id,
            audio=None,
            text=text,
            duration=len(samples) / SAMPLE_RATE,
            words=None if words is None else list(words),
            meta=dict(meta or {}),
            _array_loader=lambda: samples,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], root: PathLike | None = None) -> Utterance:
        """Build from a manifest record; a relative ``audio`` path is taken relative to ``root``.

        Accepted keys: ``id``, ``audio`` (also ``audio_filepath`` as in NeMo manifests),
        ``text``, ``duration``, ``words`` (``[[start, end, word], ...]`` or
        ``[{"start", "end", "word"}, ...]``), ``meta``. Any other key is kept in ``meta``.
        A missing ``id`` is taken from the audio file's name.
        """
        if not isinstance(data, Mapping):
            raise DatasetError(
                f"an utterance record must be a JSON object (dict), got {type(data).__name__}: {data!r:.80}"
            )
        record = dict(data)
        audio = record.pop("audio", None)
        if audio is None:
            audio = record.pop("audio_filepath", None)
        if audio is not None and not isinstance(audio, str):
            raise DatasetError(f"'audio' must be a path string or null, got {audio!r:.80}")
        if audio is not None and root is not None and not os.path.isabs(audio):
            audio = os.path.abspath(os.path.join(os.fspath(root), audio))
        uid = record.pop("id", None)
        if uid is None and audio is not None:
            uid = Path(audio).stem
        if uid is None:
            raise DatasetError(
                f"record has no 'id' (and no 'audio' to take one from): keys {sorted(data)}; "
                f'add "id": "<unique name>"'
            )
        if "text" not in record:
            raise DatasetError(f"record {uid!r} has no 'text': keys {sorted(data)}; add the transcript as \"text\"")
        text = record.pop("text")
        meta = record.pop("meta", None) or {}
        if not isinstance(meta, dict):
            raise DatasetError(f"record {uid!r}: 'meta' must be a JSON object, got {meta!r:.80}")
        meta = {**{k: v for k, v in record.items() if k not in ("duration", "words")}, **meta}
        return cls(
            id=str(uid),
            audio=audio,
            text=text,
            duration=record.get("duration"),
            words=record.get("words"),
            meta=meta,
        )

    # -- views --------------------------------------------------------------------------

    @property
    def has_words(self) -> bool:
        """Whether reference word timings are known."""
        return self.words is not None

    @property
    def audio_path(self) -> Path | None:
        """The audio file as a :class:`~pathlib.Path`, or ``None`` for in-memory/unknown audio."""
        return None if self.audio is None else Path(self.audio)

    @property
    def voice(self) -> str | None:
        """``meta["voice"]`` (synthetic data) or ``meta["speaker"]``, else ``None``."""
        return self.meta.get("voice", self.meta.get("speaker"))

    def load_audio(self) -> np.ndarray:
        """The samples as float32, 16 kHz, mono (read from the file, or the in-memory array)."""
        if self._array_loader is not None:
            return self._array_loader()
        if self.audio is None:
            raise DatasetError(
                f"utterance {self.id!r} has no audio (audio=None); give a file path, or build it "
                f"with Utterance.from_array(id, samples, text, sr)"
            )
        from asr_lab.core.audio import load_audio

        if not os.path.exists(self.audio):
            raise DatasetFileNotFoundError(
                f"audio file of utterance {self.id!r} not found: {self.audio!r}; the manifest points to a "
                f"file that was moved or never built — rebuild the dataset or fix the path"
            )
        return load_audio(self.audio)

    def to_dict(self, relative_to: PathLike | None = None) -> dict:
        """The manifest record: ``id, audio, text, duration, words[, meta]`` (JSON-ready).

        With ``relative_to`` (a folder), an audio path inside that folder is written
        relative to it (POSIX separators); paths outside it stay absolute.
        """
        audio = self.audio
        if audio is not None and relative_to is not None:
            audio = _relative_path(audio, relative_to)
        record: dict[str, Any] = {
            "id": self.id,
            "audio": audio,
            "text": self.text,
            "duration": None if self.duration is None else round(self.duration, 4),
            "words": None if self.words is None else [[round(s, 3), round(e, 3), w] for s, e, w in self.words],
        }
        if self.meta:
            record["meta"] = _jsonable(self.meta)
        return record


def _parse_words(words: Any, where: str) -> list[WordTiming]:
    if isinstance(words, (str, bytes)) or not isinstance(words, Iterable):
        raise DatasetError(f"{where}: words must be a list of (start, end, word) or None, got {type(words).__name__}")
    out: list[WordTiming] = []
    for k, item in enumerate(words):
        if isinstance(item, Mapping):
            try:
                item = (item["start"], item["end"], item["word"])
            except KeyError as missing:
                raise DatasetError(
                    f"{where}: words[{k}] = {item!r:.80} lacks {missing}; use {{'start', 'end', 'word'}}"
                ) from None
        try:
            start, end, word = item
            start, end = float(start), float(end)
        except (TypeError, ValueError):
            raise DatasetError(
                f"{where}: words[{k}] = {item!r:.80} is not (start seconds, end seconds, word)"
            ) from None
        if not isinstance(word, str):
            raise DatasetError(f"{where}: words[{k}] word must be a string, got {word!r}")
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
            raise DatasetError(f"{where}: words[{k}] = ({start}, {end}, {word!r}) needs 0 <= start <= end (seconds)")
        out.append((start, end, word))
    return out


def _relative_path(path: str, folder: PathLike) -> str:
    folder_abs = os.path.abspath(os.fspath(folder))
    path_abs = os.path.abspath(path)
    try:
        inside = os.path.commonpath([folder_abs, path_abs]) == folder_abs
    except ValueError:  # different drives on Windows
        inside = False
    if not inside:
        return path
    return Path(os.path.relpath(path_abs, folder_abs)).as_posix()


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays and tuples into plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return value.as_posix()
    return value


# ----------------------------------------------------------------------------- Dataset


class Dataset:
    """A named, ordered list of :class:`Utterance` with a root folder.

    Index it by position (``ds[0]``), slice (``ds[:5]`` is a Dataset) or id
    (``ds["slt-000"]``); iterate it; :meth:`filter` and :meth:`subset` make smaller
    datasets; :meth:`to_manifest` saves it; :meth:`to_dataframe` and :meth:`summary` describe it.
    """

    def __init__(
        self,
        utterances: Iterable[Utterance] = (),
        name: str | None = None,
        root: PathLike | None = None,
    ) -> None:
        self.utterances: list[Utterance] = list(utterances)
        for k, utt in enumerate(self.utterances):
            if not isinstance(utt, Utterance):
                raise DatasetError(
                    f"Dataset item {k} is a {type(utt).__name__}, not an Utterance; build items with "
                    f"Utterance(id=..., audio=..., text=...) or Utterance.from_dict(record)"
                )
        self.root: Path | None = None if root is None else Path(root)
        self.name: str = name or (self.root.name if self.root is not None else "dataset")
        self._by_id: dict[str, int] = {}
        for k, utt in enumerate(self.utterances):
            if utt.id in self._by_id:
                raise DatasetError(
                    f"duplicate utterance id {utt.id!r} (items {self._by_id[utt.id]} and {k}) in dataset "
                    f"{self.name!r}; ids must be unique — rename one"
                )
            self._by_id[utt.id] = k

    def check(self, *, where: str | None = None) -> Dataset:
        """Fail loudly (:class:`WordTimeError`, naming utterance, word and times) when any utterance's word
        times run backwards or past its audio (:mod:`asr_lab.data.word_check`); returns the dataset.
        Every manifest read is checked."""
        from asr_lab.data.word_check import describe_problems, word_time_problems

        problems = [p for u in self.utterances for p in word_time_problems(u)]
        if problems:
            raise WordTimeError(describe_problems(problems, where or f"dataset {self.name!r}"))
        return self

    # -- container protocol ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self.utterances)

    def __contains__(self, key: object) -> bool:
        return key in self._by_id if isinstance(key, str) else key in self.utterances

    def __getitem__(self, key: int | slice | str) -> Utterance | Dataset:
        if isinstance(key, str):
            if key not in self._by_id:
                close = difflib.get_close_matches(key, list(self._by_id), n=3)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else f"; ids look like {self.ids[:3]}"
                raise KeyError(f"no utterance with id {key!r} in dataset {self.name!r}{hint}")
            return self.utterances[self._by_id[key]]
        if isinstance(key, slice):
            return self._derive(self.utterances[key])
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return self.utterances[int(key)]
        raise TypeError(f"index a Dataset with an int, a slice or an utterance id (str), not {type(key).__name__}")

    def __repr__(self) -> str:
        total = self.total_duration
        dur = (f", {total:.1f} s" if total < 120 else f", {total / 60:.1f} min") if total else ""
        root = f", root={str(self.root)!r}" if self.root is not None else ""
        return f"Dataset({self.name!r}, {len(self)} utterances{dur}{root})"

    @property
    def ids(self) -> list[str]:
        """Utterance ids, in order."""
        return [u.id for u in self.utterances]

    @property
    def total_duration(self) -> float:
        """Sum of known durations, in seconds."""
        return float(sum(u.duration for u in self.utterances if u.duration is not None))

    def _derive(self, utterances: Iterable[Utterance], suffix: str = "") -> Dataset:
        return Dataset(utterances, name=self.name + suffix, root=self.root)

    # -- selection ---------------------------------------------------------------------

    def filter(self, predicate: Callable[[Utterance], bool] | None = None, **equals: Any) -> Dataset:
        """Utterances for which ``predicate(utt)`` is true and every ``key=value`` matches.

        A key is an utterance field (``id``, ``text``, ``audio``, ``duration``) or a
        ``meta`` key; a list/tuple/set value means "any of these":
        ``ds.filter(voice=("slt", "rms"), kind="utterance")``,
        ``ds.filter(lambda u: u.duration < 5)``.
        """
        if predicate is not None and not callable(predicate):
            raise TypeError(f"predicate must be a callable Utterance -> bool, got {predicate!r:.60}")
        fields_ = {"id", "text", "audio", "duration", "words"}

        def value_of(utt: Utterance, key: str) -> Any:
            return getattr(utt, key) if key in fields_ else utt.meta.get(key)

        def keep(utt: Utterance) -> bool:
            for key, wanted in equals.items():
                got = value_of(utt, key)
                if isinstance(wanted, (list, tuple, set, frozenset)):
                    if got not in wanted:
                        return False
                elif got != wanted:
                    return False
            return predicate is None or bool(predicate(utt))

        return self._derive([u for u in self.utterances if keep(u)])

    def subset(
        self,
        n: int | None = None,
        *,
        ids: Iterable[str] | None = None,
        seed: int | None = None,
    ) -> Dataset:
        """A smaller dataset: the utterances named in ``ids`` (in that order), or ``n`` of them.

        ``n`` alone takes the first ``n``; with ``seed`` it takes ``n`` chosen at random
        (reproducibly), kept in dataset order.
        """
        if ids is not None:
            if n is not None:
                raise ValueError("give either n or ids to subset(), not both")
            ids = [ids] if isinstance(ids, str) else list(ids)
            return self._derive([self[i] for i in ids])
        if n is None:
            raise ValueError("subset() needs n (how many utterances) or ids (which ones)")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a whole number >= 0, got {n!r}")
        n = min(int(n), len(self))
        if seed is None:
            return self._derive(self.utterances[:n])
        chosen = sorted(random.Random(seed).sample(range(len(self)), n))
        return self._derive([self.utterances[k] for k in chosen])

    # -- saving and describing -----------------------------------------------------------

    def to_manifest(self, path: PathLike | None = None, *, audio_dir: str = "audio") -> Path:
        """Write the manifest JSONL and return its path.

        ``path`` is the file, or a folder (then ``<folder>/manifest.jsonl``); by default
        ``<root>/manifest.jsonl``. Audio paths inside the manifest's folder are written
        relative to it. Utterances whose audio is only in memory are first saved as
        ``<folder>/<audio_dir>/<id>.flac`` (16 kHz, 16-bit) and their ``audio`` set to it.
        The file is replaced atomically, and not rewritten when its content is unchanged.
        """
        if path is None:
            if self.root is None:
                raise DatasetError(
                    f"dataset {self.name!r} has no root folder; give to_manifest() a path, e.g. 'out/manifest.jsonl'"
                )
            path = self.root / MANIFEST_NAME
        path = Path(path)
        if path.is_dir() or (not path.suffix and not path.exists()):
            path = path / MANIFEST_NAME
        folder = path.parent
        folder.mkdir(parents=True, exist_ok=True)
        for utt in self.utterances:
            if utt.audio is None and utt._array_loader is not None:
                from asr_lab.core.audio import save_audio

                target = folder / audio_dir / f"{_safe_file_name(utt.id)}.flac"
                save_audio(target, utt.load_audio())
                utt.audio = os.path.abspath(target)
        lines = [json.dumps(u.to_dict(relative_to=folder), ensure_ascii=False) for u in self.utterances]
        _write_text_if_changed(path, "".join(line + "\n" for line in lines))
        return path

    def to_dataframe(self):
        """A pandas DataFrame: one row per utterance (``id, audio, text, duration, n_words,
        has_words``, then one column per ``meta`` key)."""
        import pandas as pd

        rows = []
        for u in self.utterances:
            row = {
                "id": u.id,
                "audio": u.audio,
                "text": u.text,
                "duration": u.duration,
                "n_words": len(u.text.split()),
                "has_words": u.has_words,
            }
            for key, value in u.meta.items():
                row.setdefault(key, value)
            rows.append(row)
        columns = ["id", "audio", "text", "duration", "n_words", "has_words"]
        return pd.DataFrame(rows, columns=None if rows else columns)

    def summary(self) -> dict:
        """Counts that describe the dataset, as a plain dict (JSON-ready).

        ``utterances``, ``total_duration_sec``, ``min/mean/max_duration_sec``,
        ``with_word_timings`` (how many have word times), ``voices`` (count per
        ``meta["voice"]`` or ``meta["speaker"]``), ``engines``, ``kinds`` (e.g. utterance
        vs long_form), ``unknown_durations``.
        """
        durations = [u.duration for u in self.utterances if u.duration is not None]
        voices = Counter(str(u.voice) for u in self.utterances if u.voice is not None)
        engines = Counter(str(u.meta["engine"]) for u in self.utterances if "engine" in u.meta)
        kinds = Counter(str(u.meta["kind"]) for u in self.utterances if "kind" in u.meta)
        return {
            "name": self.name,
            "root": None if self.root is None else str(self.root),
            "utterances": len(self),
            "total_duration_sec": round(sum(durations), 3),
            "min_duration_sec": round(min(durations), 3) if durations else None,
            "mean_duration_sec": round(sum(durations) / len(durations), 3) if durations else None,
            "max_duration_sec": round(max(durations), 3) if durations else None,
            "unknown_durations": len(self) - len(durations),
            "with_word_timings": sum(u.has_words for u in self.utterances),
            "words": sum(len(u.text.split()) for u in self.utterances),
            "voices": dict(sorted(voices.items())),
            "engines": dict(sorted(engines.items())),
            "kinds": dict(sorted(kinds.items())),
        }

    def info(self) -> str:
        """:meth:`summary` as a few readable lines (what ``asr-lab dataset info`` prints)."""
        s = self.summary()
        lines = [f"dataset {s['name']!r}" + (f" at {s['root']}" if s["root"] else "")]
        lines.append(f"  utterances:   {s['utterances']} ({s['words']} words)")
        if s["utterances"]:
            total = s["total_duration_sec"]
            lines.append(
                f"  duration:     {total:.1f} s ({total / 60:.1f} min); per utterance "
                f"min {_fmt(s['min_duration_sec'])} / mean {_fmt(s['mean_duration_sec'])} / "
                f"max {_fmt(s['max_duration_sec'])} s"
                + (f"; {s['unknown_durations']} unknown" if s["unknown_durations"] else "")
            )
            lines.append(f"  word timings: {s['with_word_timings']} of {s['utterances']}")
        for key in ("voices", "engines", "kinds"):
            if s[key]:
                lines.append(f"  {key + ':':<13} " + ", ".join(f"{k} ({v})" for k, v in s[key].items()))
        return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f}"


def _safe_file_name(uid: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in uid)


def _write_text_if_changed(path: Path, content: str) -> bool:
    """Write ``content`` atomically unless the file already holds exactly that; True if written."""
    if path.exists():
        try:
            if path.read_text(encoding="utf-8") == content:
                return False
        except (OSError, UnicodeDecodeError):
            pass
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)
    return True


# ----------------------------------------------------------------------------- manifest files


def read_manifest(path: PathLike, *, name: str | None = None, check_audio: bool = True) -> Dataset:
    """Read a manifest JSONL: one utterance record per line, paths relative to its folder.

    Blank lines are skipped. A line that is not a JSON object, a record without ``text``,
    a duplicated id, or (with ``check_audio``) an audio file that does not exist raises
    :class:`DatasetError` naming the file and line number.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetFileNotFoundError(
            f"manifest {os.fspath(path)!r} not found; build the dataset first (e.g. "
            f"`python -m asr_lab.data.build datasets/mini`) or give the right path"
        )
    root = path.parent
    utterances: list[Utterance] = []
    seen: dict[str, int] = {}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = f"{os.fspath(path)}, line {lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DatasetError(
                    f"{where}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1}); save the "
                    f"manifest as UTF-8, e.g. iconv -f latin1 -t utf-8"
                ) from None
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(
                    f"{where}: not valid JSON ({err.msg} at column {err.colno}): {line.strip()[:80]!r}; each line "
                    f'must be one JSON object like {{"id": "a", "audio": "a.flac", "text": "...", '
                    f'"duration": 1.5, "words": null}}'
                ) from None
            try:
                utt = Utterance.from_dict(record, root=root)
            except DatasetError as err:
                raise DatasetError(f"{where}: {err}") from None
            if utt.id in seen:
                raise DatasetError(
                    f"{where}: id {utt.id!r} was already used on line {seen[utt.id]}; ids must be unique"
                )
            seen[utt.id] = lineno
            if check_audio and utt.audio is not None and not os.path.exists(utt.audio):
                raise DatasetFileNotFoundError(
                    f"{where}: audio file of utterance {utt.id!r} not found: {utt.audio!r} (paths are relative to "
                    f"the manifest's folder {os.fspath(root)!r}); rebuild the dataset, fix the path, or load with "
                    f"check_audio=False"
                )
            utterances.append(utt)
    dataset = Dataset(utterances, name=name or (root.name if path.name == MANIFEST_NAME else path.stem), root=root)
    dataset.check(where=os.fspath(path))
    return dataset


def _file_duration(path: PathLike) -> float | None:
    """Seconds of audio from the file header (soundfile), else by decoding (librosa); None if unreadable."""
    import soundfile as sf

    try:
        info = sf.info(os.fspath(path))
        if info.samplerate > 0 and info.frames > 0:
            return info.frames / info.samplerate
    except Exception:  # noqa: BLE001, S110 -- any failure: try decoding instead
        pass
    try:
        import warnings

        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(librosa.get_duration(path=os.fspath(path)))
    except Exception:  # noqa: BLE001 -- unreadable: the duration stays unknown, load_audio will say why
        return None


