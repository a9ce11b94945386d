"""The modules of ``benchmark/`` import each other without a cycle, counting imports inside functions too.

Edges are what :func:`benchmark.versions.module_imports` parses: ``import P.m`` and ``from P import m`` (m a
module) point at ``P.m``; ``from P import name`` (name defined or re-exported by ``P/__init__.py``) points at
the package ``P`` itself, so using a package's re-exports is an edge to its ``__init__``, and an ``__init__``
importing a submodule of its own package is an edge like any other. The implicit import of a parent package
that Python performs before a submodule runs is not an edge: otherwise every ``__init__`` that re-exports its
submodules would close a circle with each of them. Imports under ``if TYPE_CHECKING:`` never run and are
left out.
"""

from __future__ import annotations

from benchmark.versions import ROOT, module_imports


def benchmark_modules() -> list[str]:
    modules = []
    for path in sorted((ROOT / "benchmark").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def import_graph() -> dict[str, frozenset[str]]:
    return {m: module_imports(m) for m in benchmark_modules()}


def find_cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (iterative depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        stack = [iter(sorted(graph.get(start, ())))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_find_cycle_finds_one_and_accepts_a_dag() -> None:
    assert find_cycle({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": frozenset({"b", "c"}), "b": frozenset({"c"}), "c": frozenset()}) is None


def test_the_graph_sees_function_local_imports() -> None:
    graph = import_graph()
    assert "benchmark.store" in graph and "benchmark.strategies" in graph
    # runner imports the learner only inside run_cell (so listing suites never imports torch)
    assert "benchmark.learner" in graph["benchmark.runner"]


def test_the_benchmark_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
