"""Imports only go down (app -> calibration -> model -> engines) and app/ has no import cycles.

Every import counts, also those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("engines", "model", "calibration", "app")  # each may import only the ones before it


def imports() -> dict[str, set[str]]:
    """module -> the roadsight modules it imports (`pkg.mod`, or `pkg` for a package's __init__)."""
    modules = {f"{p.parent.name}.{p.stem}".removesuffix(".__init__"): p for layer in LAYERS for p in (ROOT / layer).glob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                candidates = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            found.update(c for c in candidates if c in modules and c != name)
        graph[name] = found
    return graph


def test_imports_only_go_down():
    layer = {name: LAYERS.index(name.split(".")[0]) for name in imports()}
    upward = [f"{a} -> {b}" for a, deps in imports().items() for b in deps if layer[b] > layer[a]]
    assert upward == []


def test_app_has_no_import_cycles():
    graph = {a: {b for b in deps if b.startswith("app.")} for a, deps in imports().items() if a.startswith("app.")}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        raise AssertionError(f"import cycle in app/: {' -> '.join(error.args[1])}") from None
