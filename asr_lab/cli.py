"""``asr-lab``: the command line. Thin: it parses, calls the library, prints.

    asr-lab backends [--fields NAME]         list engines and whether they are installed (or one's config fields)
    asr-lab replay AUDIO --backend NAME      stream a file through an engine, printing emissions live
    asr-lab compare --dataset D --backend A --backend B --out DIR
                                             replay a dataset through several engines, write tables,
                                             traces and a summary (re-running resumes)
    asr-lab score TRACE --reference D        re-score saved traces (JSONL) against a dataset or a text
    asr-lab check MODULE:CLASS               run the conformance kit on your processor
    asr-lab serve [--backend NAME]           HTTP + WebSocket server (loopback unless --host)
    asr-lab dataset build|info|align         build the mini set or your own, describe, add word timings

A processor of one's own: ``--backend mymodule:MyLoader`` or ``--plugin mymodule`` (a module
that calls ``register_loader``). whisper_streaming's flags (``--vac``, ``--buffer_trimming_sec``,
``--comp_unaware``...) mean the same here, or are answered with the asr_lab spelling.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        _prepare(parser, args)
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, ImportError, OSError, KeyError) as exc:
        print(f"asr-lab {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _prepare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What every command shares: the log level, whisper_streaming's --comp_unaware, plugins."""
    if getattr(args, "log_level", None):
        logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "comp_unaware", False):
        if args.clock == "wall":
            parser.error("--comp_unaware (whisper_streaming's) is asr_lab's --clock unaware; it cannot go with --clock wall")
        args.clock = "unaware"
    from asr_lab.backends.registry import load_plugin

    for spec in getattr(args, "plugin", None) or []:
        load_plugin(spec)
    backends = getattr(args, "backend", None)
    for name in backends if isinstance(backends, list) else [backends]:
        if name and ":" in name:
            load_plugin(name)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr-lab", description="A laboratory for streaming speech recognition.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    b = sub.add_parser("backends", help="list the engines this installation knows")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.add_argument("--fields", metavar="NAME", help="list backend NAME's config fields: type, default, description")
    _add_plugin_option(b)
    b.set_defaults(run=_backends)

    w = sub.add_parser("models", help="list the Whisper model names this machine can resolve, and from where")
    w.add_argument("--json", action="store_true", help="print JSON instead of a table")
    w.add_argument("--cache-dir", default=None, help="asr_lab's model cache (default ~/.cache/asr_lab/models)")
    w.set_defaults(run=_models)

    r = sub.add_parser("replay", help="stream an audio file through one engine, printing emissions as they appear")
    r.add_argument("audio", help="audio file (wav, flac, mp3, ogg)")
    _add_engine_options(r, clock=True)
    _add_clock_options(r)
    r.add_argument("--trace", metavar="FILE", help="also write the trace as JSONL")
    r.set_defaults(run=_replay)

    m = sub.add_parser("compare", help="replay a dataset through several engines and score them")
    m.add_argument("--dataset", required=True,
                   help="dataset folder or manifest (e.g. datasets/mini), or a named set: librivox, mini, asterisk, "
                        "asterisk-long, asterisk-short (the asterisk sets are built on first use: `asr-lab dataset asterisk`)")
    m.add_argument("--backend", action="append", default=[],
                   help="a backend to compare, with its defaults (repeatable); MODULE:LOADER for a loader of your own")
    _add_plugin_option(m)
    m.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="JSON file: one config, or {name: config, ...} (repeatable)")
    m.add_argument("--set", metavar="FIELD=VALUE", action="append", default=[], help="override a field in every config")
    _add_whisper_streaming_options(m, clock=True)
    _add_clock_options(m)
    m.add_argument("--repeats", type=_whole(1), default=1, help="run everything N times for run-to-run spread")
    m.add_argument("--workers", type=_whole(0), default=0,
                   help="worker processes, each engine with usable cores / N threads (0: run in this process)")
    m.add_argument("--dask", metavar="ADDRESS", help="run on a Dask cluster (scheduler address, or 'local')")
    m.add_argument("--limit", type=_whole(1), default=None, help="only the first N utterances (N >= 1)")
    m.add_argument("--streaming-penalty", dest="streaming_penalty", action="store_true",
                   help="also run each system offline on each whole utterance: streaming − offline WER with its "
                        "paired bootstrap in summary.md")
    m.add_argument("--normalizer", default=None, choices=("whisper-english", "whisper-basic", "basic", "none"),
                   help="text normaliser for WER/CER (default: whisper-english, Whisper's English normaliser)")
    m.add_argument("--out", default="runs/compare", help="output folder; its cache makes a re-run resume (default: runs/compare)")
    m.set_defaults(run=_compare)

    k = sub.add_parser("calibrate", help="measure engines on this machine and write its cost profile (for --compute profile)")
    k.add_argument("--dataset", required=True, help="dataset folder or manifest to measure on (e.g. datasets/librivox)")
    k.add_argument("--backend", action="append", default=[], help="a backend to calibrate, with its defaults (repeatable)")
    k.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="JSON file: one config, or {name: config, ...} (repeatable)")
    k.add_argument("--set", metavar="FIELD=VALUE", action="append", default=[], help="override a field in every config")
    _add_whisper_streaming_options(k)
    k.add_argument("--machine", default=None, help="the machine's name in the profile (default: the host name)")
    k.add_argument("--compute", choices=("cpu", "process", "wall"), default="cpu",
                   help="the measure fitted: cpu (default: process CPU time, elapsed for engines that wait) or wall")
    k.add_argument("--repeats", type=_whole(1), default=1, help="measure everything N times")
    k.add_argument("--limit", type=_whole(1), default=None, help="only the first N utterances (N >= 1)")
    k.add_argument("--out", required=True, help="profile file to write, e.g. configs/profiles/NAME.json")
    k.set_defaults(run=_calibrate)

    v = sub.add_parser("serve", help="serve engines over HTTP + WebSocket (POST /load_model, WS /asr, a page at /)")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only; 0.0.0.0 exposes it)")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--max-connections", type=int, default=16, help="concurrent streams; more are refused with close code 1013 (default: 16)")
    v.add_argument(
        "--max-pending-sec", type=float, default=30.0,
        help="seconds of audio a stream may queue for its engine before new chunks are dropped and counted (default: 30)",
    )
    v.add_argument(
        "--max-lag-sec", type=float, default=10.0,
        help="an engine this many seconds behind real time has new chunks dropped, counted and reported to the client "
             "(an 'overload' event; new streams are refused meanwhile): this bounds the lag (default: 10)",
    )
    v.add_argument("--token", nargs="?", const="auto", default=None,
                   help="require this token on every request (no value: a random one, printed in the URL)")
    v.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="also accept pages from this origin, e.g. https://my.app (repeatable; '*' for any)")
    v.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer to this Host name (repeatable; '*' for any). IP addresses and loopback names are always "
                        "answered; with --host 0.0.0.0 a DNS name (box.lan) must be named here, which stops DNS rebinding")
    v.add_argument("--idle-timeout-sec", type=float, default=30.0, help="close a stream that sends nothing this long (default: 30)")
    v.add_argument("--tcp-port", type=int, default=None, metavar="N",
                   help="also speak whisper_streaming's raw TCP protocol on port N (16 kHz int16 PCM in, 'beg_ms end_ms text' lines out)")
    v.add_argument("--engine-processes", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes running the engines, so decoding never stalls the server (default: %(default)s; "
                        "0: threads of the server process, for engines that cannot be pickled)")
    _add_engine_options(v)
    v.set_defaults(run=_serve)

    d = sub.add_parser("dataset", help="build, describe and align datasets")
    dsub = d.add_subparsers(dest="dataset_command", required=True, metavar="build|info|align|asterisk")
    db = dsub.add_parser("build", help="build the mini set, or a dataset from a sentence file (flite/espeak-ng + alignment)")
    db.add_argument("out_dir", nargs="?", default="datasets/mini")
    db.add_argument("--sentences", help="text file, one sentence per line (default: the mini set's sentences)")
    db.add_argument("--voices", default=None, help="comma-separated voice names (flite default: slt,rms,awb,kal16)")
    db.add_argument("--engine", default="flite", choices=("flite", "espeak-ng"))
    db.add_argument("--no-align", action="store_true", help="skip forced alignment (no word times)")
    di = dsub.add_parser("info", help="counts, durations, voices, word timings of a dataset")
    di.add_argument("source")
    di.add_argument("--json", action="store_true")
    da = dsub.add_parser("align", help="add word timings by forced alignment (pocketsphinx)")
    da.add_argument("source")
    da.add_argument("--out", required=True, help="manifest file or folder to write")
    da.add_argument("--overwrite", action="store_true", help="re-align utterances that already have words")
    dt = dsub.add_parser("asterisk", help="build the Asterisk prompt sets from the installed Debian packages (idempotent)")
    dt.add_argument("--out", default=None, help="folder to build in (default: ~/.cache/asr_lab/datasets/asterisk)")
    dt.add_argument("--realign", action="store_true", help="align every clip again instead of using the shipped timings")
    dt.add_argument("--jobs", type=_whole(1), default=1, help="processes aligning in parallel (with --realign)")
    d.set_defaults(run=_dataset)

    sc = sub.add_parser("score", help="re-score saved traces (JSONL) against a reference, with compare's metrics")
    sc.add_argument("traces", nargs="+", metavar="TRACE", help="trace file(s) written by replay --trace or compare (traces/)")
    ref = sc.add_mutually_exclusive_group(required=True)
    ref.add_argument("--reference", metavar="DATASET",
                     help="dataset folder or manifest holding the utterance (its text and word timings)")
    ref.add_argument("--text", help="the reference text itself (then latency against reference times is unavailable)")
    sc.add_argument("--utterance", metavar="ID", help="the utterance's id in --reference (default: the trace's own, or its audio file)")
    sc.add_argument("--json", action="store_true", help="print one JSON row per trace (every metric) instead of the table")
    sc.set_defaults(run=_score)

    c = sub.add_parser("check", help="run the conformance kit on a processor class or a backend")
    c.add_argument("target", help="MODULE:CLASS (a zero-argument ASRProcessor class or factory) or a backend name")
    c.add_argument("--audio", help="speech to use (default: the bundled sample)")
    c.set_defaults(run=_check)
    return p


def _add_plugin_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (from the current folder or PYTHONPATH); it registers its backends with "
                        "asr_lab.register_loader (repeatable)")


