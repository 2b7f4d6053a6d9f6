"""Backends by name: built-ins, entry-point plugins, and loaders registered at run time.

One list serves all three. A backend is a :class:`~asr_lab.ModelLoader` under a name;
``load_processor`` turns a configuration into a ready processor through it.

* Built-in backends import their engine only when first used, so ``import asr_lab`` stays
  light; a missing engine package is reported with the ``pip install`` that fixes it.
* Plugins are distributions that declare an entry point in the group ``asr_lab.backends``
  pointing at a loader instance or class. A plugin that fails to import is a warning,
  never a crash: the other backends keep working.
* ``register_loader(name, loader)`` (the seed's call) adds or replaces one at run time.
* ``load_plugin("mymodule")`` / ``load_plugin("mymodule:MyLoader")`` does it for a shell user
  (``asr-lab compare --plugin mymodule`` / ``--backend mymodule:MyLoader``), who cannot call
  ``register_loader``. Only the operator's own command line calls it: the server never imports
  a module a request names.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
import warnings
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from typing import Any, Optional, Union

from asr_lab.core.config import ASRConfig, ConfigError, config_from_json, parse_config
from asr_lab.core.protocols import ASRProcessor, ModelLoader

__all__ = [
    "BackendInfo",
    "MissingDependencyError",
    "UnknownBackendError",
    "available_backends",
    "call_loader",
    "check_config",
    "get_loader",
    "load_plugin",
    "load_processor",
    "register_loader",
    "unregister_loader",
]

ENTRY_POINT_GROUP = "asr_lab.backends"


class UnknownBackendError(KeyError):
    """No backend of that name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class MissingDependencyError(ImportError):
    """The backend exists but its engine package is not installed; the message says what to install."""


@dataclass(frozen=True)
class _Builtin:
    target: str  # "module:attribute" of the loader class
    description: str
    extra: str  # pip extra of the asr-lab distribution
    requires: tuple[str, ...]  # top-level modules the engine needs


_BUILTINS: dict[str, _Builtin] = {
    "pocketsphinx": _Builtin(
        "asr_lab.backends.pocketsphinx:PocketSphinxLoader",
        "CMU PocketSphinx, native streaming with partials and endpointing (bundled en-us model)",
        "pocketsphinx",
        ("pocketsphinx",),
    ),
    "pocketsphinx-la": _Builtin(
        "asr_lab.backends.pocketsphinx:PocketSphinxLALoader",
        "CMU PocketSphinx re-decoding the buffer under the LocalAgreement-2 policy",
        "pocketsphinx",
        ("pocketsphinx",),
    ),
    "faster-whisper": _Builtin(
        "asr_lab.backends.faster_whisper:FasterWhisperLoader",
        "Whisper on CTranslate2 (faster-whisper) under the LocalAgreement-2 policy",
        "faster-whisper",
        ("faster_whisper",),
    ),
    "openai-whisper": _Builtin(
        "asr_lab.backends.openai_whisper:OpenAIWhisperLoader",
        "Whisper on torch (openai-whisper): local-agreement, hold-n, stable-prefix or AlignAtt on one model",
        "openai-whisper",
        ("whisper", "torch"),
    ),
    "remote": _Builtin(
        "asr_lab.backends.remote:RemoteLoader",
        "a running server (asr_lab, WhisperLiveKit, WhisperLive, Deepgram-style, whisper_streaming TCP) streamed to in real time",
        "server",
        ("websockets",),
    ),
    "mlx-whisper": _Builtin(
        "asr_lab.backends.mlx_whisper:MLXWhisperLoader",
        "Whisper on Apple MLX (mlx-whisper; CPU on Linux) under the LocalAgreement-2 policy",
        "mlx",
        ("mlx_whisper", "mlx"),
    ),
}


@dataclass(frozen=True)
class BackendInfo:
    """One row of :func:`available_backends`."""

    name: str
    description: str
    installed: bool
    """Whether the engine it needs can be imported here."""
    source: str
    """``"builtin"``, ``"plugin"`` (an entry point) or ``"registered"`` (``register_loader``)."""
    install: str = ""
    """The command that installs the engine, when it is not installed."""
    error: str = ""
    """Why a plugin could not be loaded."""

    def to_dict(self) -> dict:
        return asdict(self)


