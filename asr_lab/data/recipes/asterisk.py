"""The Asterisk prompts: ~24 minutes of one professional human voice, built from Debian packages.

Debian's ``asterisk-core-sounds-en`` (the transcript,
``/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz``, lines ``name: text``) and
``asterisk-core-sounds-en-g722`` (the 568 recordings as raw G.722, 16 kHz wideband, under
``/usr/share/asterisk/sounds/en_US_f_Allison/``) hold the telephony prompts Allison Smith
recorded for Digium (CC-BY-SA-3.0). Lines whose text is only a tone (``[beep]``) or a
silence (``(silence)``) are left out, and annotations in brackets are dropped from the
text (``letters/at: at [@]`` → ``at``): 553 speech clips remain.

:func:`prepare` (also :func:`prepare_asterisk`) is a recipe in the lhotse manner:

* it reads the installed packages only and never downloads; a missing package raises
  :class:`AsteriskNotInstalledError` naming the ``apt-get install`` command;
* it records the SHA-256 of the transcript and of every ``.g722`` file in
  ``sources.json``; run again, it does nothing when they and the recipe's version are
  unchanged, and says which files changed when the package did (then rebuilds);
* audio is decoded with ffmpeg (``ffmpeg -f g722 -i X.g722 -ar 16000``) to 16-bit FLAC;
* word timings come from :mod:`asr_lab.data.synthesis_alignment` (flite renderings aligned by DTW;
  no engine the lab scores). Aligning all clips takes minutes, so the timings are shipped
  in ``datasets/asterisk/alignments.json`` keyed by clip name and the SHA-256 of its
  ``.g722`` file; a clip whose file differs, or ``realign=True``, is aligned afresh. A clip
  flite cannot time word by word (a number it reads differently in context) keeps its
  text and gets ``words=None`` with the reason in ``meta["timings"]``.

It writes three named sets that :func:`load_named` (and so
``asr_lab.load_dataset("asterisk")`` / ``asr-lab compare --dataset asterisk``) returns:

``asterisk``
    the 553 clips, one utterance each (``meta.kind == "utterance"``);
``asterisk-long``
    long-form streams of consecutive prompts (transcript order) of 3–5 minutes each,
    0.5 s of silence between clips, word times shifted (``meta.sources`` says where each
    clip lies); clips without word timings are left out of the streams;
``asterisk-short``
    a stated subset for quick comparisons: every 8th clip in transcript order (~3 min).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from asr_lab.data.dataset import Dataset, DatasetError, Utterance, read_manifest

__all__ = [
    "ASTERISK_NAMES",
    "DEFAULT_DIR",
    "NAME",
    "AsteriskNotInstalledError",
    "Prompt",
    "asterisk_prompts",
    "default_cache_dir",
    "load_asterisk",
    "load_named",
    "prepare",
    "prepare_asterisk",
]

SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
"""Where ``asterisk-core-sounds-en-g722`` installs the recordings."""
TRANSCRIPT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
"""Where ``asterisk-core-sounds-en`` installs the transcript."""
PACKAGES = ("asterisk-core-sounds-en", "asterisk-core-sounds-en-g722")
APT_COMMAND = "apt-get install -y " + " ".join(PACKAGES)
SHIPPED = Path(__file__).resolve().parents[3] / "datasets" / "asterisk"
"""The repository's folder with the precomputed word timings (``alignments.json``)."""
NAME = "asterisk"
ASTERISK_NAMES = ("asterisk", "asterisk-long", "asterisk-short")
"""Dataset names :func:`load_named` knows (``load_dataset`` takes each)."""

RECIPE_VERSION = 1  # bump when the output of the recipe changes for the same sources
LONG_MIN_SEC, LONG_MAX_SEC = 180.0, 300.0
LONG_PAUSE_SEC = 0.5
SHORT_EVERY = 8
LICENCE = "CC-BY-SA-3.0 (Allison Smith / Digium, Asterisk core sounds)"
_ALIGNER = "dtw-flite (slt, rms, awb, kal16; median)"
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)")

Log = Optional[Callable[[str], None]]


class AsteriskNotInstalledError(DatasetError, FileNotFoundError):
    """The Debian packages with the prompts are not installed."""


