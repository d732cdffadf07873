"""Warnings a fleet's numbers call for: the node that is not like the others, and a target
whose cells landed on different hardware.

A fleet run (``nodes: all``) exists to find the slow node. A node is flagged on a key metric
when its median is worse than, and outside the bootstrap 95% interval of, the median of every
other node's repetitions, by more than ``MARGIN`` (a difference too small to matter is not
worth a page). Only the worse side is flagged: with two nodes each is outside the other's
interval, and the one to look at is the slow one.

A target that is not pinned to a node may land on any node of its partition; when those nodes
differ in hardware (CPUs, memory, GPUs, features, as Slurm records them), its spread is partly
the machines', and the reader is told which.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bench import stats
from bench.metrics import KEY_METRICS, direction
from bench.results.model import Manifest, as_manifest
from bench.units import fmt

MARGIN = 0.05
NODE = "node"


def warnings(
    samples: pd.DataFrame, manifest: Manifest | dict[str, Any], cells: pd.DataFrame | None = None
) -> list[str]:
    """Outlier nodes of every fleet, then targets that ran on differing hardware."""
    manifest = as_manifest(manifest)
    return outliers(samples, manifest) + mixed_hardware(cells)


def _fleets(manifest: Manifest) -> dict[tuple[str, str], dict[str, str]]:
    """Per fleet (base name and its other swept values), each node's target name."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for name, swept in manifest.matrix.targets.items():
        node = swept.values.get(NODE)
        if node is None:
            continue
        rest = ",".join(f"{k}={v}" for k, v in swept.values.items() if k != NODE)
        out.setdefault((swept.base, rest), {})[str(node)] = name
    return {key: nodes for key, nodes in out.items() if len(nodes) > 1}


def outliers(samples: pd.DataFrame, manifest: Manifest) -> list[str]:
    if samples.empty:
        return []
    out = []
    for (base, rest), nodes in _fleets(manifest).items():
        fleet = f"{base}[{rest}]" if rest else base
        rows = samples[samples["target"].isin(nodes.values())]
        for (workload, metric), group in rows.groupby(["workload", "metric"], sort=False):
            if metric not in KEY_METRICS or direction(metric) is None:
                continue
            for node, target in nodes.items():
                line = _outlier(group, target, node, str(workload), str(metric), fleet)
                if line:
                    out.append(line)
    return out


def _outlier(
    group: pd.DataFrame, target: str, node: str, workload: str, metric: str, fleet: str
) -> str | None:
    mine = group[group["target"] == target]["value"].to_numpy(dtype=float)
    others = group[group["target"] != target]["value"].to_numpy(dtype=float)
    interval = stats.median_ci(others) if len(mine) else None
    if interval is None:
        return None
    here, there = float(np.median(mine)), float(np.median(others))
    if interval[0] <= here <= interval[1] or abs(here / there - 1) <= MARGIN:
        return None
    if (here > there) != (direction(metric) == "lower"):
        return None  # better than the others
    unit = str(group["unit"].iloc[0]) if "unit" in group else ""
    return (
        f"{workload} on fleet {fleet}: node {node} is an outlier on {metric}: {fmt(here, unit)} "
        f"against the other nodes' {fmt(there, unit)} [{fmt(interval[0], unit)}, "
        f"{fmt(interval[1], unit)}]; look at what else runs on it, its clocks and its hardware"
    )


def mixed_hardware(cells: pd.DataFrame | None) -> list[str]:
    """Targets whose cells ran on Slurm nodes that Slurm describes differently."""
    if cells is None or cells.empty or "info" not in cells:
        return []
    seen: dict[str, dict[str, str]] = {}
    for target, info in zip(cells["target"], cells["info"], strict=True):
        slurm = info.get("slurm") if isinstance(info, dict) else None
        if isinstance(slurm, dict) and slurm.get("node"):
            hardware = slurm.get("node_hardware") or {}
            described = ", ".join(f"{k} {v}" for k, v in sorted(hardware.items()))
            seen.setdefault(str(target), {})[str(slurm["node"])] = described
    out = []
    for target, nodes in seen.items():
        if len(set(nodes.values())) > 1:
            listed = "; ".join(f"{node}: {desc}" for node, desc in sorted(nodes.items()))
            out.append(
                f"{target}: its cells ran on nodes with different hardware ({listed}); its "
                "spread includes the machines: pin it (nodelist:, constraint:) or run a fleet "
                "(nodes: all) to see each node"
            )
    return out