_registered: dict[str, ModelLoader] = {}
_plugins: Optional[dict[str, Union[ModelLoader, Exception]]] = None
_plugin_targets: dict[str, str] = {}
_plugin_modules: dict[str, list[str]] = {}  # module name -> the backends its import registered


def register_loader(name: str, loader: ModelLoader) -> None:
    """Make ``loader`` available as backend ``name`` (replacing one of the same name).

    ``loader`` is an object with ``load(config) -> (processor, metadata)``; a class with
    such a method is instantiated with no arguments. Shadowing a built-in or plugin
    backend warns, because results would then be labelled with a name that used to mean
    another engine.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"backend name must be a non-empty string, not {name!r}")
    name = name.strip()
    loader = _as_loader(loader, where=f"register_loader({name!r}, ...)")
    if name not in _registered and (name in _BUILTINS or name in _discover_plugins()):
        warnings.warn(
            f"register_loader({name!r}) replaces the {'built-in' if name in _BUILTINS else 'plugin'} backend "
            f"of that name; pick another name to keep both",
            stacklevel=2,
        )
    _registered[name] = loader


def unregister_loader(name: str) -> None:
    """Remove a backend added with :func:`register_loader` (built-ins come back)."""
    if name not in _registered:
        raise UnknownBackendError(
            f"backend {name!r} was not added with register_loader; registered: {sorted(_registered) or 'none'}"
        )
    del _registered[name]


def get_loader(name: str) -> ModelLoader:
    """The loader registered as ``name``; imports a built-in engine on first use.

    Raises :class:`UnknownBackendError` (listing the known names) or
    :class:`MissingDependencyError` (naming the ``pip install`` command).
    """
    if name in _registered:
        return _registered[name]
    plugins = _discover_plugins()
    if name in plugins:
        plugin = plugins[name]
        if isinstance(plugin, Exception):
            raise ImportError(
                f"backend plugin {name!r} ({_plugin_targets.get(name, '?')}) failed to load: {plugin}. "
                f"Reinstall or fix the package that provides it."
            ) from plugin
        return plugin
    if name in _BUILTINS:
        return _load_builtin(name)
    known = sorted(set(_BUILTINS) | set(plugins) | set(_registered))
    close = [n for n in known if n.lower() == name.lower()] or difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownBackendError(
        f"unknown backend {name!r}.{hint} Known backends: {', '.join(known)}. "
        f"Register your own with asr_lab.register_loader(name, loader); from the shell, "
        f"--backend MODULE:LOADER or --plugin MODULE (a module that calls register_loader)."
    )


def load_plugin(spec: str) -> list[str]:
    """Backends from a module of one's own; returns the backend names it added.

    * ``"mymodule"``: import the module, which registers its loaders when imported
      (``asr_lab.register_loader("mine", MyLoader())`` at module level);
    * ``"mymodule:MyLoader"``: register the module's ``MyLoader`` (a loader class, made with no
      arguments, or an instance) as the backend ``"mymodule:MyLoader"``. A ``config_class``
      attribute on the loader declares its extra config fields, as for every backend.

    The current directory is searched first (as ``python -m`` does), then ``sys.path``.
    Calling it again with the same spec adds nothing and returns the same names.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"plugin {spec!r} is empty; give MODULE or MODULE:LOADER, e.g. mymodule:MyLoader")
    spec = spec.strip()
    module_name, sep, attr = spec.partition(":")
    if not module_name or (sep and not attr) or ":" in attr:
        raise ValueError(f"plugin {spec!r} is not MODULE or MODULE:LOADER; e.g. mymodule or mymodule:MyLoader")
    if sep and spec in _registered:
        return [spec]
    if not sep and module_name in _plugin_modules:
        return list(_plugin_modules[module_name])
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    before = set(_registered)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ImportError(
                f"plugin {spec!r}: no module named {exc.name!r} in {os.getcwd()} or on PYTHONPATH; run from the folder "
                f"that holds {module_name.split('.')[0]}.py, or add its folder to PYTHONPATH"
            ) from None
        raise
    if sep:
        try:
            obj = getattr(module, attr)
        except AttributeError:
            loaders = sorted(n for n, v in vars(module).items() if not n.startswith("_") and callable(getattr(v, "load", None)))
            raise ImportError(f"plugin {spec!r}: module {module_name!r} has no attribute {attr!r}; "
                              f"the loaders in it: {', '.join(loaders) or 'none'}") from None
        register_loader(spec, _as_loader(obj, where=f"plugin {spec!r}"))
        return [spec]
    added = sorted(set(_registered) - before)
    if not added:
        raise ValueError(
            f"plugin {spec!r}: importing module {module_name!r} registered no backend; call "
            f"asr_lab.register_loader('name', MyLoader()) in it at import time, or name the loader: --backend {module_name}:MyLoader"
        )
    _plugin_modules[module_name] = added
    return added