@dataclass(frozen=True)
class Prompt:
    """One speech clip of the package: its name (``digits/13``), text and ``.g722`` file."""

    name: str
    text: str
    path: Path

    @property
    def id(self) -> str:
        """The utterance id: the name with ``/`` as ``-`` (``digits-13``)."""
        return self.name.replace("/", "-")


def default_cache_dir() -> Path:
    """``$ASR_LAB_CACHE/datasets/asterisk``, else ``$XDG_CACHE_HOME`` or ``~/.cache`` + ``asr_lab/datasets/asterisk``."""
    base = os.environ.get("ASR_LAB_CACHE")
    if base:
        return Path(base) / "datasets" / "asterisk"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asr_lab" / "datasets" / "asterisk"


DEFAULT_DIR = str(default_cache_dir())
"""Where :func:`prepare` builds by default (``$ASR_LAB_CACHE`` or the user's cache folder, when imported)."""


def _check_installed(transcript: Path, sounds: Path) -> None:
    missing = [str(p) for p in (transcript, sounds) if not p.exists()]
    if missing:
        raise AsteriskNotInstalledError(
            f"the Asterisk prompts are not installed ({', '.join(missing)} not found); install them with "
            f"`{APT_COMMAND}` (Debian/Ubuntu; no download happens at build time)"
        )