def _add_engine_options(p: argparse.ArgumentParser, clock: bool = False) -> None:
    p.add_argument("--backend", default=None,
                   help="registered backend name (asr-lab backends lists them), or MODULE:LOADER for a loader of your own")
    _add_plugin_option(p)
    p.add_argument("--config", metavar="FILE", help="JSON file with an engine configuration (ASRConfig fields)")
    p.add_argument("--set", metavar="FIELD=VALUE", action="append", default=[], help="override one config field (repeatable)")
    _add_whisper_streaming_options(p, clock=clock)


def _add_whisper_streaming_options(p: argparse.ArgumentParser, clock: bool = False) -> None:
    """whisper_streaming's flags (whisper_online.py's add_shared_args and main), with their asr_lab meaning:
    each sets the config field of the same name; the ones asr_lab has no use for say what to do instead."""
    p.add_argument("--model", help="model name or path (the config field 'model'), e.g. tiny.en or large-v3")
    p.add_argument("--lan", "--language", dest="lan", help="source language code (the config field 'lan'), e.g. en, de, auto")
    p.add_argument("--min-chunk-size", type=_seconds, metavar="SEC",
                   help="seconds of audio per engine step (the config field 'min_chunk_size'), in (0, 60]")
    p.add_argument("--min_chunk_size", dest="min_chunk_size", type=_seconds, help=argparse.SUPPRESS)  # whisper_streaming's spelling
    p.add_argument("--task", choices=("transcribe", "translate"), help="the config field 'task'")
    p.add_argument("--model_cache_dir", "--model-cache-dir", dest="model_cache_dir", metavar="DIR", help="the config field 'model_cache_dir'")
    p.add_argument("--model_dir", "--model-dir", dest="model_dir", metavar="DIR", help="the config field 'model_dir' (a local model folder)")
    p.add_argument("--buffer_trimming", "--buffer-trimming", dest="buffer_trimming", choices=("segment", "sentence"),
                   help="the config field 'buffer_trimming' (LocalAgreement backends)")
    p.add_argument("--buffer_trimming_sec", "--buffer-trimming-sec", dest="buffer_trimming_sec", type=_positive, metavar="SEC",
                   help="the config field 'buffer_trimming_sec' (LocalAgreement backends)")
    p.add_argument("--vac", action="store_const", const=True, default=None,
                   help="voice-activity-controlled streaming: the config field 'vac' (Whisper backends)")
    p.add_argument("--vac-chunk-size", "--vac_chunk_size", dest="vac_chunk_size", type=_positive, metavar="SEC",
                   help="the config field 'vac_chunk_size'")
    p.add_argument("--vad", action="store_const", const=True, default=None,
                   help="the engine's own voice-activity filter: the config field 'vad' (faster-whisper)")
    p.add_argument("-l", "--log-level", "--log_level", dest="log_level", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                   help="Python logging level")
    if clock:
        p.add_argument("--comp_unaware", "--comp-unaware", dest="comp_unaware", action="store_true",
                       help="whisper_streaming's computation-unaware simulation: the same as --clock unaware")
    else:
        _answered(p, "--comp_unaware", "--comp-unaware", answer="this command has no replay clock; --comp_unaware "
                  "(= --clock unaware) belongs to asr-lab replay and asr-lab compare", nargs=0)
    _answered(p, "--offline", answer="asr_lab always streams; for the whole-file transcript replay with one big step: "
              "--chunk-sec 60 (or compare the final text of the streaming trace)", nargs=0)
    _answered(p, "--start_at", "--start-at", answer="asr_lab replays a file from its start; cut it first, e.g. "
              "`sox in.wav out.wav trim 30` (or ffmpeg -ss 30)", nargs=1)
    _answered(p, "--warmup-file", "--warmup_file", answer="asr_lab warms the engine up itself (replay's warm-up, kept out "
              "of the compute figures); drop the flag", nargs=1)


