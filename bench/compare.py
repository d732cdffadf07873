"""Run against run: did anything get worse between BASE and NEW, and is that evidence or noise?

Cells are matched by (target, workload, metric). For each, the change is the ratio of the two
medians, NEW / BASE, with its bootstrap 95% interval (``stats.ratio``), and the two samples go
through a Mann-Whitney U test (two-sided, nonparametric: benchmark times are not normal). A
change is *significant* only when both agree: p below ``alpha`` and an interval that excludes
1.0. It counts as a regression only when it is significant, larger than the threshold (a noise
floor: the machine drifts by a few percent between runs, asv and Firecracker's A/B tests use the
same two-part rule), and in the direction that is bad for the metric. Metrics with no good
direction (CPU and GPU utilisation, power, clocks) are shown and never judged.

Two runs are only compared when their key fingerprints (hardware, kernel, OS, Python, torch,
CUDA, driver, accelerator) agree, because otherwise the comparison measures the machines, as
pyperf refuses to compare benchmarks with different metadata. Everything here reads stored
results only and returns plain data, so a notebook can call ``compare_runs`` and render
``Comparison.rows`` however it likes; ``bench.report.regressions`` renders it for the CLI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bench import results, stats
from bench.errors import IncomparableRunsError, InputError, ResultsError
from bench.metadata import hardware
from bench.report.terminal import invalid_cells

SCHEMA_VERSION = 1
DEFAULT_THRESHOLD = 0.05
ALPHA = 0.05  # two-sided, per metric; the threshold keeps small significant drifts quiet

LOWER, HIGHER = "lower", "higher"  # which way is better; None: informational

# Every metric of the vocabulary and which way is better. Latency, time, memory and start-up
# going up is bad; throughput and bandwidth going down is bad. Utilisation, power and clocks
# have no good direction (higher GPU utilisation can mean more work or a slower kernel), so
# they are informational. A metric missing here is informational too: never judged blindly.
DIRECTIONS: dict[str, str | None] = {
    "startup.provision_s": LOWER,
    "startup.kernel_boot_s": LOWER,
    "startup.create_s": LOWER,
    "startup.start_s": LOWER,
    "startup.pull_s": LOWER,
    "startup.ready_s": LOWER,
    "startup.first_step_s": LOWER,
    "startup.total_s": LOWER,
    "train.throughput": HIGHER,
    "train.step_time_s": LOWER,
    "infer.throughput": HIGHER,
    "infer.latency_p50_s": LOWER,
    "infer.latency_p90_s": LOWER,
    "infer.latency_p99_s": LOWER,
    "data.throughput": HIGHER,
    "data.bandwidth": HIGHER,
    "mem.rss_peak_bytes": LOWER,
    "mem.host_bytes": LOWER,
    "mem.overhead_bytes": LOWER,
    "gpu.mem_peak_bytes": LOWER,
    "gpu.startup_mem_peak_bytes": LOWER,
    "cpu.util_pct": None,
    "cpu.user_pct": None,
    "cpu.sys_pct": None,
    "gpu.util_mean_pct": None,
    "gpu.util_max_pct": None,
    "gpu.power_mean_w": None,
    "gpu.sm_clock_mean_mhz": None,
    "gpu.startup_util_mean_pct": None,
    "gpu.startup_power_mean_w": None,
}

REGRESSION = "regression"
IMPROVEMENT = "improvement"
WITHIN = "within threshold"  # significant, but smaller than the threshold
NO_CHANGE = "no significant change"
INFORMATIONAL = "informational"
TOO_FEW = "too few repetitions"
NO_RATIO = "no ratio (base median is 0)"
ADDED = "added"
REMOVED = "removed"
DRIFT = "within run-to-run drift"  # set by a history that knows how much runs drift
STATUSES = (REGRESSION, IMPROVEMENT, WITHIN, DRIFT, NO_CHANGE, INFORMATIONAL, TOO_FEW, NO_RATIO)
STATUSES += (ADDED, REMOVED)

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


def direction(metric: str) -> str | None:
    """'lower' or 'higher' (which way is better), or None for an informational metric."""
    return DIRECTIONS.get(metric)


_THRESHOLD = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*$")


def parse_threshold(text: str | float, what: str = "--threshold") -> float:
    """'5%' or '0.05' -> 0.05; a number (from Python) is a fraction already. Text without '%'
    of 1 or more is refused rather than read as a fraction: '5' almost always means 5%, and
    guessing either way would hide a typo."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if not text >= 0:
            raise InputError(f"{what} {text!r}: a threshold cannot be negative")
        return float(text)
    found = _THRESHOLD.match(str(text))
    if found is None:
        raise InputError(
            f"{what} {text!r}: not a threshold",
            hint="write a percentage such as 5% or a fraction such as 0.05",
        )
    value = float(found.group(1))
    if found.group(2) == "%":
        return value / 100
    if value >= 1:
        raise InputError(
            f"{what} {text!r}: a fraction must be below 1", hint=f"write {value:g}% for percent"
        )
    return value


