"""The import graph of the project's packages, read from the source with ``ast``.

Nothing here imports the packages it reads: the contracts in ``test_architecture.py`` must hold
for code that would fail to import on this host (a worker module that needs torch), and reading
the source is fast. Every ``import`` statement counts, wherever it is: at module level, under
``if TYPE_CHECKING:``, inside a function or a class.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("bench", "workloads")


@dataclass(frozen=True)
class Import:
    """One edge: ``importer`` names ``target`` at ``path:line``.

    ``target`` is a module of the scanned packages when ``internal`` (resolved to the deepest
    existing module: ``from pkg import name`` is ``pkg.name`` when that is a module, else
    ``pkg``), otherwise the dotted name as written (``numpy.linalg``, ``torch``)."""

    importer: str
    target: str
    path: str
    line: int
    in_function: bool
    internal: bool

    @property
    def top(self) -> str:
        """The top-level package of the target (``torch`` for ``torch.nn``)."""
        return self.target.partition(".")[0]

    def __str__(self) -> str:
        return f"{self.importer} -> {self.target} ({self.path}:{self.line})"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    rel: str
    is_package: bool


def find_modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Module]:
    """Every ``.py`` file under the given top-level packages, keyed by dotted module name."""
    modules: dict[str, Module] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            name = ".".join(parts)
            rel = path.relative_to(root).as_posix()
            modules[name] = Module(name, path, rel, is_package)
    return modules


def build_graph(
    root: Path, packages: Iterable[str] = PACKAGES
) -> tuple[dict[str, Module], list[Import]]:
    """The modules under ``root`` and every import edge between them and to the outside."""
    modules = find_modules(root, packages)
    tops = {name.partition(".")[0] for name in modules}
    edges: dict[Import, None] = {}  # ordered and without repeats (``from m import a, b``)
    for module in modules.values():
        tree = ast.parse(module.path.read_bytes(), filename=module.rel)
        for node, in_function in _imports(tree):
            for candidate, written in _targets(node, module):
                internal = candidate.partition(".")[0] in tops
                target = _deepest_module(candidate, modules) if internal else written
                edge = Import(module.name, target, module.rel, node.lineno, in_function, internal)
                edges[edge] = None
    return modules, sorted(edges, key=lambda e: (e.path, e.line, e.target))


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, and whether it sits inside a function (runs only when called)."""
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, in_function = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, in_function
        nested = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        stack.extend((child, nested) for child in ast.iter_child_nodes(node))


def _targets(node: ast.Import | ast.ImportFrom, module: Module) -> list[tuple[str, str]]:
    """(candidate, module as written) for each name one statement imports, relative imports
    resolved: ``from os import path`` gives ``("os.path", "os")``."""
    if isinstance(node, ast.Import):
        return [(alias.name, alias.name) for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.name if module.is_package else module.name.rpartition(".")[0]
        parts = package.split(".")
        anchor = ".".join(parts[: len(parts) - (node.level - 1)])
        base = f"{anchor}.{base}" if base else anchor
    # ``from pkg import name``: one candidate per name; resolution later keeps ``pkg.name`` only
    # when it is a module, so a function or class imported from ``pkg`` is an edge to ``pkg``.
    return [(base if alias.name == "*" else f"{base}.{alias.name}", base) for alias in node.names]


def _deepest_module(name: str, modules: dict[str, Module]) -> str:
    parts = name.split(".")
    while len(parts) > 1 and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
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
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def shortest_cycle(graph: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    """One shortest path ``start -> ... -> start`` inside a component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start]