class _Answer(argparse.Action):
    """A whisper_streaming flag asr_lab does not take: the error says what to write instead."""

    def __init__(self, option_strings, dest, answer: str = "", **kwargs) -> None:
        self.answer = answer
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error(f"{option_string} is whisper_streaming's flag; in asr_lab: {self.answer}")


def _answered(p: argparse.ArgumentParser, *flags: str, answer: str, nargs: int) -> None:
    p.add_argument(*flags, action=_Answer, answer=answer, nargs=nargs, dest=f"_answered_{flags[0].strip('-')}",
                   default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _add_clock_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clock", choices=("wall", "virtual", "unaware"), default="virtual",
                   help="wall: real time; virtual: same latencies without waiting (default); unaware: compute ignored")
    p.add_argument("--chunk-sec", type=_seconds, default=None, metavar="SEC",
                   help="seconds of new audio per step, in (0, 60] (default: the engine's own min chunk)")
    p.add_argument("--speed", type=_positive, default=1.0, help="stream seconds per wall second (> 0)")
    p.add_argument("--compute", choices=("wall", "cpu", "thread", "process", "profile"), default=None,
                   help="what a call costs on the virtual clock: cpu (default; reproduces on a busy machine), wall "
                   "(elapsed; for GPU or remote engines) or profile (a machine's fitted cost model, --profile; the "
                   "same numbers wherever they are recomputed)")
    p.add_argument("--profile", metavar="FILE", default=None,
                   help="cost profile for --compute profile (configs/profiles/*.json; made by asr-lab calibrate)")


