"""Recipe for the bundled ``datasets/mini`` set: sentences written for the project, spoken by flite.

Everyday English, one clause or two, using only words in pocketsphinx's en-us dictionary
(``cmudict-en-us.dict``) so forced alignment never meets an unknown word, and no digits or
abbreviations (the synthesisers would expand them differently from the text).
:func:`prepare` (:func:`build_mini`) speaks :data:`SENTENCES` as separate utterances and
joins :data:`LONG_FORM_A` / :data:`LONG_FORM_B` into two long streams. Changing a sentence
here and re-running ``python -m asr_lab.data.build datasets/mini`` rebuilds only what
changed.

Licence: the sentences were written for asr_lab, released with it under the project's licence.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from asr_lab.data.build import (
    DEFAULT_VOICES,
    Log,
    PathLike,
    _build_key,
    _previous_entries,
    _remove_stale,
    _reusable,
    _say,
    _sha256_file,
    _timings_source,
    build_long_form,
    build_utterances,
)
from asr_lab.data.dataset import MANIFEST_NAME, Dataset, Utterance, _write_text_if_changed, read_manifest

__all__ = ["DEFAULT_DIR", "LONG_FORM_A", "LONG_FORM_B", "NAME", "SENTENCES", "build_mini", "prepare"]

NAME = "mini"
DEFAULT_DIR = "datasets/mini"
"""Where the bundled copy lives (relative to the repository root)."""

SENTENCES: tuple[str, ...] = (
    "The train to the city leaves every morning at seven.",
    "Please put the milk back in the fridge when you are done.",
    "My sister bought a new bike for her birthday.",
    "It looks like it will rain later this afternoon.",
    "Could you turn the music down a little bit?",
    "We walked along the river until the sun went down.",
    "The doctor said I should drink more water.",
    "He left his keys on the kitchen table again.",
    "Our neighbors have a small dog that barks at night.",
    "I need to buy bread, eggs and cheese at the store.",
    "The meeting has been moved to next Tuesday.",
    "She reads the news on her phone every day.",
    "Let us take the bus because the car is broken.",
    "The children played in the garden all afternoon.",
    "Do you know where the nearest bank is?",
    "This soup tastes better with a little salt.",
    "The window in my room does not close properly.",
    "They are planning a trip to the mountains this summer.",
    "I forgot to send the letter to my uncle.",
    "The library closes early on Sunday.",
    "Can you help me carry these boxes upstairs?",
    "The coffee in this place is very good.",
    "We should leave now if we want to catch the last train.",
    "Please write your name at the top of the page.",
)
"""Short utterances: each spoken once, voices taken in turn (slt, rms, awb, kal16, ...)."""

LONG_FORM_A: tuple[str, ...] = (
    "Good morning and welcome to the weekly team meeting.",
    "First I would like to talk about the new office.",
    "The move will start on Monday and should take about two days.",
    "Everyone will get a new desk near the windows.",
    "Please pack your things in the boxes by Friday afternoon.",
    "The movers will take care of the heavy furniture.",
    "If you have any questions, send me a short message.",
    "Next, a few words about the project we started last month.",
    "The first part is almost finished and the results look good.",
    "We still need to test the system with more real users.",
    "Anna will write the plan for the second part.",
    "She will share it with the whole group next week.",
    "Finally, remember that the holiday party is in December.",
    "We are looking for people to help with the food and music.",
    "Thank you all for your hard work this year.",
    "That is all for today, so let us get back to work.",
)
"""A first long-form stream: a short talk at a team meeting."""

LONG_FORM_B: tuple[str, ...] = (
    "Yesterday I went to the market with my grandmother.",
    "We left the house early because she likes fresh bread.",
    "The streets were quiet and the air was cold.",
    "At the first stand we bought apples, pears and a few carrots.",
    "The man who sells fish told us a funny story about his boat.",
    "My grandmother laughed so hard that she almost dropped her bag.",
    "Then we stopped for a cup of tea at a small cafe.",
    "She told me about the town when she was a young girl.",
    "There were no cars, and everyone walked or rode a horse.",
    "Her father had a shop that sold shoes and hats.",
    "After the tea we walked home slowly through the park.",
    "The trees had turned yellow and red in the autumn sun.",
    "At home we made a big pot of vegetable soup.",
    "In the evening the whole family came for dinner.",
    "It was a simple day, but I will remember it for a long time.",
    "Next week we plan to visit the market again.",
)
"""A second long-form stream: a story about a day at the market."""

MINI_LONG_FORM_SEEDS = {"long-a": 11, "long-b": 23}


MINI_PAUSE_SEC = (0.6, 1.5)


def build_mini(out_dir: PathLike = "datasets/mini", *, log: Log = None) -> Dataset:
    """Build (or bring up to date) the bundled ``datasets/mini`` set and return it.

    Contents, from this module:

    * ``audio/``: the 24 :data:`SENTENCES`, voices slt, rms, awb, kal16 in turn
      (ids ``<voice>-<index>``), with their own ``manifest.jsonl``;
    * ``long/``: two long-form streams, ``long-a`` and ``long-b`` (16 other sentences
      each, the four voices in turn, 0.6–1.5 s pauses, fixed seeds), with their own
      ``manifest.jsonl``; their source utterances are built in a temporary folder and not kept;
    * ``manifest.jsonl``: both parts together (what ``load_dataset("datasets/mini")`` reads);
    * ``README.md``: how it was made, with the current counts and durations.

    Idempotent: unchanged outputs are reused (nothing synthesised or aligned), so a second
    run takes about a second and leaves every file untouched.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _say(log, f"building the mini set in {out}")
    short = build_utterances(SENTENCES, out / "audio", DEFAULT_VOICES, "flite", name="mini", log=log)

    long_dir = out / "long"
    long_dir.mkdir(exist_ok=True)
    long_manifest = long_dir / MANIFEST_NAME
    previous = _previous_entries(long_manifest, log)
    streams: list[Utterance] = []
    for stream_id, sentences, voices in (
        ("long-a", LONG_FORM_A, DEFAULT_VOICES),
        ("long-b", LONG_FORM_B, DEFAULT_VOICES[1:] + DEFAULT_VOICES[:1]),
    ):
        seed = MINI_LONG_FORM_SEEDS[stream_id]
        key = _build_key(
            kind="long_form",
            sentences=list(sentences),
            voices=list(voices),
            engine="flite",
            timings=_timings_source("flite"),
            pause_sec=list(MINI_PAUSE_SEC),
            seed=seed,
        )
        old = previous.get(stream_id)
        if _reusable(old, key, need_words=True):
            streams.append(old)
            continue
        with tempfile.TemporaryDirectory(prefix=f"asr_lab_{stream_id}_") as tmp:
            ids = [(f"{stream_id}-{i:02d}", s) for i, s in enumerate(sentences)]
            sources = build_utterances(ids, tmp, voices, "flite", log=log)
            stream = build_long_form(sources, long_dir / f"{stream_id}.flac", MINI_PAUSE_SEC, seed, id=stream_id)
        stream.meta.update(build_key=key, audio_sha256=_sha256_file(stream.audio))
        _say(log, f"  built {stream_id}.flac: {stream.duration:.1f} s from {len(sources)} utterances")
        streams.append(stream)
    _remove_stale(previous, streams, long_dir, log)
    Dataset(streams, name="mini-long", root=long_dir).to_manifest(long_manifest)

    combined = Dataset([*short, *streams], name="mini", root=out)
    manifest = combined.to_manifest(out / MANIFEST_NAME)
    dataset = read_manifest(manifest, name="mini")
    _write_text_if_changed(out / "README.md", _mini_readme(dataset, out))
    _say(log, dataset.info())
    return dataset


