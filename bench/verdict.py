"""A cell's verdict, VALID or INVALID, with every reason, in the manner of MLPerf's LoadGen.

A number is only worth comparing if the run that produced it measured what it claims: enough
iterations for a stable median, no error, no change in machine speed while the clock
ran, the cache state the suite asked for. Such problems are invisible in the number itself, so
they are judged per cell from what the worker and the controller recorded, and the verdict
travels with the cell into ``cells.jsonl``, the summary and the reports. An inference cell
also carries LoadGen's own verdict, which is adopted with LoadGen's reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CLOCK_DROP = 0.9  # a clock below 90% of where it started (or of its maximum) changed speed
STEAL_LIMIT = 10.0  # % of the machine's CPU time taken by the hypervisor for other guests


@dataclass(frozen=True)
class Verdict:
    """VALID when ``reasons`` is empty."""

    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "INVALID" if self.reasons else "VALID"


def _slowed(low: float | None, high: float | None) -> bool:
    """Whether a clock read ``low`` at one moment and ``high`` at another changed speed."""
    return bool(low and high and low < CLOCK_DROP * high)


def _iterations(info: dict[str, Any], minimum: int) -> list[str]:
    count = info.get("measured_iterations")
    if count is None or count >= minimum:
        return []
    return [
        f"too few measured iterations ({count} < min_iterations {minimum}): "
        "raise the workload's steps, min_query_count, requests or samples"
    ]


def _cpu(info: dict[str, Any]) -> list[str]:
    state = info.get("cpu_state") or {}
    out = []
    throttled = state.get("thermal_throttle_events")
    if throttled:
        out.append(f"the CPU was thermally throttled {throttled} times during the measured phase")
    start, end = state.get("mhz_start"), state.get("mhz_end")
    if _slowed(end, start):
        out.append(
            f"the CPU clock fell from {start:.0f} to {end:.0f} MHz during the measured phase "
            "(set the governor to performance)"
        )
    steal = state.get("steal_pct")
    if steal is not None and steal > STEAL_LIMIT:
        out.append(
            f"the hypervisor took {steal:.0f}% of the CPU time (steal) during the measured "
            "phase: use dedicated vCPUs or a quieter host"
        )
    return out


def _gpu(info: dict[str, Any]) -> list[str]:
    steady = info.get("gpu_steady") or {}
    out = []
    if steady.get("slowdowns"):
        causes = ", ".join(steady["slowdowns"])
        out.append(f"the GPU slowed down during the measured phase: {causes}")
    low, high = steady.get("sm_clock_min_mhz"), steady.get("sm_clock_max_mhz")
    if _slowed(low, high):
        out.append(
            f"the GPU's SM clock varied between {low:.0f} and {high:.0f} MHz during the measured "
            "phase (lock it: nvidia-smi --lock-gpu-clocks)"
        )
    return out


def _cache(info: dict[str, Any]) -> list[str]:
    cache = info.get("cache")
    if not cache or cache.get("mode") != "cold" or cache.get("dropped"):
        return []
    return [f"cache: cold was asked for but the page cache was not dropped: {cache.get('reason')}"]


def _loadgen(info: dict[str, Any]) -> list[str]:
    """MLPerf LoadGen's own verdict on an inference cell (too few queries for early stopping,
    a server that missed its latency bound), with LoadGen's reasons."""
    loadgen = info.get("loadgen")
    if not isinstance(loadgen, dict) or loadgen.get("validity") == "VALID":
        return []
    validity = loadgen.get("validity") or "UNKNOWN"
    reasons = loadgen.get("reasons") or ["no reason given in its detail log"]
    return [f"LoadGen ruled the run {validity}: {reason}" for reason in reasons]


def judge(error: str | None, info: dict[str, Any], min_iterations: int) -> Verdict:
    """The verdict of one cell from its error (if it failed) and the facts recorded in its
    info (the worker's, and the controller's ``cache`` state)."""
    if error is not None:
        return Verdict([f"the cell failed: {error}"])
    reasons = _loadgen(info) + _iterations(info, min_iterations)
    reasons += _cpu(info) + _gpu(info) + _cache(info)
    return Verdict(reasons)
