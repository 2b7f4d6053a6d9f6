"""Public names of a package that are imported on first use (PEP 562).

``import asr_lab`` stays cheap (no engine, librosa, matplotlib or pandas) while
``asr_lab.load_dataset`` and friends still work as plain attributes: a package lists
``name -> defining module`` and installs the two module-level hooks made here.
:func:`callable_package` lets a package named after its main function (``asr_lab.compare``,
``asr_lab.replay``) be called as that function and still reached as a package.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any, Callable, Iterable, Mapping, MutableMapping, Optional


def lazy_exports(
    namespace: MutableMapping[str, Any],
    exports: Mapping[str, str],
    *,
    also_listed: Iterable[str] = (),
    extras: Optional[Mapping[str, str]] = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package whose ``globals()`` is ``namespace``.

    ``exports`` maps each public name to the module that defines it; the first access
    imports that module and caches the value in ``namespace``. ``__dir__`` lists the
    package's ``__all__`` plus ``also_listed`` (e.g. submodules worth discovering).
    ``extras`` maps a third-party module to the asr-lab extra that installs it, so that a
    missing optional dependency fails with the pip command that fixes it.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            value = getattr(importlib.import_module(module), name)
        except ImportError as exc:
            extra = (extras or {}).get(exc.name or "")
            if extra is None:
                raise
            raise ImportError(
                f"{package}.{name} needs {exc.name}, which is not installed; install it with: pip install 'asr-lab[{extra}]'"
            ) from exc
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace.get("__all__", ()), *also_listed})

    return __getattr__, __dir__


def callable_package(name: str, function: Callable[..., Any]) -> None:
    """Make the already-imported package ``name`` callable as ``function``.

    Without this, ``asr_lab.compare`` can be either the package or the function, never both:
    binding the function hides the package's modules (``asr_lab.replay.retime`` would raise
    AttributeError), and importing any submodule rebinds the attribute to the package. With
    it, ``asr_lab.compare(...)`` runs the comparison, ``asr_lab.compare.results`` is the
    module and ``from asr_lab.compare import compare`` is the function itself.
    ``inspect.signature`` and ``help`` follow ``__wrapped__`` to the function.

    The package's class gets ``function`` itself as ``__call__`` (a staticmethod), so a call
    adds no frame of its own: warnings the function raises with a ``stacklevel`` still point
    at the caller's line.
    """
    module = sys.modules[name]
    module.__class__ = type(f"CallablePackage[{name}]", (types.ModuleType,), {"__call__": staticmethod(function)})
    module.__wrapped__ = function
