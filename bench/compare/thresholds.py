"""Thresholds of a comparison: the smallest change that counts, as users write it ('5%',
'0.05', per metric), checked before anything is loaded so a typo fails at once."""

from __future__ import annotations

import re
from collections.abc import Iterable

from bench import metrics
from bench.errors import InputError

DEFAULT_THRESHOLD = 0.05

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


def check_overrides(limits: dict[str, float], seen: set[str]) -> None:
    """A per-metric threshold must name a metric that can regress: a typo would otherwise
    leave the metric on the default threshold without a word."""
    for metric in limits:
        if not metrics.known(metric) and metric not in seen:
            raise InputError(
                f"--metric-threshold {metric}: unknown metric (not in either run nor in "
                "bench's metric vocabulary)",
                hint="metric names are listed in the README, e.g. train.step_time_s",
            )
        if metrics.direction(metric) is None:
            raise InputError(
                f"--metric-threshold {metric}: an informational metric (no good direction), "
                "it is never a regression",
                hint="drop this option",
            )
