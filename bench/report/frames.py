"""The tables of a report, as pandas DataFrames: what the HTML, the Markdown and a notebook
all show, computed once here so the three never disagree."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench import stats
from bench.metrics import HEADLINE_METRICS, OVERHEAD_METRICS
from bench.report.labels import target_labels
from bench.results import invalid_cells
from bench.results.model import Fingerprint, Manifest, TargetEntry, as_manifest
from bench.targets import registry
from bench.units import fmt

HEADLINE_COLUMNS = [
    "workload",
    "target",
    "metric",
    "unit",
    "n",
    "median",
    "ci_low",
    "ci_high",
    "ratio",
    "ratio_low",
    "ratio_high",
    "overhead",
]


def headline(samples: pd.DataFrame, manifest: Manifest | dict[str, Any]) -> pd.DataFrame:
    """One row per (workload, target, headline metric): the median with its 95% CI and, for
    targets other than the baseline, the ratio to the baseline with its CI and the verdict
    (``bench.metrics`` says which metrics are in the headline and which have a ratio)."""
    manifest = as_manifest(manifest)
    keyed = samples[samples["metric"].isin(HEADLINE_METRICS)]
    if keyed.empty:
        return pd.DataFrame(columns=HEADLINE_COLUMNS)
    compared = keyed[keyed["metric"].isin(OVERHEAD_METRICS)]
    columns = ["workload", "target", "metric", "unit", "n", "median", "ci_low", "ci_high"]
    summary = stats.summarize(keyed)[columns]
    baseline = manifest.baseline
    keys = ["workload", "target", "metric"]
    ratios = pd.DataFrame(columns=[*keys, "ratio", "ratio_low", "ratio_high", "overhead"])
    found = stats.overhead(compared, baseline, paired=manifest.paired) if baseline else None
    if found is not None and not found.empty:
        ratios = found.rename(
            columns={"ci_low": "ratio_low", "ci_high": "ratio_high", "verdict": "overhead"}
        )[list(ratios.columns)]
    table = summary.merge(ratios, on=keys, how="left")
    if baseline is not None:
        table.loc[table["target"] == baseline, "overhead"] = "baseline"
    return table[HEADLINE_COLUMNS]


def interval_text(median: float, low: float, high: float, unit: str) -> str:
    """'12.3 [11.9, 12.8] ms' ('980 µs [951 µs, 1.02 ms]' across a scale), or the median
    alone when there are too few repetitions for an interval."""
    if pd.isna(low) or pd.isna(high):
        return f"{fmt(median, unit)} (no CI: n < {stats.MIN_FOR_CI})"
    texts = [fmt(value, unit).rpartition(" ") for value in (median, low, high)]
    if len({suffix for _, _, suffix in texts}) == 1:  # one unit: say it once
        (m, _, suffix), (lo, _, _), (hi, _, _) = texts
        return f"{m} [{lo}, {hi}] {suffix}"
    return f"{fmt(median, unit)} [{fmt(low, unit)}, {fmt(high, unit)}]"


def overhead_text(ratio: float, low: float, high: float) -> str:
    """'+8.3% [+6.7%, +15.1%]' ('×20.2 [×18.6, ×26.1]' from twice the baseline up) when the
    CI excludes no change, else the same with 'n.s.' (no measurable difference) so a point
    estimate is never read as a finding."""
    if pd.isna(ratio):
        return ""
    if pd.isna(low) or pd.isna(high):
        return f"{ratio - 1:+.1%} (no CI: n < {stats.MIN_FOR_CI})"
    if ratio >= 2:  # "+1917.5%" reads worse than "×20.2"
        text = f"×{ratio:.3g} [×{low:.3g}, ×{high:.3g}]"
    else:
        text = f"{ratio - 1:+.1%} [{low - 1:+.1%}, {high - 1:+.1%}]"
    return text if not low <= 1.0 <= high else f"{text} n.s."


def headline_tables(
    samples: pd.DataFrame, manifest: Manifest | dict[str, Any]
) -> dict[str, pd.DataFrame]:
    """Per workload, a display table: rows are targets; columns the repetitions, then each
    headline metric as 'median [95% CI]', each key metric followed by its change against the
    baseline ('vs <baseline>')."""
    manifest = as_manifest(manifest)
    found = headline(samples, manifest)
    labels = target_labels(manifest)
    baseline = manifest.baseline
    out: dict[str, pd.DataFrame] = {}
    for workload, group in found.groupby("workload", sort=False):
        columns: dict[str, dict[str, str]] = {"repetitions": {}}
        for row in group.itertuples(index=False):
            label = labels.get(row.target, row.target)
            columns["repetitions"][label] = str(max(row.n, _int(columns["repetitions"], label)))
            columns.setdefault(row.metric, {})[label] = interval_text(
                row.median, row.ci_low, row.ci_high, row.unit
            )
            if baseline is not None and row.metric in OVERHEAD_METRICS:
                change = "baseline" if row.target == baseline else ""
                change = change or overhead_text(row.ratio, row.ratio_low, row.ratio_high)
                columns.setdefault(f"{row.metric} vs {baseline}", {})[label] = change
        table = pd.DataFrame(columns).fillna("")
        table.index.name = "target"
        out[str(workload)] = table
    return out


def _int(column: dict[str, str], key: str) -> int:
    return int(column.get(key, 0))


# --- environment ----------------------------------------------------------------------------

ENVIRONMENT_ROWS = (
    "kind",
    "runtime",
    "accel",
    "CPU",
    "cores",
    "memory",
    "limits",
    "GPUs",
    "driver",
    "kernel",
    "OS",
    "virtualization",
    "Python",
    "torch",
    "CUDA",
    "numpy",
    "environment warnings",
)


def _limits(fingerprint: Fingerprint) -> str:
    limits = fingerprint.cgroup_limits or {}
    cpus, memory = limits.get("cpus"), limits.get("memory_bytes")
    parts = [f"{cpus:g} CPUs" if cpus else "", fmt(memory, "bytes") if memory else ""]
    return ", ".join(p for p in parts if p) or "none"


def _warnings(fingerprint: Fingerprint) -> str:
    found = fingerprint.warnings
    return "; ".join(f"{c.check}: {c.value}" for c in found) or "none"


def _environment_column(entry: TargetEntry) -> dict[str, str]:
    fp = entry.fingerprint
    kind = registry.kind(entry.kind or "")
    values = {
        "kind": entry.kind or "?",
        "runtime": kind.runtime(entry.artefacts),
        "accel": kind.accel_row(entry.artefacts),
    }
    values.update(_fingerprint_rows(fp) if fp is not None else {})
    return {row: str(values.get(row, "")) for row in ENVIRONMENT_ROWS}


def _fingerprint_rows(fp: Fingerprint) -> dict[str, str]:
    """The rows a fingerprint fills; 'none' says a recorded fingerprint found nothing."""
    return {
        "CPU": fp.hardware().get("cpu_model") or "",
        "cores": str(fp.logical_cores or ""),
        "memory": fmt(fp.memory_bytes, "bytes") if fp.memory_bytes else "",
        "limits": _limits(fp),
        "GPUs": ", ".join(fp.gpu_names or []) or "none",
        "driver": fp.driver or "none",
        "kernel": fp.kernel or "",
        "OS": fp.os or "",
        "virtualization": (fp.virtualization or {}).get("systemd_detect_virt") or "",
        "Python": fp.python_version or "",
        "torch": fp.torch or "",
        "CUDA": fp.torch_cuda or "none",
        "numpy": fp.numpy or "",
        "environment warnings": _warnings(fp),
    }


def environment(manifest: Manifest | dict[str, Any]) -> pd.DataFrame:
    """Rows are properties, columns targets (by their labels), plus a ``differs`` column that
    is True where the targets disagree: the first thing to check when two targets differ."""
    manifest = as_manifest(manifest)
    labels = target_labels(manifest)
    columns = {
        labels.get(name, name): _environment_column(entry)
        for name, entry in manifest.targets.items()
    }
    table = pd.DataFrame(columns, index=list(ENVIRONMENT_ROWS))
    if table.empty:
        return table.assign(differs=pd.Series(dtype=bool))
    known = table.replace("", pd.NA)
    table["differs"] = known.nunique(axis=1, dropna=True) > 1
    return table


# --- INVALID cells ----------------------------------------------------------------------------


def invalid(cells: pd.DataFrame) -> pd.DataFrame:
    """The INVALID cells and why, one row each, for the top of a report."""
    found = invalid_cells(cells)
    columns = ["cell", "target", "workload", "repetition", "reasons"]
    if found.empty:
        return pd.DataFrame(columns=columns)
    out = found[columns].copy()
    out["reasons"] = out["reasons"].map("; ".join)
    return out.reset_index(drop=True)
