"""The shape of the code (the README's Architecture section): which way imports run, and what is private.

`lint-imports` checks the layer and independence contracts in pyproject.toml; this
module checks what those contracts cannot say: no module imports another module's
underscore names, and no import cycle exists at run time (imports under
`TYPE_CHECKING` are for the type checker only and do not count).
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "commerce", "scheduler")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports(source: str) -> list[str]:
    """Each import, in `source`, of a private module or name of our packages (function bodies too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or not node.module or node.module.split(".")[0] not in PACKAGES:
            continue
        names = [a.name for a in node.names]
        if any(_private(part) for part in node.module.split(".")) or any(map(_private, names)):
            found.append(f"{node.lineno}: from {node.module} import {', '.join(names)}")
    return found


def cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected groups (more than one module) of an import graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    for start in sorted(edges):  # Tarjan's algorithm, iteratively (no recursion limit)
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
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
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_no_module_imports_another_modules_private_names() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in private_imports(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_the_private_import_check_sees_them_anywhere() -> None:
    source = (
        "from commerce.orders.rows import lock_order, _hidden\n"
        "def f():\n    from commerce._secret import x\n"
        "from os import _exit\nfrom commerce import __version__\n"
    )
    assert private_imports(source) == [
        "1: from commerce.orders.rows import lock_order, _hidden",
        "3: from commerce._secret import x",
    ]


def test_there_is_no_import_cycle() -> None:
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)
    assert cycles({m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}) == []


def test_the_cycle_check_finds_long_cycles_and_ignores_chains() -> None:
    edges = {"a": ["b"], "b": ["c"], "c": ["d", "a"], "d": [], "e": ["a"], "f": ["f"]}
    assert cycles(edges) == [["a", "b", "c"]]


# ---- nothing outside commerce opens a session ------------------------------------------------

OPENS_A_SESSION = {"sessions", "_sessions", "session_factory", "async_sessionmaker", "sessionmaker", "AsyncSession"}


def session_openings(source: str) -> list[str]:
    """Each call, in `source`, that opens a database session or makes a session factory
    (`sessions()`, `session_factory(...)`, `AsyncSession(...)`); the edge uses units of work."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in OPENS_A_SESSION:
            found.append(f"{node.lineno}: {name}(...)")
    return found


def test_the_finder_of_session_openings_finds_them() -> None:
    source = "async def f(s):\n    async with s.sessions() as a, sessions() as b:\n        AsyncSession(e)\n"
    assert [line.split(": ")[1] for line in session_openings(source)] == ["sessions(...)", "sessions(...)", "AsyncSession(...)"]
    assert session_openings("async def f(uow):\n    async with uow() as u:\n        await u.session.get(X, 1)\n") == []


def test_nothing_outside_commerce_opens_a_session() -> None:
    found = {}
    for package in ("bot", "scheduler"):
        for path in sorted((ROOT / package).rglob("*.py")):
            openings = session_openings(path.read_text(encoding="utf-8"))
            if openings:
                found[str(path.relative_to(ROOT))] = openings
    assert found == {}, "open sessions through a unit of work (commerce.uow):\n" + "\n".join(
        f"{path}: {', '.join(lines)}" for path, lines in found.items()
    )