def parse_overrides(items: Iterable[str]) -> dict[str, float]:
    """['infer.latency_p99_s=10%', …] -> {'infer.latency_p99_s': 0.1}; metric names are
    checked against the runs later (``compare_runs``), when they are known."""
    out: dict[str, float] = {}
    for item in items:
        metric, found, value = item.partition("=")
        if not found or not metric.strip():
            raise InputError(
                f"--metric-threshold {item!r}: expected METRIC=THRESHOLD",
                hint="e.g. --metric-threshold infer.latency_p99_s=10%",
            )
        metric = metric.strip()
        out[metric] = parse_threshold(value, f"--metric-threshold {metric}")
    return out


@dataclass(frozen=True)
class Decision:
    """The verdict on one metric and the numbers it rests on."""

    status: str
    ratio: stats.Ratio | None
    p_value: float | None


def mann_whitney(base: np.ndarray, new: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when every value is the same (no evidence)."""
    p = float(scipy_stats.mannwhitneyu(new, base, alternative="two-sided").pvalue)
    return 1.0 if np.isnan(p) else p


def decide(
    base: np.ndarray, new: np.ndarray, metric: str, threshold: float, alpha: float = ALPHA
) -> Decision:
    """Regression, improvement or why neither, for one metric's BASE and NEW repetitions.

    Informational metrics are never judged. Below ``stats.MIN_FOR_CI`` repetitions on either
    side there is no interval and no test worth the name, and the status says so rather than
    "no change". Otherwise the change must be significant (U test and interval agree) and,
    by its point estimate, beyond ``threshold`` in the metric's bad direction to regress.
    """
    base, new = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    found = stats.ratio(new, base)
    better = direction(metric)
    enough = min(len(base), len(new)) >= stats.MIN_FOR_CI
    p = mann_whitney(base, new) if enough else None
    if better is None:
        return Decision(INFORMATIONAL, found, p)
    if p is None:
        return Decision(TOO_FEW, found, None)
    if found is None:
        return Decision(NO_RATIO, None, p)
    if not (p < alpha and found.measurable):
        return Decision(NO_CHANGE, found, p)
    change = found.ratio - 1.0
    if abs(change) <= threshold:
        return Decision(WITHIN, found, p)
    worse = change > 0 if better == LOWER else change < 0
    return Decision(REGRESSION if worse else IMPROVEMENT, found, p)


# --- fingerprints -------------------------------------------------------------------------


def _software(fp: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The software facts that change what a number means: a kernel, a torch or a driver
    update is exactly what a nightly comparison must not mistake for a regression."""
    vm = fp.get("vm") if isinstance(fp.get("vm"), dict) else {}
    python = fp.get("python") if isinstance(fp.get("python"), dict) else {}
    nvml = fp.get("nvml") if isinstance(fp.get("nvml"), dict) else {}
    artefacts = entry.get("artefacts") if isinstance(entry.get("artefacts"), dict) else {}
    return {
        "kernel": fp.get("kernel"),
        "os": fp.get("os"),
        "python": python.get("version"),
        "torch": fp.get("torch"),
        "cuda": fp.get("torch_cuda"),
        "driver": nvml.get("driver_version"),
        "accel": vm.get("accel") or artefacts.get("accel"),
    }


def key_facts(entry: dict[str, Any]) -> dict[str, Any]:
    """What must match for two runs of a target to be comparable, from its manifest entry:
    ``hardware()`` (a VM counts as the host it ran on) plus the software facts."""
    fp = entry.get("fingerprint") or {}
    return {**hardware(fp), **_software(fp, entry)}


@dataclass(frozen=True)
class Difference:
    """One key fact that differs between the runs, for one target."""

    target: str
    key: str
    base: Any
    new: Any

    def describe(self) -> str:
        """One line, e.g. "bare: cpu_model differs: 'Xeon X' vs 'EPYC Y'"."""
        return f"{self.target}: {self.key} differs: {self.base!r} vs {self.new!r}"


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def fingerprint_differences(base: dict[str, Any], new: dict[str, Any]) -> list[Difference]:
    """Key fingerprint differences of every target present in both manifests.

    A target whose fingerprint was not recorded in a run (its probe failed) cannot be shown to
    be the same; that is reported as a difference too, never assumed away.
    """
    out = []
    base_targets, new_targets = base.get("targets", {}), new.get("targets", {})
    for name in [t for t in new_targets if t in base_targets]:
        b, n = base_targets[name], new_targets[name]
        if "fingerprint" not in b or "fingerprint" not in n:
            b_has, n_has = "fingerprint" in b, "fingerprint" in n
            if b_has != n_has or not b_has:
                out.append(Difference(name, "fingerprint", _recorded(b), _recorded(n)))
            continue
        base_facts, new_facts = key_facts(b), key_facts(n)
        out += [
            Difference(name, key, base_facts[key], new_facts[key])
            for key in base_facts
            if not _same(base_facts[key], new_facts[key])
        ]
    return out


def _recorded(entry: dict[str, Any]) -> str:
    if "fingerprint" in entry:
        return "recorded"
    return f"not recorded ({entry.get('fingerprint_error') or entry.get('prepare_error')})"


# --- loading ------------------------------------------------------------------------------


def _run(path: str | Path) -> Path:
    """A single run directory, or a one-line error saying what the path is instead."""
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such run directory")
    if not (path / "manifest.json").is_file():
        raise ResultsError(
            f"{path}: not a run directory (no manifest.json)",
            hint="pass results/<suite>/<run-id>, as printed last by bench run",
        )
    return path


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


# --- comparing ----------------------------------------------------------------------------


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


def compare_runs(
    base_dir: str | Path,
    new_dir: str | Path,
    threshold: float | str = DEFAULT_THRESHOLD,
    overrides: Mapping[str, float | str] | None = None,
    allow_different_hosts: bool = False,
    alpha: float = ALPHA,
) -> Comparison:
    """Compare the run in ``new_dir`` with the one in ``base_dir``.

    ``threshold`` is the smallest change that counts (0.05 or '5%'); ``overrides`` sets it per
    metric. Raises ``IncomparableRunsError`` when the key fingerprints differ, unless
    ``allow_different_hosts``; the differences are then in ``Comparison.differences``.
    """
    base_path, new_path = _run(base_dir), _run(new_dir)
    base_manifest, new_manifest = results.load_manifest(base_path), results.load_manifest(new_path)
    differences = fingerprint_differences(base_manifest, new_manifest)
    if differences and not allow_different_hosts:
        raise IncomparableRunsError(differences)
    default = parse_threshold(threshold, "threshold")
    limits = {
        m: parse_threshold(v, f"--metric-threshold {m}") for m, v in (overrides or {}).items()
    }
    base_all, new_all = results.load(base_path), results.load(new_path)
    _check_overrides(limits, set(base_all["metric"]) | set(new_all["metric"]))
    base_valid, base_excluded = _side(base_all, base_path, "base")
    new_valid, new_excluded = _side(new_all, new_path, "new")
    rows = [
        _row(key, unit, base_valid, new_valid, limits.get(key[2], default), alpha)
        for key, unit in _keys(base_all, new_all).items()
    ]
    return Comparison(
        base=base_path,
        new=new_path,
        base_run_id=str(base_manifest.get("run_id", base_path.name)),
        new_run_id=str(new_manifest.get("run_id", new_path.name)),
        rows=pd.DataFrame(rows, columns=COLUMNS),
        threshold=default,
        overrides=limits,
        alpha=alpha,
        differences=differences,
        excluded=base_excluded + new_excluded,
        notes=definition_notes(base_manifest, new_manifest),
    )


def _check_overrides(limits: dict[str, float], seen: set[str]) -> None:
    """A per-metric threshold must name a metric that can regress: a typo would otherwise
    leave the metric on the default threshold without a word."""
    for metric in limits:
        if metric not in DIRECTIONS and metric not in seen:
            raise InputError(
                f"--metric-threshold {metric}: unknown metric (not in either run nor in "
                "bench's metric vocabulary)",
                hint="metric names are listed in the README, e.g. train.step_time_s",
            )
        if direction(metric) is None:
            raise InputError(
                f"--metric-threshold {metric}: an informational metric (no good direction), "
                "it is never a regression",
                hint="drop this option",
            )


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
    flagged = invalid_cells(results.load_cells(path))
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


def _row(key: Key, unit: str, base: _Side, new: _Side, threshold: float, alpha: float) -> dict:
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
    row["status"] = decision.status
    row["p_value"] = np.nan if decision.p_value is None else decision.p_value
    if found is not None:
        row.update(ratio=found.ratio, change=found.ratio - 1.0)
        row.update(ci_low=_nan(found.low), ci_high=_nan(found.high))
    return row


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


def definition_notes(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Targets and workloads of the same name defined differently in the two suites.

    Not a refusal (changing a target's configuration is often the point of the comparison),
    but a changed batch size or step count moves the numbers by itself, and the reader
    must know that before blaming the stack.
    """
    notes = []
    for section in ("targets", "workloads"):
        old = {e["name"]: e for e in base.get("suite", {}).get(section, []) if "name" in e}
        for entry in new.get("suite", {}).get(section, []):
            before = old.get(entry.get("name"))
            if before is None:
                continue
            changed = [
                f"{k} {before.get(k)!r} -> {entry.get(k)!r}"
                for k in dict.fromkeys([*before, *entry])
                if not _same(before.get(k), entry.get(k))
            ]
            if changed:
                kind = section[:-1]
                notes.append(
                    f"{kind} {entry['name']!r} is defined differently: {', '.join(changed)}"
                )
    return notes
