"""The import rules of the layers, read from the source with ``ast`` (README, "Architecture").

Layers, bottom up: ``trainflow/`` (core) -> ``tasks/common/`` -> ``tasks/<modality>/`` -> ``flows/`` (and
``trainflow/testing.py``, the packaged contract checks, which exercise every layer beside the flows).
An import points down, or sideways within one folder; a modality never imports another modality's
module; and the module graph has no cycle. Imports inside functions count as much as those at the
top: a lazy import is still a dependency. The one exception is an import under ``if TYPE_CHECKING:``,
which never runs and only names a type for the checker; the rules still hold for those too, except
that they may not form a cycle (none does today, and none is needed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The installed layout (pyproject.toml: package-dir): folder -> package name.
PACKAGES = {"trainflow": "trainflow", "tasks": "trainflow.tasks", "flows": "trainflow.flows"}
LAYERS = {"core": 0, "common": 1, "modality": 2, "top": 3}


def _modules() -> dict[str, Path]:
    """Every module of the package, by its installed dotted name."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def place(module: str) -> tuple[str, str]:
    """(layer, room) of a module; the room tells modalities apart."""
    if module == "trainflow.flows" or module.startswith("trainflow.flows."):
        return "top", "flows"
    if module == "trainflow.testing":  # the contract checks feed every layer tiny data; only tests import it
        return "top", "testing"
    if module == "trainflow.tasks" or module.startswith("trainflow.tasks.common"):
        return "common", "common"
    if module.startswith("trainflow.tasks."):
        return "modality", module.split(".")[2]
    return "core", "core"


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Line numbers of the statements under ``if TYPE_CHECKING:``."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _target(name: str) -> str | None:
    """The project module an imported dotted name is (or lives in), None outside the project."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported project module, line, only for the type checker) for every import in the module."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    typing_only = _type_checking_lines(tree)
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # "from pkg import name": name is a submodule when one exists, else an attribute of pkg.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        for name in names:
            target = _target(name)
            if target and target != module:
                found.append((target, node.lineno, node.lineno in typing_only))
    return found


GRAPH = {module: imports(module) for module in MODULES}


def _why_not(source: str, target: str) -> str | None:
    (layer, room), (to_layer, to_room) = place(source), place(target)
    if LAYERS[to_layer] > LAYERS[layer]:
        return f"upward ({layer} imports {to_layer})"
    if layer == to_layer == "modality" and room != to_room:
        return f"across modalities ({room} imports {to_room})"
    return None


def test_the_layout_is_read():
    """The walk sees every layer and the imports in them: the rules below cannot pass on an empty graph."""
    layers = {place(module)[0] for module in MODULES}
    assert layers == set(LAYERS)
    assert len(MODULES) > 60 and sum(map(len, GRAPH.values())) > 150
    assert any(target == "trainflow.errors" for target, _, _ in GRAPH["trainflow.tasks.common.training"])


def test_imports_point_down_or_sideways_within_a_folder():
    wrong = sorted({f"{MODULES[source].relative_to(ROOT)}:{line} imports {target}: {why}"
                    for source, edges in GRAPH.items() for target, line, _ in edges
                    if (why := _why_not(source, target))})
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    """Tarjan's strongly connected components over the runtime imports; any of size > 1 is a cycle."""
    edges = {source: sorted({t for t, _, typing_only in found if not typing_only}) for source, found in GRAPH.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("source, target, expected", [
    ("trainflow.tasks.image.modality", "trainflow.flows.pipeline", "upward"),
    ("trainflow.spec", "trainflow.tasks.common.load", "upward"),
    ("trainflow.tasks.common.training", "trainflow.tasks.sequence.networks", "upward"),
    ("trainflow.tasks.audio.networks", "trainflow.tasks.image.networks", "across"),
    ("trainflow.tasks.audio.modality", "trainflow.tasks.audio.networks", None),
    ("trainflow.flows.cli", "trainflow.tasks.tabular.modality", None),
])
def test_the_rule_itself(source, target, expected):
    """The rule flags the imports it must, and only those."""
    why = _why_not(source, target)
    assert (why is None) if expected is None else (why or "").startswith(expected)
