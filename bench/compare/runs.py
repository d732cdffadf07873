"""Run against run: every (target, workload, metric) of two stored runs, judged by
``decide``, with what was left out and why. Everything here reads stored results only and
returns plain data, so a notebook can call ``compare_runs`` and render ``Comparison.rows``
however it likes; ``bench.report.regressions`` renders it for the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import results, stats
from bench.compare.decide import ADDED, ALPHA, DRIFT, REGRESSION, REMOVED, STATUSES, decide
from bench.compare.facts import Difference, definition_notes, fingerprint_differences
from bench.compare.thresholds import DEFAULT_THRESHOLD, check_overrides, parse_threshold
from bench.errors import IncomparableRunsError
from bench.metrics import direction

KEY = ["target", "workload", "metric"]
Key = tuple[str, str, str]
COLUMNS = [
    *KEY,
    "unit",
    "direction",
    "n_base",
    "n_new",
    "base_median",
    "new_median",
    "ratio",
    "ci_low",
    "ci_high",
    "change",
    "p_value",
    "threshold",
    "status",
]


@dataclass(frozen=True)
class Excluded:
    """INVALID cells of one target and workload in one run, left out of the statistics."""

    run: str  # "base" | "new"
    target: str
    workload: str
    cells: int
    reasons: tuple[str, ...]

    def describe(self) -> str:
        why = "; ".join(self.reasons[:3]) + (" …" if len(self.reasons) > 3 else "")
        plural = "s" if self.cells > 1 else ""
        return (
            f"{self.run}: {self.cells} INVALID cell{plural} of {self.workload} on "
            f"{self.target} excluded ({why})"
        )


@dataclass
class Comparison:
    """The result of comparing two runs: one row per (target, workload, metric), plus what
    was left out and why, and how the hosts differ (empty unless allowed to)."""

    base: Path
    new: Path
    base_run_id: str
    new_run_id: str
    rows: pd.DataFrame
    threshold: float
    overrides: dict[str, float]
    alpha: float
    differences: list[Difference] = field(default_factory=list)
    excluded: list[Excluded] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    matrix: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Per list ('targets', 'workloads'), each name a ``matrix:`` made in either run: its
    ``base`` name and swept ``values`` (the new run's where both have it)."""

    def group_of(self, target: str) -> str | None:
        """'ctr: runtime=runc, network=none'-style heading key: the base name of a target a
        matrix made, None for any other."""
        found = self.matrix.get("targets", {}).get(target)
        return None if found is None else str(found["base"])

    @property
    def regressions(self) -> pd.DataFrame:
        """The rows that regressed."""
        return self.rows[self.rows["status"] == REGRESSION]

    @property
    def has_regressions(self) -> bool:
        return not self.regressions.empty

    def counts(self) -> dict[str, int]:
        """How many rows have each status (only statuses that occur)."""
        found = self.rows["status"].value_counts().to_dict()
        return {status: int(found[status]) for status in STATUSES if status in found}

    def verdict(self) -> str:
        """The one-line answer: how many regressions, or that there are none, and the rest."""
        counts = self.counts()
        found = counts.get(REGRESSION, 0)
        head = f"{found} regression{'s' if found != 1 else ''}" if found else "no regression"
        rest = ", ".join(f"{status}: {n}" for status, n in counts.items() if status != REGRESSION)
        return f"{head} ({rest})" if rest else head


def compare_runs(
    base_dir: str | Path,
    new_dir: str | Path,
    threshold: float | str = DEFAULT_THRESHOLD,
    overrides: Mapping[str, float | str] | None = None,
    allow_different_hosts: bool = False,
    alpha: float = ALPHA,
    floors: Mapping[Key, float] | None = None,
) -> Comparison:
    """Compare the run in ``new_dir`` with the one in ``base_dir``.

    ``threshold`` is the smallest change that counts (0.05 or '5%'); ``overrides`` sets it per
    metric. Raises ``IncomparableRunsError`` when the key fingerprints differ, unless
    ``allow_different_hosts``; the differences are then in ``Comparison.differences``.
    ``floors``: per (target, workload, metric), how far separate runs drift with nothing
    changed (a history knows); a regression no larger is reported as ``DRIFT`` instead.
    """
    base_path, new_path = results.run_dir(base_dir), results.run_dir(new_dir)
    base_manifest, new_manifest = results.read_manifest(base_path), results.read_manifest(new_path)
    differences = fingerprint_differences(base_manifest, new_manifest)
    if differences and not allow_different_hosts:
        raise IncomparableRunsError(differences)
    default = parse_threshold(threshold, "threshold")
    limits = {
        m: parse_threshold(v, f"--metric-threshold {m}") for m, v in (overrides or {}).items()
    }
    base_all, new_all = results.load(base_path), results.load(new_path)
    check_overrides(limits, set(base_all["metric"]) | set(new_all["metric"]))
    base_valid, base_excluded = _side(base_all, base_path, "base")
    new_valid, new_excluded = _side(new_all, new_path, "new")
    rows = [
        _row(key, unit, base_valid, new_valid, limits.get(key[2], default), alpha, floors or {})
        for key, unit in _keys(base_all, new_all).items()
    ]
    return Comparison(
        base=base_path,
        new=new_path,
        base_run_id=results.run_name(base_path, base_manifest),
        new_run_id=results.run_name(new_path, new_manifest),
        rows=pd.DataFrame(rows, columns=COLUMNS),
        threshold=default,
        overrides=limits,
        alpha=alpha,
        differences=differences,
        excluded=base_excluded + new_excluded,
        notes=definition_notes(base_manifest, new_manifest),
        matrix=_matrix(base_manifest, new_manifest),
    )