def asterisk_prompts(transcript: Path = TRANSCRIPT, sounds: Path = SOUNDS) -> list[Prompt]:
    """The speech clips of the installed packages, in the transcript's order (tones and silences left out)."""
    _check_installed(transcript, sounds)
    prompts = []
    with gzip.open(transcript, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            name, sep, text = line.partition(":")
            if not sep:
                raise DatasetError(f"{transcript}, line {lineno}: {line!r:.80} is not 'name: text'")
            spoken = " ".join(_ANNOTATION.sub(" ", text).split())
            if not re.search(r"[A-Za-z0-9]", spoken):
                continue  # a tone or a silence
            path = sounds / f"{name.strip()}.g722"
            if path.is_file():  # the transcript lists one prompt the package does not ship
                prompts.append(Prompt(name.strip(), spoken, path))
    if not prompts:
        raise AsteriskNotInstalledError(f"no .g722 recordings under {sounds}; install them with `{APT_COMMAND}`")
    return prompts


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _package_versions() -> dict[str, str]:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *PACKAGES], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return {}
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def decode_g722(path: Path) -> np.ndarray:
    """A raw G.722 file as float32 16 kHz mono, decoded by ffmpeg."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise DatasetError("ffmpeg is needed to decode the G.722 prompts; install it: apt-get install -y ffmpeg")
    done = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-f", "g722", "-i", str(path), "-ar", "16000", "-ac", "1", "-f", "s16le", "-"],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0 or not done.stdout:
        raise DatasetError(f"ffmpeg could not decode {path}: {done.stderr.decode(errors='replace').strip()[:200]}")
    return np.frombuffer(done.stdout, dtype="<i2").astype(np.float32) / 32768.0


def _say(log: Log, message: str) -> None:
    if log is not None:
        log(message)


def _read_shipped(path: Path) -> dict:
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8")).get("clips", {})


def _read_partial(path: Path) -> dict:
    found = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by the interruption
                continue
            found[record.pop("name")] = record
    return found


def _align_clip(prompt: Prompt) -> tuple[Prompt, list | None, str]:
    return (prompt, *_align(decode_g722(prompt.path), prompt.text))


def _align_all(prompts: list[Prompt], jobs: int):
    """``(prompt, words, how)`` for each prompt, in order, aligned by ``jobs`` processes."""
    if jobs == 1 or len(prompts) < 2:
        yield from map(_align_clip, prompts)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs) as pool:
        yield from pool.map(_align_clip, prompts)


def _align(audio: np.ndarray, text: str) -> tuple[list | None, str]:
    from asr_lab.data.synth import SynthesisError
    from asr_lab.data.synthesis_alignment import align_by_synthesis

    try:
        alignment = align_by_synthesis(audio, text)
    except SynthesisError as err:
        return None, f"none: {err}"[:300]
    return [list(w) for w in alignment.words], _ALIGNER


def prepare(
    out_dir: str | os.PathLike | None = None,
    *,
    realign: bool = False,
    alignments: str | os.PathLike | None = None,
    jobs: int = 1,
    transcript: Path = TRANSCRIPT,
    sounds: Path = SOUNDS,
    log: Log = print,
) -> Dataset:
    """Build (or find up to date) the Asterisk sets in ``out_dir`` (default :func:`default_cache_dir`).

    Returns the ``asterisk`` set; ``asterisk-long`` is in ``out_dir/long``. ``alignments``
    is the word-timing file to reuse (default the shipped one); ``realign=True`` ignores it
    and aligns every clip again (minutes), then writes the new timings into
    ``out_dir/alignments.json`` (copy it to ``datasets/asterisk/`` to ship it). ``jobs``
    processes align in parallel; each aligned clip is appended to
    ``alignments.partial.jsonl`` at once, so an interrupted build resumes where it stopped.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise DatasetError(f"jobs must be a whole number of processes >= 1, got {jobs!r}; e.g. jobs=2")
    out = Path(out_dir) if out_dir is not None else default_cache_dir()
    prompts = asterisk_prompts(transcript, sounds)
    shipped_file = Path(alignments) if alignments else SHIPPED / "alignments.json"
    sources = {
        "recipe_version": RECIPE_VERSION,
        "alignments_sha256": _sha256(shipped_file) if shipped_file.is_file() else None,
        "packages": _package_versions(),
        "transcript_sha256": _sha256(transcript),
        "clips": {p.name: _sha256(p.path) for p in prompts},
    }
    state_file = out / "sources.json"
    previous = json.loads(state_file.read_text()) if state_file.is_file() else None
    manifest = out / "manifest.jsonl"
    if previous == sources and not realign and manifest.is_file() and (out / "long" / "manifest.jsonl").is_file():
        _say(log, f"asterisk: {out} is up to date ({len(prompts)} clips, sources unchanged)")
        return read_manifest(manifest, name="asterisk")
    if previous is not None and previous != sources:
        _say(log, f"asterisk: the installed packages differ from the build in {out}: {_changes(previous, sources)}; rebuilding")
    _say(log, f"asterisk: building {len(prompts)} clips from {sounds} into {out}")
    from asr_lab.data.build import _save_flac_atomic

    partial = out / "alignments.partial.jsonl"  # clips aligned by an interrupted build: kept, not redone
    earlier = {**_read_shipped(out / "alignments.json"), **_read_shipped(shipped_file)} if not realign else {}
    earlier.update(_read_partial(partial))
    todo = []
    for prompt in prompts:
        entry = earlier.get(prompt.name)
        if entry is None or entry.get("g722_sha256") != sources["clips"][prompt.name] or entry.get("text") != prompt.text:
            todo.append(prompt)
    if todo:
        _say(log, f"asterisk: aligning {len(todo)} clips with the synthesis aligner ({jobs} process(es); "
                  f"progress kept in {partial.name})")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    with open(partial, "a", encoding="utf-8") as progress:
        for k, (prompt, words, how) in enumerate(_align_all(todo, jobs), start=1):
            entry = {"g722_sha256": sources["clips"][prompt.name], "text": prompt.text, "timings": how, "words": words}
            earlier[prompt.name] = entry
            progress.write(json.dumps({"name": prompt.name, **entry}) + "\n")
            progress.flush()
            if k == 1 or k % 25 == 0 or k == len(todo):
                _say(log, f"  aligned {k}/{len(todo)} ({prompt.name})")
    timings: dict[str, dict] = {}
    utterances = []
    for prompt in prompts:
        sha = sources["clips"][prompt.name]
        audio = decode_g722(prompt.path)
        path = out / "audio" / f"{prompt.id}.flac"
        _save_flac_atomic(path, audio)
        entry = timings[prompt.name] = earlier[prompt.name]
        meta = {"kind": "utterance", "source": "asterisk", "name": prompt.name, "speaker": "allison-smith",
                "licence": LICENCE, "timings": entry["timings"], "g722_sha256": sha}  # fmt: skip
        utterances.append(Utterance(id=prompt.id, audio=str(path), text=prompt.text, duration=len(audio) / 16000,
                                    words=entry["words"], meta=meta))  # fmt: skip
    dataset = Dataset(utterances, name="asterisk", root=out)
    dataset.to_manifest(manifest)
    _write_long_forms(dataset, out / "long", log)
    (out / "alignments.json").write_text(_alignments_json(timings), encoding="utf-8")
    state_file.write_text(json.dumps(sources, indent=1) + "\n", encoding="utf-8")
    partial.unlink(missing_ok=True)
    timed = sum(u.words is not None for u in utterances)
    _say(log, f"asterisk: {len(utterances)} clips, {dataset.total_duration:.0f} s, {timed} with word timings "
              f"({len(todo)} aligned now, {len(utterances) - len(todo)} reused from the shipped or earlier timings)")  # fmt: skip
    return read_manifest(manifest, name="asterisk")


