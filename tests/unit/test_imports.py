"""The layering of nlptune (docs/architecture.md), checked on the import graph of src/nlptune.

Every ``import`` and ``from ... import`` in every module counts, at module level or inside a
function. A module's unit is its subpackage (``nlptune.tasks.metrics`` -> ``tasks``) or, for a
top-level module, its name (``nlptune.build`` -> ``build``); the package ``__init__`` and
``__main__`` belong to no unit. The registry's ``importlib`` imports are not in the graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "nlptune"
SUBPACKAGES = {"backbones", "data", "heads", "strategies", "tasks", "training"}
TOP = {"build", "api", "predict", "cli"}
FORBIDDEN = {  # unit -> units it must not import
    "training": {"backbones", "heads", "tasks", "strategies", *TOP},
    "data": {"training", "backbones", "heads", "tasks", "strategies", *TOP},
    "heads": {"backbones", "tasks", "strategies", "training", *TOP},
    "backbones": TOP,
    "tasks": TOP,
    "strategies": TOP,
}
# onnx_runner: loads an exported run's task and tokenizer without the PyTorch weights;
# report_run and sweep: a run's task (its main metric) without loading the model
MAY_IMPORT_BUILD = {"build", "api", "predict", "cli", "demo", "onnx_runner", "report_run", "sweep"}

Edge = tuple[str, str, str]  # (from unit, to unit, "file:line: import statement")


def unit_of(module: str) -> str | None:
    """The unit of a dotted module name, or None for ``nlptune`` itself and ``__main__``."""
    parts = module.split(".")
    if parts[0] != "nlptune" or len(parts) == 1 or parts[1] == "__main__":
        return None
    return parts[1]


def module_names() -> dict[str, Path]:
    """Every module of src/nlptune by dotted name (a package by its ``__init__.py``)."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(node: ast.stmt, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The modules an import statement in ``module`` names (``from p import m``: ``p.m``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def unit_edges() -> list[Edge]:
    """Every import between two different units of src/nlptune."""
    modules = module_names()
    edges = []
    for module, path in modules.items():
        source = unit_of(module)
        if source is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in imported(node, module, path.name == "__init__.py", set(modules)):
                target = unit_of(name)
                if target is not None and target != source:
                    where = f"{path.relative_to(SRC.parents[1])}:{node.lineno}: {ast.unparse(node)}"
                    edges.append((source, target, where))
    return edges


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as ``[a, b, ..., a]`` (depth-first search), or None."""
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def violations(edges: list[Edge]) -> list[str]:
    """The imports that break a layering rule, each naming its file, line and statement."""
    out = set()
    for a, b, where in edges:
        if b in FORBIDDEN.get(a, ()):
            out.add(f"{where} ({a} must not import {b})")
        if b == "build" and a not in MAY_IMPORT_BUILD:
            out.add(f"{where} (only {sorted(MAY_IMPORT_BUILD)} import nlptune.build)")
    return sorted(out)


def test_unit_graph_has_no_cycle() -> None:
    edges = unit_edges()
    graph: dict[str, set[str]] = {}
    for a, b, _ in edges:
        graph.setdefault(a, set()).add(b)
    assert ("build", "training") in {(a, b) for a, b, _ in edges}, "the graph missed imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between units: " + " -> ".join(cycle or [])


def test_layering_rules() -> None:
    found = violations(unit_edges())
    assert not found, "layering rules broken:\n" + "\n".join(found)


def test_checker_fires_on_fake_graphs() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None
    fake = [("heads", "tasks", "x.py:1"), ("config", "build", "y.py:2"), ("api", "build", "z")]
    assert violations(fake) == [
        "x.py:1 (heads must not import tasks)",
        f"y.py:2 (only {sorted(MAY_IMPORT_BUILD)} import nlptune.build)",
    ]
