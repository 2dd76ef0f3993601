"""The house's import rules, held: no import cycles (function-level imports included), and
imports go one way: cli -> web -> workstation -> daemonkit -> storage -> model; the CLI
never imports a daemon.  Read from the source with ``ast``: nothing is imported to check it."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ailabber", "spoold", "remoted")
LAYERS = {"model": 0, "storage": 1, "daemonkit": 2, "workstation": 3, "web": 4, "cli": 5}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges[name].update(t for t in targets if t in modules and t != name)
    return edges


def test_no_import_cycles() -> None:
    edges = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(_modules()):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_imports_go_one_way() -> None:
    wrong = []
    for src, targets in _graph().items():
        a = src.split(".")
        for dst in targets:
            b = dst.split(".")
            if a[0] == "ailabber" and b[0] in ("spoold", "remoted"):
                wrong.append(f"{src} -> {dst} (the package never imports a daemon)")
            elif a[0] == b[0] == "ailabber" and len(a) > 1 and len(b) > 1 and a[1] in LAYERS and b[1] in LAYERS \
                    and LAYERS[b[1]] > LAYERS[a[1]]:
                wrong.append(f"{src} -> {dst} ({a[1]} is below {b[1]})")
    assert not wrong, "\n".join(sorted(wrong))