def _seconds(text: str) -> float:
    """argparse type: seconds in (0, 60]."""
    value = _number(text)
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError(f"{text} is out of range: give seconds in (0, 60], e.g. 0.5")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is out of range: give a number > 0, e.g. 1.0")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    return value


def _whole(minimum: int):
    """argparse type: a whole number >= minimum."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is out of range: give a whole number >= {minimum}")
        return value

    return parse


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("asr-lab")
    except PackageNotFoundError:
        return "(not installed)"


def _shortcuts(args: argparse.Namespace) -> dict:
    """The config fields set by whisper_streaming's flags (--model, --lan, --min-chunk-size, --vac...)."""
    fields = {k: getattr(args, k, None) for k in SHORTCUT_FIELDS}
    return {k: v for k, v in fields.items() if v is not None}


SHORTCUT_FIELDS = ("model", "lan", "min_chunk_size", "task", "model_cache_dir", "model_dir", "buffer_trimming",
                   "buffer_trimming_sec", "vac", "vac_chunk_size", "vad")


def engine_config(args: argparse.Namespace) -> dict:
    """The configuration dict from --config, --backend and --set options."""
    config: dict = {}
    if args.config:
        path = Path(args.config)
        if not path.exists():
            raise FileNotFoundError(f"--config file not found: {args.config}")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"--config {args.config} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
                f"cannot be decoded; save the file as UTF-8 JSON"
            ) from None
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--config {args.config} is not valid JSON: {exc}") from None
        if not isinstance(config, dict):
            raise ValueError(f"--config {args.config} must hold a JSON object of config fields")
    if args.backend:
        config["backend"] = args.backend
    config.update(_shortcuts(args))
    for item in args.set:
        field, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r} must look like FIELD=VALUE, e.g. --set beam_size=1")
        try:
            config[field.strip()] = json.loads(value)
        except json.JSONDecodeError:
            config[field.strip()] = value
    return config


