"""Import contracts: who may import whom, checked on the source (no package is imported).

One test per rule, so a failure names the rule; each failure lists every violating edge as
``importer -> imported (file:line)``. An edge is any ``import`` statement in a module of
``bench/`` or ``workloads/`` -- at module level, under ``TYPE_CHECKING`` or inside a function;
see ``tests/import_graph.py`` for how names resolve.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

from tests.import_graph import Import, Module, build_graph, shortest_cycle, strongly_connected

REPO = Path(__file__).resolve().parent.parent
MAX_LINES = 400

# What a worker module may import inside a function besides the standard library: the worker's
# optional stack. Such imports run only on a target, or on a controller host that has the GPU
# library (numpy is a controller dependency too).
WORKER_OPTIONAL = frozenset({"numpy", "torch", "pynvml"})

# Who may import bench.report (it renders: terminal tables, HTML, Markdown, plots). The CLI
# writes what the user asked for; the nightly workflow writes the night's report through the
# report's public entry point. Everything else -- targets, probes, build, results, compare,
# stats, metrics, units, stability, verdict -- sits below the report and must not reach up.
REPORT_IMPORTERS = ("bench.cli", "bench.nightly")
# ... except the nightly package's analysis modules (run history, change points, trends): the
# report reads them, so they must not read the report.
NIGHTLY_ANALYSIS_WORDS = ("history", "change", "trend")


@functools.cache
def graph() -> tuple[dict[str, Module], tuple[Import, ...]]:
    modules, edges = build_graph(REPO)
    return modules, tuple(edges)


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def check(rule: str, violations: list) -> None:
    """Fail with the rule and every violation, one per line (no assertion rewriting noise)."""
    if violations:
        lines = "\n  ".join(map(str, violations))
        pytest.fail(f"{rule} ({len(violations)} violations):\n  {lines}", pytrace=False)


def test_workloads_never_import_bench() -> None:
    """The worker is shipped alone to a target, where bench is not installed."""
    _, edges = graph()
    bad = [e for e in edges if within(e.importer, "workloads") and e.top == "bench"]
    check("workloads/ imports bench", bad)


def controller_used_workloads(edges: tuple[Import, ...]) -> tuple[set[str], set[str]]:
    """Which worker modules run in the controller: (called, imported).

    ``called``: every workloads module that bench/ imports anywhere, and what those import in
    turn (any level: the controller calls their functions). ``imported`` adds the parent
    packages of those (importing ``workloads.x`` runs ``workloads/__init__.py``) and what
    they import at module level; only their module-level code is known to run."""
    internal = [e for e in edges if e.internal and within(e.target, "workloads")]
    called = {e.target for e in internal if within(e.importer, "bench")}
    called = _closure(called, internal, module_level_only=False)
    parents = {name.rsplit(".", i)[0] for name in called for i in range(1, name.count(".") + 1)}
    imported = _closure(called | parents, internal, module_level_only=True)
    return called, imported


def _closure(start: set[str], edges: list[Import], module_level_only: bool) -> set[str]:
    seen, todo = set(start), list(start)
    while todo:
        module = todo.pop()
        for e in edges:
            runs = e.importer == module and not (module_level_only and e.in_function)
            if runs and e.target not in seen:
                seen.add(e.target)
                todo.append(e.target)
    return seen


def test_controller_used_workloads_import_only_the_standard_library() -> None:
    """The controller host may have no torch; what it imports from workloads must load there."""
    _, edges = graph()
    called, imported = controller_used_workloads(edges)
    allowed_top = set(sys.stdlib_module_names) | {"workloads"}
    bad = []
    for e in edges:
        if e.importer not in imported or e.top in allowed_top:
            continue
        if not e.in_function or (e.importer in called and e.top not in WORKER_OPTIONAL):
            bad.append(e)
    rule = (
        f"workloads modules used by the controller ({', '.join(sorted(imported))}) import "
        "only the standard library (inside functions also numpy, torch, pynvml)"
    )
    check(rule, bad)


def may_import_report(module: str) -> bool:
    if within(module, "bench.report"):
        return True
    if within(module, "bench.nightly"):
        leaf = module.rpartition(".")[2]
        return not any(word in leaf for word in NIGHTLY_ANALYSIS_WORDS)
    return any(within(module, allowed) for allowed in REPORT_IMPORTERS)


def test_only_the_cli_and_nightly_workflow_import_the_report() -> None:
    """Rendering sits on top: the model and analysis below it must not depend on it."""
    _, edges = graph()
    bad = [
        e
        for e in edges
        if e.internal and within(e.target, "bench.report") and not may_import_report(e.importer)
    ]
    check("only the CLI and the nightly workflow import bench.report", bad)


def test_no_import_cycles() -> None:
    """Each strongly connected component of the module graph is a cycle to cut.

    A package ``__init__`` may re-export its submodules only if they do not import it back."""
    _, edges = graph()
    internal = [e for e in edges if e.internal and e.importer != e.target]
    adjacency: dict[str, set[str]] = {}
    for e in internal:
        adjacency.setdefault(e.importer, set()).add(e.target)
        adjacency.setdefault(e.target, set())
    cycles = []
    for component in strongly_connected(adjacency):
        members = set(component)
        inside = [f"\n      {e}" for e in internal if e.importer in members and e.target in members]
        path = " -> ".join(shortest_cycle(adjacency, component[0], members))
        cycles.append(f"{path}; edges inside it:{''.join(inside)}")
    check("import cycles between modules", cycles)


def test_the_controller_never_imports_torch() -> None:
    """The controller host may have no GPU stack; not even a function may import torch."""
    _, edges = graph()
    bad = [e for e in edges if within(e.importer, "bench") and e.top == "torch"]
    check("bench/ imports torch", bad)


def test_no_module_over_the_line_limit() -> None:
    """Small modules with one job (physical lines, as ``wc -l`` counts them)."""
    modules, _ = graph()
    bad = []
    for module in modules.values():
        count = len(module.path.read_bytes().splitlines())
        if count > MAX_LINES:
            bad.append(f"{module.rel}: {count} lines")
    check(f"modules over {MAX_LINES} lines", bad)