def _matrix(*manifests: results.Manifest) -> dict[str, dict[str, dict[str, Any]]]:
    """What the runs' matrices made, by list and name (the later run wins a name both have)."""
    out: dict[str, dict[str, dict[str, Any]]] = {"targets": {}, "workloads": {}}
    for manifest in manifests:
        for of, found in out.items():
            for name, entry in getattr(manifest.matrix, of).items():
                found[name] = {"base": entry.base, "values": dict(entry.values)}
    return out


def _keys(base: pd.DataFrame, new: pd.DataFrame) -> dict[Key, str]:
    """Every (target, workload, metric) of either run with its unit, grouped by target and
    workload in the order the runs first list them (the suites' order)."""
    both = pd.concat([base, new], ignore_index=True).drop_duplicates(KEY)
    order = {name: i for i, name in enumerate(dict.fromkeys(both["target"]))}
    work = {name: i for i, name in enumerate(dict.fromkeys(both["workload"]))}
    both = both.assign(_t=both["target"].map(order), _w=both["workload"].map(work))
    both = both.sort_values(["_t", "_w"], kind="stable")
    return {(r.target, r.workload, r.metric): r.unit for r in both.itertuples(index=False)}


@dataclass(frozen=True)
class _Side:
    """One run's values per key, from VALID cells only, and every key it measured at all."""

    values: dict[Key, np.ndarray]
    measured: set[Key]

    def get(self, key: Key) -> np.ndarray | None:
        """The key's values; None when the run never measured it, empty when it did but
        every cell that did was INVALID (that is not a removed metric)."""
        if key not in self.measured:
            return None
        return self.values.get(key, np.array([]))


def _side(frame: pd.DataFrame, path: Path, run: str) -> tuple[_Side, list[Excluded]]:
    """The run's values without those of INVALID cells, and what was excluded.

    An INVALID cell (throttled CPU, too few iterations, cache not dropped…) produced numbers
    that do not mean what they claim; a comparison built on them would blame the code.
    """
    flagged = results.invalid_cells(results.load_cells(path))
    measured = set(frame[KEY].itertuples(index=False, name=None))
    excluded = []
    if not flagged.empty:
        excluded = [
            Excluded(run, target, workload, len(group), tuple(_reasons(group)))
            for (target, workload), group in flagged.groupby(["target", "workload"], sort=False)
        ]
        frame = frame[~frame["cell"].isin(set(flagged["cell"]))]
    values = {key: g["value"].to_numpy(dtype=float) for key, g in frame.groupby(KEY)}
    return _Side(values, measured), excluded


def _row(
    key: Key,
    unit: str,
    base: _Side,
    new: _Side,
    threshold: float,
    alpha: float,
    floors: Mapping[Key, float],
) -> dict:
    """One output row: medians, ratio and interval, p-value, and the status."""
    target, workload, metric = key
    b, n = base.get(key), new.get(key)
    row: dict[str, Any] = dict.fromkeys(COLUMNS, np.nan)
    better = direction(metric)
    row.update(
        target=target, workload=workload, metric=metric, unit=unit,
        threshold=threshold if better else np.nan,
        direction=better or "none", n_base=_count(b), n_new=_count(n),
        base_median=_median(b), new_median=_median(n),
    )  # fmt: skip
    if b is None or n is None:
        row["status"] = ADDED if b is None else REMOVED
        return row
    decision = decide(b, n, metric, threshold, alpha)
    found = decision.ratio
    row["status"] = _drift(decision.status, found, floors.get(key))
    row["p_value"] = np.nan if decision.p_value is None else decision.p_value
    if found is not None:
        row.update(ratio=found.ratio, change=found.ratio - 1.0)
        row.update(ci_low=_nan(found.low), ci_high=_nan(found.high))
    return row


def _drift(status: str, found: stats.Ratio | None, floor: float | None) -> str:
    """A regression no larger than the drift the history shows between unchanged runs: separate
    runs differ by more than their repetitions do (the U test and the interval cannot see that),
    and an alert that fires on drift teaches people to ignore it."""
    if status == REGRESSION and found is not None and floor is not None:
        return DRIFT if abs(found.ratio - 1.0) <= floor else status
    return status


def _count(values: np.ndarray | None) -> int:
    return 0 if values is None else len(values)


def _median(values: np.ndarray | None) -> float:
    return float(np.median(values)) if values is not None and len(values) else np.nan


def _nan(value: float | None) -> float:
    return np.nan if value is None else value


def _reasons(group: pd.DataFrame) -> list[str]:
    seen: dict[str, None] = {}
    for reasons in group["reasons"]:
        seen.update(dict.fromkeys(reasons or []))
    return list(seen)
