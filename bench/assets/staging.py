"""The runner's side of assets: which workloads read which assets, making them, staging them on
every target that runs those workloads, and the ``assets`` of each cell's spec.

All of it happens once per run, after the targets are prepared and before the first cell, off
every clock. Assets are named by the suite's seed, not the repetition's, so every repetition
and every target reads the same bytes. A set that cannot be staged on a target fails that
target's cells of the workload with the reason; an asset that cannot be made stops the run.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.assets import code, make
from bench.assets.model import Asset, AssetSet, Staged
from bench.errors import BenchError, TargetError
from workloads import assetid

if TYPE_CHECKING:
    from bench.build.builder import Builder
    from bench.plan import Cell
    from bench.suite import Suite
    from bench.targets.base import Target

PARAMS = {"checkpoint": assetid.checkpoint_params, "dataset": assetid.dataset_params}


def _ignore(message: str) -> None:
    """Default progress sink."""


def options(workload: Any) -> dict[str, Any]:
    """A workload's options as its worker is told them (the runner's spec, less the timeout)."""
    return workload.model_dump(mode="json", exclude={"timeout_s"})


def wanted(workload: Any, seed: int) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """(location, params of each asset kind the workload reads) for the suite's ``seed``."""
    found = options(workload)
    params = {kind: make_params(found, seed) for kind, make_params in PARAMS.items()}
    return found.get("location"), {kind: p for kind, p in params.items() if p is not None}


class Staging:
    """The assets of one run: made once, staged once per target, handed to each cell."""

    def __init__(
        self,
        suite: Suite,
        targets: Mapping[str, Target],
        plan: Iterable[Cell],
        note: Callable[[str], None] = _ignore,
    ) -> None:
        self.suite = suite
        self.targets = targets
        self.note = note
        self.pairs = sorted({(c.target, c.workload) for c in plan})
        self.sets: dict[str, AssetSet] = {}
        self.staged: dict[tuple[str, str], Staged] = {}
        self.failed: dict[tuple[str, str], BenchError] = {}

    def prepare(self, builder: Builder, skip: Collection[str], run_id: str) -> dict[str, Any]:
        """Make every asset the suite's workloads read and stage them on every target not in
        ``skip`` (those that could not be prepared); the manifest's ``assets`` entry."""
        self._make(builder)
        for target, workload in self.pairs:
            found = self.sets.get(workload)
            if found is None or target in skip:
                continue
            try:
                self.staged[(target, workload)] = self._stage(target, found, run_id)
            except BenchError as exc:
                self.failed[(target, workload)] = exc
        return self.record()

    def _make(self, builder: Builder) -> None:
        """Each workload's asset set, making what the cache lacks (a failure stops the run)."""
        chosen: list[str] = []

        def python() -> str:
            if not chosen:
                chosen.append(make.interpreter(builder, getattr(builder, "groups", ())))
            return chosen[0]

        for workload in self.suite.workloads:
            location, params = wanted(workload, self.suite.seed)
            if workload.kind == "python":  # its directory, shipped as the code asset
                directory = Path(workload.path).expanduser()
                made = [code.ensure(directory, self.note)]
                self.sets[workload.name] = AssetSet(code.LOCATION, tuple(made))
                continue
            if location is None:
                continue
            made = [make.ensure(params[kind], python, self.note)[0] for kind in params]
            self.sets[workload.name] = AssetSet(location, tuple(made))

    def _stage(self, name: str, assets: AssetSet, run_id: str) -> Staged:
        """Stage ``assets`` on target ``name``, or hand over the location alone when the
        workload reads nothing (a data-loading workload without a dataset)."""
        if not assets.assets:
            return Staged(assets.spec({}))
        target = self.targets[name]
        stage = getattr(target, "stage", None)
        if stage is None:
            raise TargetError(f"target {name!r}: kind {target.config.kind} cannot stage assets")
        self.note(f"staging {_names(assets.assets)} on target {name!r} ({assets.location})")
        return stage(assets, run_id)

    def spec(self, spec: dict[str, Any], target: str, workload: str) -> dict[str, Any]:
        """``spec`` with the cell's ``assets``; the staging error when there is one."""
        failed = self.failed.get((target, workload))
        if failed is not None:
            raise failed
        staged = self.staged.get((target, workload))
        if staged is None:
            return spec
        return {**spec, "assets": {k: _copy(v) for k, v in staged.spec.items()}}

    def record(self) -> dict[str, Any]:
        """Per workload: the location, each asset's digest, size, key and params, and what
        each target staged (or why it could not)."""
        out: dict[str, Any] = {}
        for workload, assets in self.sets.items():
            entry: dict[str, Any] = {"location": assets.location}
            entry.update({a.kind: a.record() for a in assets.assets})
            targets: dict[str, Any] = {}
            for (target, name), staged in self.staged.items():
                if name == workload:
                    targets[target] = staged.record
            for (target, name), exc in self.failed.items():
                if name == workload:
                    targets[target] = {"error": exc.one_line()}
            entry["targets"] = targets
            out[workload] = entry
        return out


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _names(assets: Iterable[Asset]) -> str:
    return " and ".join(f"{a.kind} {a.key}" for a in assets)