def _mini_readme(ds: Dataset, out: Path) -> str:
    short = ds.filter(kind="utterance")
    long = ds.filter(kind="long_form")
    size = sum(f.stat().st_size for f in out.rglob("*.flac"))
    used = {u.meta.get("voice") for u in short}
    voices = [v for v in DEFAULT_VOICES if v in used] + sorted(str(v) for v in used - set(DEFAULT_VOICES))
    long_lines = "\n".join(
        f"| `{u.id}` | {u.duration:.1f} s | {len(u.meta.get('sources', []))} | {len(u.words or [])} |" for u in long
    )
    return f"""# datasets/mini — a small synthetic speech set with word timings

Generated by the project (asr_lab); no recorded speech. Licence: the same as asr_lab's
(the sentences in `asr_lab/data/recipes/mini.py` were written for it; the audio is
machine-generated by the flite synthesiser).

## How it was made

1. Sentences: `asr_lab/data/recipes/mini.py` — everyday English, only words in
   pocketsphinx's en-us dictionary, numbers spelled out.
2. Speech: Debian `flite`, voices {", ".join(voices)} in turn, resampled to 16 kHz mono,
   stored as 16-bit FLAC.
3. Word timings: flite's own phone durations (`flite -psdur`), grouped into words by its
   lexicon (`asr_lab.data.synthesis_alignment.flite_words`): exact for this audio, and made by no
   recogniser (pocketsphinx, which the lab scores, used to time this set).
4. Long-form streams: other sentences spoken the same way, joined with random pauses of
   {MINI_PAUSE_SEC[0]}–{MINI_PAUSE_SEC[1]} s (fixed seeds); every word time is shifted into
   the stream and `meta.sources` lists where each source utterance lies.

Rebuild (idempotent — unchanged files are kept, only what changed is rebuilt):

    python -m asr_lab.data.build datasets/mini

Load: `asr_lab.load_dataset("datasets/mini")`; one part: `load_dataset("datasets/mini/audio")`
or `load_dataset("datasets/mini/long")`.

## Contents

| part | utterances | total | shortest | longest |
|---|---|---|---|---|
| `audio/` | {len(short)} | {short.total_duration:.1f} s | {_min_dur(short):.2f} s | {_max_dur(short):.2f} s |
| `long/` | {len(long)} | {long.total_duration:.1f} s | {_min_dur(long):.1f} s | {_max_dur(long):.1f} s |

| stream | duration | source utterances | word times |
|---|---|---|---|
{long_lines}

All {len(ds)} entries have word timings. Audio on disk: {size / 1e6:.2f} MB of FLAC.

## Manifest format (`manifest.jsonl`, one JSON object per line)

`id`, `audio` (path relative to the manifest's folder), `text`, `duration` (s),
`words` (`[[start, end, word], ...]` in seconds, or null), `meta` (voice, engine, kind
= utterance | long_form, sources, build_key, audio_sha256).
"""


def _min_dur(ds: Dataset) -> float:
    return min((u.duration or 0.0 for u in ds), default=0.0)


def _max_dur(ds: Dataset) -> float:
    return max((u.duration or 0.0 for u in ds), default=0.0)


def prepare(out_dir: PathLike = DEFAULT_DIR, *, log: Log = None) -> Dataset:
    """The recipe's prepare step: :func:`build_mini` (idempotent; returns the manifest-backed set)."""
    return build_mini(out_dir, log=log)