def _backends(args) -> int:
    from asr_lab.backends.registry import available_backends

    if args.fields:
        return _backend_fields(args.fields, as_json=args.json)
    rows = available_backends()
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    width = max(len(r.name) for r in rows)
    for r in rows:
        state = "installed" if r.installed else (f"missing: {r.install}" if r.install else f"broken: {r.error}")
        print(f"{r.name:<{width}}  {r.source:<10}  {state:<10}  {r.description}")
    return 0


def _models(args) -> int:
    from dataclasses import asdict

    from asr_lab.backends.models import available_models

    rows = available_models(args.cache_dir)
    if args.json:
        print(json.dumps([{**asdict(r), "available": r.available} for r in rows], indent=2))
        return 0
    width = max(len(r.name) for r in rows)
    for r in rows:
        where = "  ".join(x for x in (r.location, f"({r.detail})" if r.detail else "") if x)
        print(f"{r.name:<{width}}  {r.kind:<13}  {where}")
    return 0


def _backend_fields(name: str, as_json: bool = False) -> int:
    from asr_lab.backends.registry import get_loader
    from asr_lab.core.config import ASRConfig

    config_class = getattr(get_loader(name), "config_class", None) or ASRConfig
    rows = []
    for field, info in config_class.model_fields.items():
        default = info.get_default(call_default_factory=True) if not info.is_required() else "(required)"
        rows.append({"field": field, "type": _type_name(info.annotation), "default": default,
                     "description": info.description or ""})
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(f"# {name}: {config_class.__name__} (set with --set FIELD=VALUE or a --config JSON file)")
    wf, wt, wd = (max(len(str(r[k])) for r in rows) for k in ("field", "type", "default"))
    for r in rows:
        print(f"{r['field']:<{wf}}  {r['type']:<{wt}}  {str(r['default']):<{min(wd, 24)}}  {r['description']}")
    return 0


def _type_name(annotation) -> str:
    name = getattr(annotation, "__name__", None)
    text = name if name and not getattr(annotation, "__args__", None) else str(annotation)
    return text.replace("typing.", "").replace("NoneType", "None")


def _replay(args) -> int:
    from asr_lab.backends.registry import load_processor
    from asr_lab.core.audio import load_audio
    from asr_lab.replay import replay

    from asr_lab.compare import step_for

    audio = load_audio(args.audio)  # a bad file fails before an engine is loaded
    if args.trace:
        _check_output_file(args.trace, "--trace")
    processor, meta = load_processor(engine_config(args))
    step = step_for(processor, args.chunk_sec, meta.get("config", {}).get("min_chunk_size"))
    print(f"# {meta['backend']} on {args.audio}, clock={args.clock}", file=sys.stderr)
    print(f"{'emitted':>8} {'start':>7} {'end':>7}  text")

    def show(e):
        print(f"{e.emitted_at:8.2f} {e.start:7.2f} {e.end:7.2f}  {e.text.strip()}", flush=True)

    trace = replay(
        processor, audio, clock=args.clock, chunk_sec=step, speed=args.speed, compute=args.compute, profile=args.profile,
        separator=meta.get("separator"), on_emission=show, meta={"backend": meta["backend"], "source": args.audio},
    )
    if args.trace:
        _save_trace(trace, args.trace)
    lat = [e.latency for e in trace.emissions]
    summary = f"# {len(trace.emissions)} segments, {trace.duration:.1f} s audio, RTF {trace.rtf:.3f}"
    if lat:
        summary += f", latency after segment end: median {sorted(lat)[len(lat) // 2]:.2f} s, max {max(lat):.2f} s"
    print(summary, file=sys.stderr)
    print(trace.text)
    if trace.error:
        print(f"error: {trace.error}", file=sys.stderr)
        return 1
    return 0


