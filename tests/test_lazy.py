"""Lazy public names (PEP 562): imported on first use, cached, and clear errors."""

import sys
import types

import pytest

from asr_lab.core.lazy import lazy_exports


def _package(exports, **kw):
    # a throwaway package namespace: only lazy_exports' behaviour is under test
    pkg = types.ModuleType("lazy_stand_in")
    pkg.__all__ = sorted(exports)
    pkg.__getattr__, pkg.__dir__ = lazy_exports(vars(pkg), exports, **kw)
    return pkg


def test_names_are_imported_on_first_use_and_cached():
    pkg = _package({"sqrt": "math", "dumps": "json"}, also_listed=("sub",))
    assert "sqrt" not in vars(pkg)
    import math

    assert pkg.sqrt is math.sqrt and vars(pkg)["sqrt"] is math.sqrt
    assert dir(pkg) == ["dumps", "sqrt", "sub"]
    with pytest.raises(AttributeError, match="'lazy_stand_in' has no attribute 'nope'"):
        pkg.nope


def test_a_missing_optional_dependency_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "not_installed_dep", None)  # import fails as if absent
    pkg = _package({"Thing": "not_installed_dep"}, extras={"not_installed_dep": "widgets"})
    with pytest.raises(ImportError, match=r"needs not_installed_dep.*pip install 'asr-lab\[widgets\]'"):
        pkg.Thing
    plain = _package({"Thing": "not_installed_dep"})
    with pytest.raises(ImportError) as info:
        plain.Thing
    assert "asr-lab[" not in str(info.value)