prepare_asterisk = prepare
"""The recipe's prepare step under a name that says which corpus."""


def _changes(previous: dict, now: dict) -> str:
    said = []
    if previous.get("recipe_version") != now["recipe_version"]:
        said.append(f"recipe version {previous.get('recipe_version')} -> {now['recipe_version']}")
    if previous.get("packages") != now["packages"]:
        said.append(f"package versions {previous.get('packages')} -> {now['packages']}")
    if previous.get("alignments_sha256") != now["alignments_sha256"]:
        said.append("the shipped word timings changed")
    if previous.get("transcript_sha256") != now["transcript_sha256"]:
        said.append("the transcript changed")
    old, new = previous.get("clips", {}), now["clips"]
    changed = sorted(n for n in new if n in old and old[n] != new[n])
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    for label, names in (("changed", changed), ("new", added), ("gone", removed)):
        if names:
            said.append(f"{len(names)} clips {label} (e.g. {', '.join(names[:3])})")
    return "; ".join(said) or "the build was incomplete"


def _alignments_json(timings: dict) -> str:
    """One clip per line, so a diff of the shipped file shows which clips moved."""
    lines = [f"  {json.dumps(name)}: {json.dumps(entry)}" for name, entry in timings.items()]
    header = json.dumps({"aligner": _ALIGNER, "licence": LICENCE, "recipe_version": RECIPE_VERSION})[:-1]
    return header + ', "clips": {\n' + ",\n".join(lines) + "\n}}\n"


def _write_long_forms(dataset: Dataset, folder: Path, log: Log) -> Dataset:
    """Streams of consecutive timed clips, of equal length near 4 minutes (3–5 minutes when there is that much)."""
    from asr_lab.data.build import build_long_form

    timed = [u for u in dataset if u.words is not None]
    total = sum(u.duration for u in timed) + LONG_PAUSE_SEC * max(len(timed) - 1, 0)
    n = max(1, round(total / ((LONG_MIN_SEC + LONG_MAX_SEC) / 2)))  # streams of equal length near 4 minutes
    groups: list[list[Utterance]] = [[] for _ in range(n)]
    position = 0.0
    for u in timed:  # a clip goes to the stream its middle falls in: consecutive clips, contiguous streams
        middle = position + u.duration / 2
        groups[min(int(middle / total * n), n - 1)].append(u)
        position += u.duration + LONG_PAUSE_SEC
    groups = [g for g in groups if g]
    streams = []
    for k, group in enumerate(groups):
        streams.append(
            build_long_form(group, folder / "audio" / f"asterisk-long-{k:02d}.flac", pause_sec=LONG_PAUSE_SEC, seed=0,
                            id=f"asterisk-long-{k:02d}", meta={"source": "asterisk", "licence": LICENCE,
                                                                 "timings": f"{_ALIGNER}, shifted"})  # fmt: skip
        )
    long = Dataset(streams, name="asterisk-long", root=folder)
    long.to_manifest(folder / "manifest.jsonl")
    _say(log, "asterisk-long: " + ", ".join(f"{s.id} {s.duration:.0f} s" for s in streams))
    return long


def load_named(name: str = "asterisk", out_dir: str | os.PathLike | None = None, *, log: Log = print) -> Dataset:
    """One of :data:`ASTERISK_NAMES`, built on first use into ``out_dir`` (default :func:`default_cache_dir`)."""
    if name not in ASTERISK_NAMES:
        raise DatasetError(f"unknown Asterisk set {name!r}; allowed: {', '.join(ASTERISK_NAMES)}")
    full = prepare(out_dir, log=log)
    if name == "asterisk":
        return full
    if name == "asterisk-long":
        return read_manifest(Path(full.root) / "long" / "manifest.jsonl", name="asterisk-long")
    return Dataset(list(full)[::SHORT_EVERY], name="asterisk-short", root=full.root)


load_asterisk = load_named