def compare_configs(args: argparse.Namespace) -> dict:
    """``{name: config}`` from repeated --backend and --config options, with --set applied."""
    systems: dict = {}
    for name in args.backend:
        systems[name] = {"backend": name}
    for file in args.config:
        data = engine_config(argparse.Namespace(config=file, backend=None, set=[]))
        if "backend" in data or not all(isinstance(v, dict) for v in data.values()):
            systems[Path(file).stem] = data
        else:
            systems.update(data)
    if not systems:
        raise ValueError("nothing to compare: give --backend NAME and/or --config FILE (repeatable)")
    overrides = engine_config(argparse.Namespace(config=None, backend=None, set=args.set, **_shortcuts(args)))
    return {name: {**cfg, **overrides} for name, cfg in systems.items()}


def _compare(args) -> int:
    from asr_lab.compare import compare
    from asr_lab.data import load_dataset

    systems = compare_configs(args)
    dataset = load_dataset(args.dataset)
    utterances = list(dataset)[: args.limit] if args.limit is not None else dataset
    out = _output_folder(args.out, "--out")  # before any run: a bad --out must not cost the runs
    executor, closer = _executor(args)
    import warnings

    from asr_lab.compare.runner import NOT_STARTED

    try:
        with warnings.catch_warnings():  # a system that cannot start is printed below, once
            warnings.filterwarnings("ignore", message="system .* cannot start", category=RuntimeWarning)
            results = compare(
                systems, utterances, clock=args.clock, chunk_sec=args.chunk_sec, speed=args.speed,
                repeats=args.repeats, executor=executor, cache_dir=out / "cache", compute=args.compute,
                workers=0 if args.dask else args.workers, profile=args.profile, offline=args.streaming_penalty,
                normalize=args.normalizer,
            )
    finally:
        closer()
    from asr_lab import plots

    said: set = set()
    for r in results.failures:  # first, before any table: what went wrong, where
        if r.error and r.error.startswith(NOT_STARTED):  # checked once before any run: said once
            if r.system not in said:
                said.add(r.system)
                n = sum(1 for x in results.failures if x.system == r.system and x.error == r.error)
                print(f"failed: {r.system} (none of its {n} runs started): {r.error[len(NOT_STARTED):]}", file=sys.stderr)
            continue
        print(f"failed: {r.system} / {r.utterance} (repeat {r.repeat}): {r.error}", file=sys.stderr)
    print(f"# {results.from_cache} of {len(results.records)} runs from cache ({out / 'cache'})", file=sys.stderr)
    results.to_files(out)
    if len(results.failures) == len(results.records):
        print(f"asr-lab compare: error: all {len(results.records)} runs failed (see above); "
              f"nothing to score or plot. Wrote {out}/summary.md with the failures.", file=sys.stderr)
        return 1
    figures = plots.save_all(results, out)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(results.table())
        if args.streaming_penalty:
            print(results.streaming_penalty())
    print(f"# WER normaliser: {results.normalizer}", file=sys.stderr)
    names = ", ".join(f.name for f in figures)
    print(f"# wrote {out}/summary.md, summary.csv, utterances.csv, traces/" + (f", {names}" if names else ""), file=sys.stderr)
    return 1 if results.failures else 0


def _calibrate(args) -> int:
    from asr_lab.data import load_dataset
    from asr_lab.replay.calibrate import calibrate

    systems = compare_configs(args)
    dataset = load_dataset(args.dataset)
    utterances = list(dataset)[: args.limit] if args.limit is not None else list(dataset)
    _check_output_file(args.out, "--out")
    command = "asr-lab calibrate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else ""
    profile = calibrate(systems, utterances, machine=args.machine, compute=args.compute, repeats=args.repeats,
                        out=args.out, command=command)
    print(f"# cost profile {profile.name!r} ({profile.digest}) written to {args.out}; measured {profile.measure}", file=sys.stderr)
    for e in profile.engines.values():
        f = e.fit
        coef = ", ".join(f"{k} {v:.4g}" for k, v in e.coefficients.items())
        print(f"{e.system}: {f['steps']} steps, R² {f['r2']}, median step error {f['median_rel_error']}, "
              f"predicted/measured total {f['total_ratio']}; seconds per unit: {coef}")
    return 0


