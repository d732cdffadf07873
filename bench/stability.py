"""Warnings about how far a run's numbers can be trusted, each saying what to do about it.

A median with a confidence interval still misleads when the repetitions disagree wildly, when
the first repetition paid for cold caches, or when iterations were still speeding up after the
warmup: these are properties of the measurement, not of the targets, and a user acts on them by
changing the suite (more repetitions, pinned CPUs, longer warmup), so that is what they say.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bench.stats import GROUP, MIN_FOR_CI, MIN_FOR_SPREAD

CV_LIMIT = 0.10  # repetitions varying more than this (std / mean) are flagged
COLD_FACTOR = 1.5  # first repetition this much worse than the rest's median
WARMING_FACTOR = 0.85  # last third of iterations this much faster than the first third
MIN_ITERATIONS = 9  # fewer per-iteration values say nothing about a trend
TIME_UNITS = {"s"}
RAW_SERIES = ("step_time_s", "latency_s", "batch_time_s", "request_s", "iteration_s")


def _rate(unit: str) -> bool:
    """A per-second unit: bench's own (samples/s, bytes/s, tokens/s) or a user's (images/s)."""
    return unit.endswith("/s")


def warnings(
    samples: pd.DataFrame,
    raw: dict[str, dict[str, Any]] | None = None,
    cells: pd.DataFrame | None = None,
) -> list[str]:
    """Every stability warning of a run, one line per kind of problem per workload and target,
    in suite order."""
    if samples.empty:
        return []
    spread: dict[tuple[str, str], list[str]] = {}
    cold: dict[tuple[str, str], list[str]] = {}
    for key, group in samples.groupby(GROUP, sort=False):
        if "repetition" in group:
            group = group.sort_values("repetition")
        ordered = group["value"].to_numpy(dtype=float)
        cv, factor = _variation(key[3], ordered), _cold_factor(key[3], ordered)
        if cv is not None:
            spread.setdefault(key[:2], []).append(f"{key[2]} {cv:.0%}")
        if factor is not None:
            cold.setdefault(key[:2], []).append(f"{key[2]} {factor:.1f}x")
    out = _too_few(samples)
    out += [
        f"{w} on {t}: repetitions vary by more than {CV_LIMIT:.0%} (coefficient of variation: "
        f"{', '.join(found)}); increase repetitions, pin CPUs (cpuset, pin_vcpus) and stop "
        "other load on the machine"
        for (w, t), found in spread.items()
    ]
    out += [
        f"{w} on {t}: the first repetition is much worse than the rest ({', '.join(found)}: "
        "cold caches); run a throw-away repetition first or compare warm repetitions only"
        for (w, t), found in cold.items()
    ]
    return out + _still_warming(raw or {}) + _thin_percentiles(cells)


def _too_few(samples: pd.DataFrame) -> list[str]:
    """One line naming the targets with too few repetitions for an interval (a target can run
    fewer than the others: a VM under emulation with ``tcg_repetitions``)."""
    column = "repetition" if "repetition" in samples else "value"
    counts = samples.groupby(GROUP)[column].count().groupby(level="target", sort=False).min()
    few = counts[counts < MIN_FOR_CI]
    if few.empty:
        return []
    if len(few) == len(counts):
        told = f"only {few.min()} repetition(s)"
    else:
        told = "too few repetitions for " + ", ".join(f"{t} ({n})" for t, n in few.items())
    return [
        f"{told}: no confidence intervals; set repetitions: {MIN_FOR_CI} or more (the default "
        "is 20; tcg_repetitions for a VM under software emulation) for numbers you can compare"
    ]


def _variation(unit: str, values: np.ndarray) -> float | None:
    """The coefficient of variation of a time or rate when it exceeds the limit, else None."""
    if (
        not (unit in TIME_UNITS or _rate(unit))
        or len(values) < MIN_FOR_SPREAD
        or values.mean() == 0
    ):
        return None
    cv = float(values.std(ddof=1) / abs(values.mean()))
    return cv if cv > CV_LIMIT else None


def _cold_factor(unit: str, values: np.ndarray) -> float | None:
    """How much worse the first repetition is than the rest's median, when it is markedly."""
    if len(values) < MIN_FOR_SPREAD:
        return None
    first, rest = values[0], float(np.median(values[1:]))
    if unit in TIME_UNITS and rest > 0 and first > COLD_FACTOR * rest:
        return float(first / rest)
    if _rate(unit) and first > 0 and rest > COLD_FACTOR * first:
        return float(rest / first)
    return None


def _still_warming(raw: dict[str, dict[str, Any]]) -> list[str]:
    """Cells whose measured iterations were still getting faster from first to last third."""
    out = []
    for cell, arrays in raw.items():
        for series in RAW_SERIES:
            values = np.asarray(arrays.get(series) or [], dtype=float)
            if len(values) < MIN_ITERATIONS:
                continue
            third = len(values) // 3
            early, late = float(np.median(values[:third])), float(np.median(values[-third:]))
            if early > 0 and late < WARMING_FACTOR * early:
                out.append(
                    f"{cell}: {series} still falling after the warmup (last third "
                    f"{1 - late / early:.0%} faster than the first); increase the warmup"
                )
    return out


def _thin_percentiles(cells: pd.DataFrame | None) -> list[str]:
    """Latency percentiles that rest on fewer queries than MLPerf LoadGen's early-stopping
    rule needs to bound them (p99: 662): the value is the slowest query or close to it, and
    another run can differ a lot. One line per workload and target, at its fewest queries."""
    if cells is None or cells.empty or "info" not in cells:
        return []
    found: dict[tuple[str, str], tuple[int, dict[str, int]]] = {}
    for row in cells.itertuples(index=False):
        loadgen = row.info.get("loadgen") if isinstance(row.info, dict) else None
        if getattr(row, "status", "ok") != "ok" or not isinstance(loadgen, dict):
            continue
        count = int(loadgen.get("query_count") or 0)
        needed = sorted((loadgen.get("queries_needed") or {}).items(), key=lambda item: item[1])
        short = {m: n for m, n in needed if n > count}
        key = (row.workload, row.target)
        if short and count < found.get(key, (count + 1, {}))[0]:
            found[key] = (count, short)
    return [
        f"{w} on {t}: {', '.join(f'{m} (needs {n})' for m, n in short.items())} rest on "
        f"{count} queries, fewer than LoadGen's early-stopping rule needs to bound them; raise "
        "min_query_count (or min_duration_s) or read them as rough"
        for (w, t), (count, short) in found.items()
    ]
