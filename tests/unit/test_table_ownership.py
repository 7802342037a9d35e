"""Directory tables belong to the directory (docs/architecture.md): outside ``directory``
and ``db`` no module builds a query on the accounts, users, domains or addresses tables.

A query names a column as ``Model.column`` (``select(Domain.id)``, ``Address.email ==``);
holding a row the directory returned (``domain.name``) is fine. Parsed, not imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "mailward"
OWNED = {"Account", "User", "Domain", "Address"}
OWNERS = {"directory", "db"}


def column_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, "Model.column")`` for every column of an owned table named in ``tree``,
    and ``select(Model)`` / ``session.get(Model, ...)`` of one."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in OWNED and not node.attr.startswith("__")):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
        elif isinstance(node, ast.Call) and node.args:
            first = node.args[0]
            name = node.func.attr if isinstance(node.func, ast.Attribute) else \
                node.func.id if isinstance(node.func, ast.Name) else ""
            if name in ("select", "get") and isinstance(first, ast.Name) and first.id in OWNED:
                found.append((node.lineno, f"{name}({first.id})"))
    return found


def offenders() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        package = path.relative_to(SRC).parts[0].removesuffix(".py")
        if package in OWNERS:
            continue
        for line, use in column_uses(ast.parse(path.read_text(), str(path))):
            out.append(f"{path.relative_to(SRC.parent)}:{line} queries {use}")
    return out


def test_only_the_directory_queries_its_tables() -> None:
    assert offenders() == []


def test_the_check_sees_a_query() -> None:
    tree = ast.parse("q = select(Domain.id).where(Address.email == x)\nd = session.get(User, 1)")
    assert sorted(column_uses(tree)) == [(1, "Address.email"), (1, "Domain.id"), (2, "get(User)")]
    assert column_uses(ast.parse("name = domain.name\nq = select(domain_id)")) == []
