"""The package's floors hold: no import cycles, and ``asr_lab.core`` imports nothing above it.

Imports are read from the source with :mod:`ast`, wherever they are (module level or inside a
function: a function-level import is still a dependency, only a later one), except under
``if TYPE_CHECKING:`` (never executed) and ``if __name__ == "__main__":`` (run as the script's
own ``__main__`` module, which nothing imports back).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "asr_lab"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _skipped(test: ast.expr) -> bool:
    text = ast.unparse(test)
    return text in ("TYPE_CHECKING", "typing.TYPE_CHECKING") or text.replace("'", '"') == '__name__ == "__main__"'


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every ``asr_lab`` name imported in ``tree``: ``from a import b`` gives ``a.b`` (a module or a name in ``a``)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _skipped(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.update(f"{source}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name == "asr_lab" or name.startswith("asr_lab.")}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name that is not a module maps to its module).

    The parent packages that Python also imports on the way are not edges: every submodule
    would otherwise form a cycle with its package's ``__init__``.
    """
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets = set()
        for imported in _imports(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py"):
            while imported not in files:  # `from asr_lab.x import SomeClass` -> asr_lab.x
                imported = imported.rpartition(".")[0]
            if imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None`` (depth-first search, colouring visited modules)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_core_imports_nothing_above_it():
    upward = {
        module: sorted(t for t in targets if not t.startswith("asr_lab.core"))
        for module, targets in import_graph().items()
        if module.startswith("asr_lab.core")
    }
    upward = {m: t for m, t in upward.items() if t}
    assert not upward, f"asr_lab.core imports modules above it: {upward}"


def test_the_checker_sees_cycles_through_function_level_imports(tmp_path):
    """The checker itself: a cycle made by an import inside a function is found and named."""
    pkg = tmp_path / "asr_lab"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from asr_lab.high import g\n")
    (pkg / "high.py").write_text("from asr_lab.low.a import f\nif __name__ == '__main__':\n    import asr_lab.cli\n")
    (pkg / "cli.py").write_text("import asr_lab.high\n")
    graph = import_graph(pkg)
    assert graph["asr_lab.high"] == {"asr_lab.low.a"}  # the __main__ block is not an edge
    assert find_cycle(graph) == ["asr_lab.high", "asr_lab.low.a", "asr_lab.high"]
    (pkg / "low" / "a.py").write_text("def f():\n    pass\n")
    assert find_cycle(import_graph(pkg)) is None


@pytest.mark.parametrize("name", ["asr_lab.compare", "asr_lab.replay"])
def test_a_package_named_after_its_function_is_both(name):
    """``asr_lab.compare(...)`` calls the function; ``asr_lab.compare.results`` is still the package's module."""
    import importlib
    import inspect

    import asr_lab

    package = getattr(asr_lab, name.rpartition(".")[2])
    function = getattr(importlib.import_module(name), name.rpartition(".")[2])
    assert package is importlib.import_module(name) and inspect.isfunction(function)
    assert callable(package) and package.__wrapped__ is function
    assert inspect.signature(package) == inspect.signature(function)
    submodule = {"asr_lab.compare": "results", "asr_lab.replay": "trace"}[name]
    assert getattr(package, submodule) is importlib.import_module(f"{name}.{submodule}")


def test_calling_a_package_adds_no_frame_so_warnings_point_at_the_caller(monkeypatch):
    import sys
    import types
    import warnings

    from asr_lab.core.lazy import callable_package

    def noisy():
        warnings.warn("from the function", RuntimeWarning, stacklevel=2)  # points at whoever called it
        return 7

    monkeypatch.setitem(sys.modules, "standin_package", types.ModuleType("standin_package"))
    callable_package("standin_package", noisy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert sys.modules["standin_package"]() == 7
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]
