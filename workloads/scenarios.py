"""MLPerf LoadGen's scenarios as an inference workload names them, and the rule for which
options each one reads.

Standard library only: the controller checks suites with it before anything is deployed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workloads.options import SpecError

SCENARIOS = ("single_stream", "multi_stream", "server", "offline")
SCENARIO_OPTIONS = {
    "batch_size": ("server", "offline"),
    "target_qps": ("server", "offline"),
    "target_latency_s": ("server",),
    "samples_per_query": ("multi_stream",),
}
"""Inference options only some scenarios read (``batch_size`` counts when above 1)."""
REQUIRED = {"server": ("target_qps", "target_latency_s")}
"""What a scenario cannot run without: a server's offered load and its latency bound."""


def check_inference(workload: Mapping[str, Any]) -> None:
    """Options a scenario ignores are refused (a server's target given to single_stream would
    silently measure something else), and those it needs are required."""
    scenario = workload["scenario"]
    for key, scenarios in SCENARIO_OPTIONS.items():
        given = workload[key] is not None and (key != "batch_size" or workload[key] > 1)
        if given and scenario not in scenarios:
            plural = "s" if len(scenarios) > 1 else ""
            raise SpecError(
                f"workload.{key} applies to the {' and '.join(scenarios)} scenario{plural}, "
                f"not {scenario}"
            )
    for key in REQUIRED.get(scenario, ()):
        if workload[key] is None:
            raise SpecError(f"workload.{key} is required by the {scenario} scenario")
    low, high = workload["min_duration_s"], workload["max_duration_s"]
    if low is not None and high is not None and high < low:
        raise SpecError(
            f"workload.max_duration_s ({high:g}) is shorter than min_duration_s ({low:g})"
        )
