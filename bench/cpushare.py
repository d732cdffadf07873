"""A warning when a target used markedly fewer CPUs than it was given.

A container limited to ``cpus: 2`` can run a repetition at one CPU and ten times slower than
bare while the bare cells of the same round use two: a CFS quota that bites, a cpuset that
overlaps other load, a runtime that serialises. The median shows the slowdown and nothing says
why. A target is flagged when its median CPU use (``cpu.util_pct``) is under ``STARVED`` of
the CPUs it was given while another target of the same workload used at least that many: the
workload can use the CPUs, so this target did not get them. A single-threaded workload, which
uses one CPU everywhere, is never flagged.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.results.model import Manifest, TargetEntry, as_manifest

STARVED = 0.75  # used less than this share of the CPUs given


def given_cpus(entry: TargetEntry) -> float | None:
    """The CPUs a target could use: its usable cores, narrowed by an engine's CPU quota or a
    quota the worker saw in its cgroup."""
    fp = entry.fingerprint
    if fp is None:
        return None
    cores = fp.cores.get("usable") if isinstance(fp.cores, dict) else fp.cores
    candidates = [float(cores)] if cores else []
    limits = getattr(fp, "limits", None) or {}
    if isinstance(limits, dict) and limits.get("nano_cpus"):
        candidates.append(limits["nano_cpus"] / 1e9)
    quota = (fp.cgroup_limits or {}).get("cpus")
    if quota:
        candidates.append(float(quota))
    return min(candidates) if candidates else None


def warnings(samples: pd.DataFrame, manifest: Manifest | dict[str, Any]) -> list[str]:
    """One line per starved target and workload, naming its use, what it was given, the
    target that used its CPUs, and the throttled time when the container's quota bit."""
    manifest = as_manifest(manifest)
    if samples.empty or "cpu.util_pct" not in set(samples["metric"]):
        return []
    medians = samples.groupby(["workload", "target", "metric"], sort=False)["value"].median()
    out = []
    for workload in dict.fromkeys(samples["workload"]):
        use = _shares(medians, workload, manifest)
        for target, (used, given) in use.items():
            bar = STARVED * given
            others = [t for t, (u, _) in use.items() if t != target and u >= bar]
            if used < bar and others:
                busiest = max(others, key=lambda t: use[t][0])
                out.append(_line(medians, workload, target, used, given, busiest, use))
    return out


def _shares(
    medians: pd.Series, workload: str, manifest: Manifest
) -> dict[str, tuple[float, float]]:
    """(CPUs used, CPUs given) per target of ``workload`` whose both are known."""
    out = {}
    for target, entry in manifest.targets.items():
        key = (workload, target, "cpu.util_pct")
        given = given_cpus(entry)
        if key in medians.index and given:
            out[target] = (float(medians[key]) / 100.0, given)
    return out


def _line(
    medians: pd.Series,
    workload: str,
    target: str,
    used: float,
    given: float,
    other: str,
    use: dict[str, tuple[float, float]],
) -> str:
    throttled = medians.get((workload, target, "cpu.throttled_s"))
    why = (
        f"its CPU quota held it back for {throttled:.2f} s (cpu.throttled_s, median)"
        if throttled is not None and throttled > 0
        else "look for other load on its CPUs, an overlapping cpuset or a runtime that serialises"
    )
    return (
        f"{workload} on {target}: used {used:.2f} of the {given:g} CPUs it was given (median) "
        f"while {other} used {use[other][0]:.2f} of {use[other][1]:g}; {why}"
    )
