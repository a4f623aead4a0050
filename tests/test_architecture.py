"""The package's shape: no import cycle, the import-layer contracts hold, tasks resolve without side effects."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable

import grimp
import pytest

from .conftest import ROOT


def import_cycles(modules: Iterable[str], imports: Callable[[str], Iterable[str]]) -> list[list[str]]:
    """Every group of modules that import each other in a circle (strongly connected components
    with more than one module, or a module importing itself), by Tarjan's algorithm, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles = []
    for start in sorted(modules):
        if start in index:
            continue
        work = [(start, iter(sorted(imports(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in imports(node):
                    cycles.append(sorted(component))
    return cycles


def test_cycle_finder_finds_cycles_and_only_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"d"}}
    assert sorted(import_cycles(graph, graph.__getitem__)) == [["a", "b", "c"], ["e"]]
    acyclic = {"a": {"b", "c"}, "b": {"c"}, "c": set()}
    assert import_cycles(acyclic, acyclic.__getitem__) == []


def test_the_package_has_no_import_cycle() -> None:
    """Every import counts, also those inside functions: none may be there to dodge a cycle."""
    graph = grimp.build_graph("seqtag", include_external_packages=False)
    modules = graph.modules
    assert "seqtag.tasks.base" in modules and "seqtag.registry" in modules
    cycles = import_cycles(modules, graph.find_modules_directly_imported_by)
    assert not cycles, "modules importing each other in a circle:\n" + "\n".join(", ".join(c) for c in cycles)


def test_import_layer_contracts_hold() -> None:
    """The contracts in pyproject.toml ([tool.importlinter]), as CI checks them."""
    command = shutil.which("lint-imports")
    if command is None:
        pytest.fail("lint-imports is missing: pip install -e '.[dev]'")
    result = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_registry_alone_resolves_every_task() -> None:
    """No registration by import side effect: in a fresh interpreter that imports only the
    registry, every recipe of every task validates and names its task's classes."""
    code = (
        "import sys; from seqtag.registry import TASKS, load_recipe\n"
        "for path in sys.argv[1:]:\n"
        "    recipe = load_recipe(path, check=False)\n"
        "    assert isinstance(recipe, TASKS[recipe.task].recipe), path\n"
        "print(sorted({load_recipe(p, check=False).task for p in sys.argv[1:]}))\n"
    )
    recipes = sorted(str(path) for path in (ROOT / "recipes").glob("*.yaml"))
    result = subprocess.run([sys.executable, "-c", code, *recipes], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "['language_model', 'tagging', 'target-sentiment', 'tree-sentiment']"
