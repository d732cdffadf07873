"""How big a run is and how long it will take, said before it starts.

A matrix multiplies cells quickly (three runtimes x two networks x two workloads x twenty
repetitions is 240 deployments), so ``bench run`` says how many cells the plan has and, from
the cells of earlier runs of the same suite stored in the results directory, roughly how long
they will take: the median stored duration of each (target, workload) pair, once per planned
cell of that pair. Preparation (builds, pulls) is not counted: it depends on what is cached.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.plan import Cell, limited
from bench.suite import Suite

RECENT_RUNS = 10
"""Earlier runs read for the estimate: the latest ones say most about the machine as it is."""


def header(suite: Suite, plan: list[Cell], results_dir: Path) -> str:
    """'24 cells (6 targets x 2 workloads x 2 repetitions), about 9 min from earlier runs'."""
    size = (
        f"{len(plan)} cells ({_count(len(suite.targets), 'target')} x "
        f"{_count(len(suite.workloads), 'workload')} x "
        f"{_count(suite.repetitions, 'repetition')}"
    )
    full = len(suite.targets) * len(suite.workloads) * suite.repetitions
    size += ", some targets running only some workloads)" if len(plan) < full else ")"
    durations = earlier_durations(results_dir / suite.name)
    plan = limited(plan, fewer_repetitions(results_dir / suite.name, suite.repetitions))
    known = [durations[(c.target, c.workload)] for c in plan if (c.target, c.workload) in durations]
    if not known:
        return f"{size}, no earlier run to estimate from"
    text = f"{size}, about {_duration(sum(known))} from earlier runs"
    new = len(plan) - len(known)
    return text + (f" ({new} cells never run before not counted)" if new else "")


def fewer_repetitions(suite_dir: Path, repetitions: int) -> dict[str, int]:
    """The targets that ran fewer repetitions than the others in the latest complete run of
    the suite (a VM that fell back to TCG, ``tcg_repetitions``), and how many: the same host
    will most likely do the same again."""
    from bench import results

    for manifest in sorted(suite_dir.glob(f"*/{results.MANIFEST}"), reverse=True):
        try:
            found = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        if found.get("status") != "complete" or not isinstance(found.get("plan"), list):
            continue
        ran: dict[str, set[int]] = {}
        for cell in found["plan"]:
            ran.setdefault(str(cell.get("target")), set()).add(int(cell.get("repetition", 0)))
        most = max((len(reps) for reps in ran.values()), default=0)  # the suite's, then
        return {t: len(r) for t, r in ran.items() if len(r) < min(most, repetitions)}
    return {}


def earlier_durations(suite_dir: Path) -> dict[tuple[str, str], float]:
    """Median duration in seconds of each (target, workload) cell in the latest stored runs of
    a suite; empty when there are none. A run that cannot be read is skipped: an estimate is
    no reason to stop a run."""
    from bench import results  # pandas readers: only when there is something to read

    runs = sorted(p.parent for p in suite_dir.glob(f"*/{results.MANIFEST}"))[-RECENT_RUNS:]
    frames = []
    for run in runs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frames.append(results.load_cells(run))
        except (BenchError, OSError, ValueError):
            continue
    found = [f for f in frames if not f.empty and "duration_s" in f]
    if not found:  # no run, or only runs that never finished a cell
        return {}
    cells = pd.concat(found, ignore_index=True)
    medians = cells.groupby(["target", "workload"])["duration_s"].median()
    return {(str(t), str(w)): float(v) for (t, w), v in medians.items()}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _duration(seconds: float) -> str:
    """'40 s', '9 min', '2.5 h'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
