"""``asr-lab``: the command line. Thin: it parses, calls the library, prints.

    asr-lab backends                         list engines and whether they are installed
    asr-lab replay AUDIO --backend NAME      stream a file through an engine, printing emissions live
    asr-lab check MODULE:CLASS               run the conformance kit on your processor
"""

from __future__ import annotations

import argparse
import importlib
import json
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
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, ImportError, FileNotFoundError, KeyError) as exc:
        print(f"asr-lab {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr-lab", description="A laboratory for streaming speech recognition.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    b = sub.add_parser("backends", help="list the engines this installation knows")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.set_defaults(run=_backends)

    r = sub.add_parser("replay", help="stream an audio file through one engine, printing emissions as they appear")
    r.add_argument("audio", help="audio file (wav, flac, mp3, ogg)")
    _add_engine_options(r)
    _add_clock_options(r)
    r.add_argument("--trace", metavar="FILE", help="also write the trace as JSONL")
    r.set_defaults(run=_replay)

    c = sub.add_parser("check", help="run the conformance kit on a processor class or a backend")
    c.add_argument("target", help="MODULE:CLASS (a zero-argument ASRProcessor class or factory) or a backend name")
    c.add_argument("--audio", help="speech to use (default: the bundled sample)")
    c.set_defaults(run=_check)
    return p


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default=None, help="registered backend name (asr-lab backends lists them)")
    p.add_argument("--config", metavar="FILE", help="JSON file with an engine configuration (ASRConfig fields)")
    p.add_argument("--set", metavar="FIELD=VALUE", action="append", default=[], help="override one config field (repeatable)")


def _add_clock_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clock", choices=("wall", "virtual", "unaware"), default="virtual",
                   help="wall: real time; virtual: same latencies without waiting (default); unaware: compute ignored")
    p.add_argument("--chunk-sec", type=float, default=None, help="seconds of new audio per step (default: the engine's min chunk)")
    p.add_argument("--speed", type=float, default=1.0, help="stream seconds per wall second")


def engine_config(args: argparse.Namespace) -> dict:
    """The configuration dict from --config, --backend and --set options."""
    config: dict = {}
    if args.config:
        path = Path(args.config)
        if not path.exists():
            raise FileNotFoundError(f"--config file not found: {args.config}")
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"--config {args.config} is not valid JSON: {exc}") from None
        if not isinstance(config, dict):
            raise ValueError(f"--config {args.config} must hold a JSON object of config fields")
    if args.backend:
        config["backend"] = args.backend
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

    rows = available_backends()
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    width = max(len(r.name) for r in rows)
    for r in rows:
        state = "installed" if r.installed else (f"missing: {r.install}" if r.install else f"broken: {r.error}")
        print(f"{r.name:<{width}}  {r.source:<10}  {state:<10}  {r.description}")
    return 0


def _replay(args) -> int:
    from asr_lab.backends.registry import load_processor
    from asr_lab.core.audio import load_audio
    from asr_lab.replay import replay

    audio = load_audio(args.audio)  # a bad file fails before an engine is loaded
    processor, meta = load_processor(engine_config(args))
    print(f"# {meta['backend']} on {args.audio}, clock={args.clock}", file=sys.stderr)
    print(f"{'emitted':>8} {'start':>7} {'end':>7}  text")

    def show(e):
        print(f"{e.emitted_at:8.2f} {e.start:7.2f} {e.end:7.2f}  {e.text.strip()}", flush=True)

    trace = replay(
        processor, audio, clock=args.clock, chunk_sec=args.chunk_sec, speed=args.speed,
        separator=meta.get("separator"), on_emission=show, meta={"backend": meta["backend"], "source": args.audio},
    )
    if args.trace:
        trace.to_jsonl(args.trace)
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