def _executor(args):
    if args.dask:
        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=args.workers or 2, threads_per_worker=1) if args.dask == "local" else None
        client = Client(cluster or args.dask)

        def close():
            client.close()
            if cluster is not None:
                cluster.close()

        return client.get_executor(), close
    return None, lambda: None  # --workers N: compare() runs its own pool, engine threads sized for it


def _dataset(args) -> int:
    from asr_lab.data import build
    from asr_lab.data.recipes import mini
    from asr_lab.data.synth import SynthesisError

    from asr_lab.data.dataset import DatasetError

    try:
        _dataset_command(args, build, mini)
    except (SynthesisError, DatasetError) as exc:  # a missing program, voice or package: a user error, not a bug
        print(f"asr-lab dataset: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _dataset_command(args, build, mini) -> None:
    if args.dataset_command == "build":
        if args.sentences:
            path = Path(args.sentences)
            if not path.exists():
                raise FileNotFoundError(f"--sentences file not found: {args.sentences}")
            lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if x.strip() and not x.lstrip().startswith("#")]
            voices = None if args.voices is None else [v for v in args.voices.split(",") if v]
            ds = build.build_utterances(lines, args.out_dir, voices, args.engine, align=not args.no_align, log=print)
            print(ds.info())
        else:
            mini.build_mini(args.out_dir, log=print)
    elif args.dataset_command == "info":
        print(build.dataset_info(args.source, as_json=args.json))
    elif args.dataset_command == "asterisk":
        from asr_lab.data.recipes.asterisk import prepare_asterisk

        print(prepare_asterisk(args.out, realign=args.realign, jobs=args.jobs, log=print).info())
    else:
        build.align_dataset(args.source, args.out, overwrite=args.overwrite, log=print)


def _serve(args) -> int:
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} is not a TCP port; give a number from 1 to 65535, e.g. --port 8000")
    if not args.max_lag_sec > 0:
        raise ValueError(f"--max-lag-sec {args.max_lag_sec}: give a positive number of seconds, e.g. 10")
    if args.max_connections < 1 or not args.max_pending_sec > 0:
        raise ValueError(
            f"--max-connections {args.max_connections} / --max-pending-sec {args.max_pending_sec}: "
            f"give at least 1 connection and a positive number of seconds"
        )
    if args.engine_processes < 0:
        raise ValueError(f"--engine-processes {args.engine_processes}: give 0 (in-process threads) or more")
    if not args.idle_timeout_sec > 0:
        raise ValueError(f"--idle-timeout-sec {args.idle_timeout_sec}: give a positive number of seconds, e.g. 30")
    if args.token is not None and not args.token.strip():
        raise ValueError(
            f"--token {args.token!r} is empty (an unset variable?), which would run without authentication; "
            f"give a token, or --token with no value for a random one, or leave --token out"
        )
    if args.tcp_port is not None and not (1 <= args.tcp_port <= 65535 and args.tcp_port != args.port):
        raise ValueError(f"--tcp-port {args.tcp_port} is not a free TCP port beside --port {args.port}; give another number from 1 to 65535")
    if args.tcp_port is not None and args.token:
        raise ValueError("--tcp-port with --token: whisper_streaming's raw TCP protocol has no place for a token, "
                         "so the port could not check it; leave one of them out")
    import uvicorn  # after the checks: a bad argument is named even where the server extra is missing

    from asr_lab.web.server import ServerSettings, create_app
    from asr_lab.web.access import allowed_hosts_for, log_config_masking_tokens

    token = secrets.token_urlsafe(24) if args.token == "auto" else args.token
    config = engine_config(args)
    settings = ServerSettings(
        max_connections=args.max_connections, max_pending_sec=args.max_pending_sec, idle_timeout_sec=args.idle_timeout_sec,
        max_lag_sec=args.max_lag_sec,
        allowed_hosts=allowed_hosts_for(args.host, args.allow_host), allowed_origins=tuple(args.allow_origin), token=token,
        engine_processes=args.engine_processes, tcp_port=args.tcp_port, tcp_host=args.host,
    )
    app = create_app(config or None, settings=settings)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"# listening on {args.host}: reachable from other machines" + ("" if token else "; consider --token"), file=sys.stderr)
    if token:
        print(f"# open http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}/?token={token}", file=sys.stderr)
    # no proxy headers: X-Forwarded-For must not rewrite the client the access rules see;
    # the token is masked in the access log
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", proxy_headers=False,
                log_config=log_config_masking_tokens())
    return 0


