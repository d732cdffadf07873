"""The tables of a report, as pandas DataFrames: what the HTML, the Markdown and a notebook
all show, computed once here so the three never disagree."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench import stats
from bench.metadata import hardware
from bench.report.terminal import KEY_METRICS, baseline_of, invalid_cells, is_paired, target_labels
from bench.units import fmt

# The headline: the key metrics, plus memory overhead and GPU use where a run has them.
HEADLINE_METRICS = (*KEY_METRICS, "mem.overhead_bytes", "gpu.util_mean_pct", "gpu.mem_peak_bytes")
# Ratios of percentages (GPU utilisation) mislead; those stay values without a ratio.
OVERHEAD_METRICS = (*KEY_METRICS, "mem.overhead_bytes", "gpu.mem_peak_bytes")
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


def headline(samples: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame:
    """One row per (workload, target, headline metric): the median with its 95% CI and, for
    targets other than the baseline, the ratio to the baseline with its CI and the verdict."""
    keyed = samples[samples["metric"].isin(HEADLINE_METRICS)]
    if keyed.empty:
        return pd.DataFrame(columns=HEADLINE_COLUMNS)
    compared = keyed[keyed["metric"].isin(OVERHEAD_METRICS)]
    columns = ["workload", "target", "metric", "unit", "n", "median", "ci_low", "ci_high"]
    summary = stats.summarize(keyed)[columns]
    baseline = baseline_of(manifest)
    keys = ["workload", "target", "metric"]
    ratios = pd.DataFrame(columns=[*keys, "ratio", "ratio_low", "ratio_high", "overhead"])
    found = stats.overhead(compared, baseline, paired=is_paired(manifest)) if baseline else None
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


def headline_tables(samples: pd.DataFrame, manifest: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Per workload, a display table: rows are targets; columns the repetitions, then each
    headline metric as 'median [95% CI]', each key metric followed by its change against the
    baseline ('vs <baseline>')."""
    found = headline(samples, manifest)
    labels = target_labels(manifest)
    baseline = baseline_of(manifest)
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


def _runtime(kind: str, artefacts: dict[str, Any]) -> str:
    """What the target ran in: the image for a container, the provisioner for a VM."""
    if kind == "docker":
        image = artefacts.get("image")
        tag = image.get("tag") if isinstance(image, dict) else image
        return f"docker {tag or '?'} on {artefacts.get('engine', '?')}"
    if kind == "vm":
        return f"vm ({artefacts.get('provisioner', 'qemu')})"
    return str(artefacts.get("python") or kind)


def _limits(fingerprint: dict[str, Any]) -> str:
    limits = fingerprint.get("cgroup_limits") or {}
    cpus, memory = limits.get("cpus"), limits.get("memory_bytes")
    parts = [f"{cpus:g} CPUs" if cpus else "", fmt(memory, "bytes") if memory else ""]
    return ", ".join(p for p in parts if p) or "none"


def _warnings(fingerprint: dict[str, Any]) -> str:
    found = [c for c in fingerprint.get("environment") or [] if c.get("status") == "warn"]
    return "; ".join(f"{c['check']}: {c['value']}" for c in found) or "none"


def _environment_column(entry: dict[str, Any]) -> dict[str, str]:
    fingerprint = entry.get("fingerprint") or {}
    artefacts = entry.get("artefacts") or {}
    hw = hardware(fingerprint) if fingerprint else {}
    cores = fingerprint.get("cores")
    logical = cores.get("logical") if isinstance(cores, dict) else cores
    memory = fingerprint.get("memory_bytes")
    python = fingerprint.get("python")
    nvml = fingerprint.get("nvml") or {}
    virt = fingerprint.get("virtualization") or {}
    values = {
        "kind": entry.get("kind", "?"),
        "runtime": _runtime(entry.get("kind", ""), artefacts),
        "accel": artefacts.get("accel_label") or ("native" if entry.get("kind") != "vm" else ""),
        "CPU": hw.get("cpu_model") or "",
        "cores": str(logical or ""),
        "memory": fmt(memory, "bytes") if memory else "",
        "limits": _limits(fingerprint) if fingerprint else "",
        "GPUs": ", ".join(fingerprint.get("gpu_names") or []) or ("none" if fingerprint else ""),
        "driver": nvml.get("driver_version") or ("none" if fingerprint else ""),
        "kernel": fingerprint.get("kernel") or "",
        "OS": fingerprint.get("os") or "",
        "virtualization": virt.get("systemd_detect_virt") or "",
        "Python": python.get("version", "") if isinstance(python, dict) else str(python or ""),
        "torch": fingerprint.get("torch") or "",
        "CUDA": fingerprint.get("torch_cuda") or ("none" if fingerprint else ""),
        "numpy": fingerprint.get("numpy") or "",
        "environment warnings": _warnings(fingerprint) if fingerprint else "",
    }
    return {row: str(values[row]) for row in ENVIRONMENT_ROWS}


def environment(manifest: dict[str, Any]) -> pd.DataFrame:
    """Rows are properties, columns targets (by their labels), plus a ``differs`` column that
    is True where the targets disagree: the first thing to check when two targets differ."""
    labels = target_labels(manifest)
    columns = {
        labels.get(name, name): _environment_column(entry)
        for name, entry in manifest.get("targets", {}).items()
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
