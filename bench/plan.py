"""Expanding a suite into the ordered list of cells the runner executes.

Order matters for trustworthy comparisons: if all repetitions of target A ran before those of
target B, slow drift of the machine (thermal state, background jobs, page cache) would show up
as a difference between A and B. Interleaving (ABC, then BCA, CAB...) spreads drift over every
target and every position in a round over every target.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from bench.suite import Suite


@dataclass(frozen=True)
class Cell:
    """One deployment: a workload on a target, for one repetition."""

    index: int
    target: str
    workload: str
    repetition: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the manifest."""
        return asdict(self)


def _rotated(targets: list[str], repetition: int) -> list[str]:
    """Targets in the order repetition ``repetition`` runs them: ABC, then BCA, then CAB.

    A fixed order would give each target a fixed position in every round, and position has
    effects of its own (what ran just before, how warm the machine is): measured here, ~1%
    between two identical targets. Rotating spreads every position over every target.
    """
    shift = repetition % len(targets)
    return targets[shift:] + targets[:shift]


def build_plan(suite: Suite) -> list[Cell]:
    """All target × workload × repetition cells in the suite's order, less the workloads a
    target's ``workloads:`` leaves out (a slow target, such as a VM under emulation, can run
    the one workload that says enough)."""
    targets = [t.name for t in suite.targets]
    workloads = [w.name for w in suite.workloads]
    reps = range(suite.repetitions)
    if suite.order == "blocked":
        triples = [(t, w, r) for t in targets for w in workloads for r in reps]
    else:
        triples = [(t, w, r) for r in reps for w in workloads for t in _rotated(targets, r)]
    only = {t.name: set(t.workloads) for t in suite.targets if t.workloads}
    triples = [(t, w, r) for t, w, r in triples if w in only.get(t, (w,))]
    if suite.order == "random":
        random.Random(suite.seed).shuffle(triples)
    return [Cell(i, t, w, r) for i, (t, w, r) in enumerate(triples)]


def limited(plan: list[Cell], repetitions: dict[str, int]) -> list[Cell]:
    """``plan`` without the repetitions a target will not run (``repetitions[target]`` and
    up), renumbered; the order of what stays is unchanged."""
    kept = [c for c in plan if c.repetition < repetitions.get(c.target, c.repetition + 1)]
    return [Cell(i, c.target, c.workload, c.repetition) for i, c in enumerate(kept)]


def fit(plan: list[Cell], suite: Suite, prepared: dict[str, Any]) -> tuple[list[Cell], list[str]]:
    """``plan`` with the repetitions each prepared target asks to skip (its kind decides from
    what preparation found: a VM that fell back to TCG runs ``tcg_repetitions``), and a line
    saying so for each such target."""
    from bench.targets import registry

    limits, notes = {}, []
    for name, entry in prepared.items():
        config = suite.target(name)
        found = registry.kind(config.kind).repetitions(config, entry.get("artefacts", {}))
        if found is not None and found < suite.repetitions:
            limits[name] = found
            notes.append(
                f"{name}: {found} of {suite.repetitions} repetitions (tcg_repetitions: the "
                "guest runs under software emulation)"
            )
    return (limited(plan, limits) if limits else plan), notes