def _output_folder(path: str, option: str) -> Path:
    """``path`` as a folder that exists now (created), or ValueError naming the option and why not."""
    out = Path(path)
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{option} {path!r}: {str(parent)!r} is a file, not a folder; give a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{option} {path!r}: cannot create the folder ({exc.strerror}); give a writable folder") from None
    return out


def _check_output_file(path: str, option: str) -> None:
    """Fail now, not after the run, when ``path`` cannot be written as a file."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{option} {path!r} is a folder; give a file name, e.g. {option} {Path(path) / 'trace.jsonl'}")
    _output_folder(str(p.parent), f"{option}'s folder")


def _save_trace(trace, path: str) -> None:
    """Write the trace; if that fails after all, keep it in a temporary file and say where."""
    try:
        trace.to_jsonl(path)
    except OSError as exc:
        import tempfile

        fd, rescue = tempfile.mkstemp(prefix="asr-lab-trace-", suffix=".jsonl")
        with open(fd, "w", encoding="utf-8") as f:
            f.write(trace.to_jsonl())
        print(f"error: could not write --trace {path!r} ({exc.strerror}); the trace is saved in {rescue}", file=sys.stderr)


def _score(args) -> int:
    """Re-score saved traces: compare's table (one row per trace), or every metric as JSON."""
    from asr_lab.compare import Results, RunRecord
    from asr_lab.replay.trace import Trace

    traces = []
    for path in args.traces:
        if not Path(path).is_file():
            raise FileNotFoundError(f"trace file not found: {path} (write one with asr-lab replay --trace FILE, or take one "
                                    f"from a compare --out folder's traces/)")
        traces.append(Trace.from_jsonl(path))
    dataset = None
    if args.reference:
        from asr_lab.data import load_dataset

        dataset = load_dataset(args.reference)
    records, references = [], {}
    for path, trace in zip(args.traces, traces):
        if dataset is None:
            uid, reference = trace.meta.get("utterance") or Path(path).stem, args.text
        else:
            uid = _utterance_for(trace, path, dataset, args.utterance)
            reference = dataset[uid]
        system = trace.meta.get("system") or trace.meta.get("backend") or Path(path).stem
        name = system if len(traces) == 1 or system not in {r.system for r in records} else f"{system} ({Path(path).name})"
        records.append(RunRecord(name, uid, int(trace.meta.get("repeat", 0) or 0), str(path), trace))
        references[uid] = reference
    results = Results(records, references)
    if args.json:
        for row in results.utterances.to_dict(orient="records"):  # NaN (no such figure) becomes null
            print(json.dumps({k: None if isinstance(v, float) and v != v else v for k, v in row.items()}, default=str))
        return 0
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(results.table())
    for r in results.failures:
        print(f"failed: {r.system} / {r.utterance}: {r.error}", file=sys.stderr)
    return 1 if results.failures else 0


def _utterance_for(trace, path: str, dataset, given: Optional[str]) -> str:
    """The id of the utterance a trace replayed: --utterance, the trace's own, or its audio file's."""
    if given:
        dataset[given]  # KeyError naming the close ids
        return given
    uid = trace.meta.get("utterance")
    if uid and uid in dataset:
        return uid
    source = trace.meta.get("source")
    if source:
        for u in dataset:
            if u.audio and (Path(u.audio).resolve() == Path(source).resolve() or Path(u.audio).name == Path(source).name):
                return u.id
    raise ValueError(f"{path}: which utterance of {dataset.name!r} is this trace? It names "
                     f"{'utterance ' + repr(uid) if uid else 'no utterance'}{', audio ' + repr(source) if source else ''}; "
                     f"give --utterance ID (ids look like {dataset.ids[:3]})")


def _check(args) -> int:
    from asr_lab.testing import check_processor

    target = args.target
    if ":" in target:
        module_name, _, attr = target.partition(":")
        sys.path.insert(0, str(Path.cwd()))
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except AttributeError:
            raise ImportError(f"module {module_name!r} has no attribute {attr!r}") from None
    else:
        factory = {"backend": target}
    audio = None
    if args.audio:
        from asr_lab.core.audio import load_audio

        audio = load_audio(args.audio)
    report = check_processor(factory, audio)
    print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
