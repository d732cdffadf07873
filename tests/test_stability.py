"""Stability warnings: each problem is found, named once per workload and target, and says
what to do; steady data raises none."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.stability import warnings

COLUMNS = ["workload", "target", "metric", "unit", "repetition", "value"]


def frame(series: dict[tuple[str, str, str, str], list[float]]) -> pd.DataFrame:
    rows = [(*key, rep, v) for key, values in series.items() for rep, v in enumerate(values)]
    return pd.DataFrame(rows, columns=COLUMNS)


STEADY = {
    ("w", "t", "train.throughput", "samples/s"): [100.0, 101.0, 99.0, 100.5, 99.5],
    ("w", "t", "startup.total_s", "s"): [2.0, 2.02, 1.98, 2.01, 1.99],
}


def test_steady_runs_raise_no_warning() -> None:
    raw = {"c": {"step_time_s": [0.01, 0.0101, 0.0099] * 5}}
    assert warnings(frame(STEADY), raw) == []


def test_noisy_repetitions_say_what_to_do() -> None:
    noisy = {**STEADY, ("w", "t", "train.throughput", "samples/s"): [100.0, 60, 140, 80, 120]}
    found = warnings(frame(noisy))
    assert len(found) == 1
    assert found[0].startswith("w on t: repetitions vary by more than 10%")
    assert "train.throughput 3" in found[0] and "pin CPUs" in found[0]
    assert "startup.total_s" not in found[0]  # steady metrics are not listed


def test_memory_and_percentages_are_not_judged_for_spread() -> None:
    data = {("w", "t", "mem.host_bytes", "bytes"): [1e8, 3e8, 2e8, 5e8, 4e8]}
    assert warnings(frame(data)) == []


def test_a_cold_first_repetition_is_flagged_in_either_direction() -> None:
    data = {
        ("w", "t", "startup.total_s", "s"): [6.0, 2.0, 2.1, 1.9, 2.0],
        ("w", "t", "train.throughput", "samples/s"): [40.0, 100.0, 101.0, 99.0, 100.0],
    }
    found = [w for w in warnings(frame(data)) if "first repetition" in w]
    assert len(found) == 1
    assert "startup.total_s 3.0x" in found[0] and "train.throughput 2.5x" in found[0]


def test_too_few_repetitions_is_said_once() -> None:
    data = {key: values[:2] for key, values in STEADY.items()}
    found = warnings(frame(data))
    assert found == [
        "only 2 repetition(s): no confidence intervals; set repetitions: 5 or more "
        "(the default is 20; tcg_repetitions for a VM under software emulation) for numbers "
        "you can compare"
    ]


def test_a_target_with_fewer_repetitions_is_named() -> None:
    data = dict(STEADY)
    data.update({("w", "vm", m, u): v[:1] for (_, _, m, u), v in STEADY.items()})
    found = [w for w in warnings(frame(data)) if "repetitions" in w and "confidence" in w]
    assert len(found) == 1 and found[0].startswith("too few repetitions for vm (1): ")


def test_iterations_still_speeding_up_after_warmup() -> None:
    falling = list(np.linspace(0.02, 0.01, 12))
    raw = {"0003-t-w-r1": {"step_time_s": falling, "warmup_step_time_s": [0.05]}}
    found = warnings(frame(STEADY), raw)
    assert len(found) == 1 and found[0].startswith("0003-t-w-r1: step_time_s still falling")
    assert "increase the warmup" in found[0]
    short = {"c": {"latency_s": list(np.linspace(0.02, 0.01, 6))}}  # too few to judge
    assert warnings(frame(STEADY), short) == []


def test_a_users_own_rate_and_iterations_are_judged_like_benchs() -> None:
    """``python.throughput`` in the user's unit (images/s) is a rate, and a python cell's raw
    ``iteration_s`` is a per-iteration series: both are checked as bench's own are."""
    noisy = {("w", "t", "python.throughput", "images/s"): [100.0, 60, 140, 80, 120]}
    found = warnings(frame(noisy))
    assert len(found) == 1 and "python.throughput" in found[0]
    cold = {("w", "t", "python.throughput", "images/s"): [40.0, 100.0, 101.0, 99.0, 100.0]}
    assert any("python.throughput 2.5x" in w for w in warnings(frame(cold)))
    raw = {"0001-t-w-r0": {"iteration_s": list(np.linspace(0.02, 0.01, 12))}}
    found = warnings(frame(STEADY), raw)
    assert len(found) == 1 and found[0].startswith("0001-t-w-r0: iteration_s still falling")