def available_backends() -> list[BackendInfo]:
    """Every backend this installation knows, with a description and whether it is usable."""
    rows: dict[str, BackendInfo] = {}
    for name, b in _BUILTINS.items():
        missing = [m for m in b.requires if importlib.util.find_spec(m) is None]
        rows[name] = BackendInfo(
            name, b.description, not missing, "builtin", install=_pip(b.extra) if missing else ""
        )
    for name, plugin in _discover_plugins().items():
        if isinstance(plugin, Exception):
            rows[name] = BackendInfo(name, f"plugin {_plugin_targets[name]}", False, "plugin", error=str(plugin))
        else:
            rows[name] = BackendInfo(name, _describe(plugin), True, "plugin")
    for name, loader in _registered.items():
        rows[name] = BackendInfo(name, _describe(loader), True, "registered")
    return list(rows.values())


def load_processor(config: Union[ASRConfig, dict, str, bytes], **overrides: Any) -> tuple[ASRProcessor, dict]:
    """Create the processor a configuration asks for: ``(processor, metadata)``.

    ``config`` is an :class:`~asr_lab.ASRConfig`, a dict or a JSON text (the seed's
    ``/load_model`` body); keyword ``overrides`` replace fields. The backend's loader may
    declare a ``config_class`` with extra fields, which then validates the input. The
    metadata always holds ``"separator"``, ``"backend"`` and ``"config"`` (a plain dict).
    """
    backend, loader, cfg = _parse(config, overrides)
    processor, meta = call_loader(loader, cfg, backend)
    meta = dict(meta)
    meta.setdefault("separator", getattr(getattr(processor, "asr", None), "sep", " "))
    meta.setdefault("backend", backend)
    meta.setdefault("config", cfg.model_dump())
    if getattr(processor, "cost_identity", None) is None:
        from asr_lab.replay.profile import cost_identity

        try:  # what a cost profile matches the processor by (asr_lab.replay.profile)
            processor.cost_identity = cost_identity(cfg)
        except (AttributeError, TypeError):  # a processor with __slots__: it can still declare one itself
            pass
    return processor, meta


def check_config(config: Union[ASRConfig, dict, str, bytes], **overrides: Any) -> ASRConfig:
    """Can a run of ``config`` start? Checked without loading a model, so that a comparison
    says it once, before any run, instead of once per utterance.

    The backend must be known and installed, the config valid for its config class, and the
    loader's own ``check(config)`` — when it has one: model files resolvable, the policy
    runnable on that engine — must pass. Returns the parsed config; raises the error a
    run would raise (:class:`UnknownBackendError`, :class:`MissingDependencyError`,
    :class:`~asr_lab.ConfigError`, :class:`~asr_lab.backends.models.ModelNotFoundError`...).
    """
    _, loader, cfg = _parse(config, overrides)
    check = getattr(loader, "check", None)
    if callable(check):
        check(cfg)
    return cfg


