"""The package layer map (docs/architecture.md), enforced on the source itself.

Every module under ``src/mailward`` is parsed (no import is executed); each import of
another ``mailward`` package, at module level or inside a function, is an edge of the
package graph (imports under ``if TYPE_CHECKING:`` are annotations only and do not count;
``importlib.import_module("mailward.…")`` with a literal name does). A package may import
only packages on a lower line of :data:`LAYERS`: never one above it, never a sibling on
its own line, and so never in a cycle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "mailward"

LAYERS: tuple[tuple[str, ...], ...] = (
    # bottom to top; packages on one line must not import each other
    ("net", "obs"),
    ("config", "db"),
    ("core",),
    ("trace",),
    ("directory",),
    ("dkim",),
    ("routing",),
    ("store",),
    ("sieve",),
    ("smtp", "imap", "pop3", "managesieve"),
    ("queue",),
    ("migrate",),
    ("filter",),
    ("quarantine",),
    ("dns",),
    ("inbound",),
    ("app",),
    ("webmail",),
    ("web",),
    ("server",),
    ("cli",),
    ("__main__",),
)
"""The layer map, bottom to top; docs/architecture.md draws the same."""

LEVEL = {package: level for level, line in enumerate(LAYERS) for package in line}


@dataclass(frozen=True, slots=True)
class Edge:
    """One import of package ``target`` by module ``module`` of package ``source``."""

    source: str
    target: str
    module: str
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path) -> list[tuple[str, int]]:
    """``(imported module, line)`` of every ``mailward`` import in ``path``."""
    module = module_name(path)
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit_one(other)
                continue
            visit_one(child)

    def visit_one(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.args[0].value, node.lineno))
        visit(node)

    visit(ast.parse(path.read_text(), str(path)))
    return [(name, line) for name, line in found
            if name == "mailward" or name.startswith("mailward.")]


def package_edges() -> list[Edge]:
    edges = []
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        source = package_of(module)
        for imported, line in imports_of(path):
            target = package_of(imported)
            if source and target and target != source:
                edges.append(Edge(source, target, module, line, imported))
    return edges


def violations(edges: list[Edge]) -> list[str]:
    """Every edge the layer map forbids, and every package missing from the map."""
    problems = []
    for edge in edges:
        for package in (edge.source, edge.target):
            if package not in LEVEL:
                problems.append(f"{edge}: package {package!r} is not in LAYERS "
                                "(add it to the map and docs/architecture.md)")
        if edge.source not in LEVEL or edge.target not in LEVEL:
            continue
        if LEVEL[edge.target] > LEVEL[edge.source]:
            problems.append(f"{edge}: {edge.source} may not import {edge.target}, "
                            "a higher layer")
        elif LEVEL[edge.target] == LEVEL[edge.source]:
            problems.append(f"{edge}: {edge.source} and {edge.target} are on one layer "
                            "and may not import each other")
    return problems


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Package cycles in the graph (each as its path, first package repeated last)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(package: str, path: list[str]) -> None:
        state[package] = 1
        for target in sorted(graph.get(package, ())):
            if state.get(target) == 1:  # back to a package on the current path
                here = [*path, package]
                found.append([*here[here.index(target):], target])
            elif target not in state:
                walk(target, [*path, package])
        state[package] = 2

    for package in sorted(graph):
        if package not in state:
            walk(package, [])
    return found


def test_every_package_is_on_the_map() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    packages |= {p.stem for p in ROOT.glob("*.py") if p.stem != "__init__"}
    assert sorted(packages - set(LEVEL)) == []


def test_imports_follow_the_layer_map() -> None:
    problems = violations(package_edges())
    assert not problems, "imports against the layer map:\n" + "\n".join(problems)


def test_no_package_cycle() -> None:
    edges = package_edges()
    found = cycles(edges)
    by_pair = {(e.source, e.target): e for e in edges}
    described = [" -> ".join(cycle) + "  (" + "; ".join(
        str(by_pair[(a, b)]) for a, b in pairwise(cycle)
        if (a, b) in by_pair) + ")" for cycle in found]
    assert not found, "package import cycles:\n" + "\n".join(described)


def test_the_checks_catch_what_they_should() -> None:
    """The checker itself: an upward import, a sibling import and a cycle are caught."""
    upward = Edge("directory", "queue", "mailward.directory.x", 3, "mailward.queue.spool")
    sibling = Edge("imap", "pop3", "mailward.imap.x", 4, "mailward.pop3.commands")
    downward = Edge("queue", "directory", "mailward.queue.x", 5, "mailward.directory")
    assert violations([downward]) == []
    [up] = violations([upward])
    assert "mailward.directory.x:3 imports mailward.queue.spool" in up and "higher" in up
    [side] = violations([sibling])
    assert "one layer" in side
    assert cycles([upward, downward]) == [["directory", "queue", "directory"]]


def test_docs_mirror_the_map() -> None:
    """docs/architecture.md lists the layers in the same order."""
    text = (SRC.parent / "docs" / "architecture.md").read_text()
    positions = []
    for line in LAYERS:
        for package in line:
            if package == "__main__":
                continue
            marker = f"`{package}`"
            assert marker in text, f"docs/architecture.md does not name {marker}"
            positions.append((text.index(marker), package))
    assert [p for _, p in positions] == [p for _, p in sorted(positions)], (
        "docs/architecture.md names the packages in another order than LAYERS")