def _parse(config: Any, overrides: dict) -> tuple[str, ModelLoader, ASRConfig]:
    """``(backend, loader, config parsed by the loader's config class)``."""
    if isinstance(config, (str, bytes)):
        config = config_from_json(config)
    if isinstance(config, ASRConfig):
        data = config.model_dump(exclude_unset=True)
        data.setdefault("backend", config.backend)
    elif isinstance(config, dict):
        data = dict(config)
    else:
        raise ConfigError(
            f"config must be an ASRConfig, a dict or a JSON object, not {type(config).__name__}; "
            f'for example {{"backend": "pocketsphinx", "lan": "en"}}'
        )
    data.update(overrides)
    backend = parse_config({"backend": data.get("backend", ASRConfig.model_fields["backend"].default)}).backend
    loader = get_loader(backend)
    config_class = getattr(loader, "config_class", None) or ASRConfig
    return backend, loader, parse_config(data, config_class)


_PROCESSOR_METHODS = ("init", "insert_audio_chunk", "process_iter", "finish")


def call_loader(loader: Any, config: ASRConfig, backend: Optional[str] = None) -> tuple[ASRProcessor, dict]:
    """``loader.load(config)``, checked: it must return ``(processor, metadata)`` with an
    ASRProcessor and a dict. A TypeError names the backend, what came back and the fix
    (the seed's loaders return a pair; one that returns the bare processor is a common slip)."""
    name = f"backend {backend!r}" if backend else f"loader {type(loader).__name__}"
    result = loader.load(config)

    def lacks(obj: Any) -> list[str]:
        return [m for m in _PROCESSOR_METHODS if not callable(getattr(obj, m, None))]

    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        if not lacks(result):
            raise TypeError(
                f"{name}: {type(loader).__name__}.load() returned a bare {type(result).__name__}, not "
                f"(processor, metadata); return the processor with a metadata dict, e.g. "
                f'`return processor, {{"separator": " "}}`'
            )
        raise TypeError(
            f"{name}: {type(loader).__name__}.load() returned {type(result).__name__} ({result!r:.60}), not "
            f"(processor, metadata); a loader returns an ASRProcessor and a dict, e.g. `return processor, {{\"separator\": \" \"}}`"
        )
    processor, meta = result
    missing = lacks(processor)
    if missing:
        raise TypeError(
            f"{name} returned {type(processor).__name__}, which lacks {', '.join(missing)}: "
            f"a loader must return an ASRProcessor (see asr_lab.ASRProcessor)"
        )
    if not isinstance(meta, dict):
        raise TypeError(f"{name} returned metadata of type {type(meta).__name__}; a loader returns (processor, dict)")
    return processor, meta


def _pip(extra: str) -> str:
    return f"pip install 'asr-lab[{extra}]'"


def _load_builtin(name: str) -> ModelLoader:
    b = _BUILTINS[name]
    missing = [m for m in b.requires if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"backend {name!r} needs {', '.join(missing)}, which is not installed. Install it with: {_pip(b.extra)}"
        )
    module_name, attr = b.target.split(":")
    return getattr(importlib.import_module(module_name), attr)()


def _discover_plugins() -> dict[str, Union[ModelLoader, Exception]]:
    global _plugins
    if _plugins is None:
        found: dict[str, Union[ModelLoader, Exception]] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _plugin_targets[ep.name] = ep.value
            try:
                found[ep.name] = _as_loader(ep.load(), where=f"entry point {ep.name} = {ep.value}")
            except Exception as exc:  # a broken plugin must not break the others
                warnings.warn(
                    f"asr_lab backend plugin {ep.name!r} ({ep.value}) failed to load and is skipped: "
                    f"{type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                found[ep.name] = exc
        _plugins = found
    return _plugins


def refresh_plugins() -> None:
    """Look for entry-point plugins again (after installing one in a running kernel)."""
    global _plugins
    _plugins = None
    _plugin_targets.clear()


def _as_loader(obj: Any, where: str) -> ModelLoader:
    if isinstance(obj, type):
        obj = obj()
    if not callable(getattr(obj, "load", None)):
        raise TypeError(
            f"{where}: {obj!r} is not a ModelLoader; it needs a method load(config) -> (processor, metadata)"
        )
    return obj


def _describe(loader: Any) -> str:
    text = getattr(loader, "description", None) or (type(loader).__doc__ or "").strip().splitlines()[:1]
    return text if isinstance(text, str) else (text[0] if text else type(loader).__name__)
