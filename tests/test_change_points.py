"""``bench history``'s change-point search on synthetic series of run medians whose answer is
known: seeded noise, steps of known size at known runs, slow drift with no step. Each series is
drawn from a fixed seed, so the answers never depend on the machine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.nightly import changepoints

SEEDS = range(10)  # every series below is drawn ten times, each from a fixed seed


def noisy(rng: np.random.Generator, count: int, spread: float, level: float = 1.0) -> np.ndarray:
    """Run medians with log-normal run-to-run noise of relative size ``spread``."""
    return level * np.exp(rng.normal(0.0, spread, count))


@pytest.mark.parametrize("seed", SEEDS)
def test_no_change_point_in_noise_alone(seed: int) -> None:
    rng = np.random.default_rng(seed)
    assert changepoints.change_points(noisy(rng, 30, 0.05)) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_a_step_is_found_at_its_run(seed: int) -> None:
    rng = np.random.default_rng(seed)
    step = np.r_[noisy(rng, 10, 0.03), noisy(rng, 10, 0.03, 1.3)]
    assert [i for i, _ in changepoints.change_points(step)] == [10]
    at_the_edge = np.r_[noisy(rng, 4, 0.03), noisy(rng, 12, 0.03, 1.3)]  # as early as allowed
    assert [i for i, _ in changepoints.change_points(at_the_edge)] == [4]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_slow_drift_has_no_change_point(seed: int) -> None:
    """30% over 30 runs, 1% a run: the halves differ beyond doubt, but no run is the cause."""
    rng = np.random.default_rng(seed)
    drift = noisy(rng, 30, 0.01) * np.linspace(1.0, 1.3, 30)
    assert changepoints.change_points(drift) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_a_step_on_top_of_a_drift_is_found_at_its_run(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = noisy(rng, 30, 0.01) * np.linspace(1.0, 1.1, 30) * np.r_[np.ones(15), np.full(15, 1.4)]
    assert [i for i, _ in changepoints.change_points(values)] == [15]


@pytest.mark.parametrize("seed", SEEDS)
def test_two_steps_and_a_stretch_that_came_back(seed: int) -> None:
    rng = np.random.default_rng(seed)
    two = np.r_[noisy(rng, 8, 0.02), noisy(rng, 8, 0.02, 1.3), noisy(rng, 8, 0.02, 1.6)]
    assert [i for i, _ in changepoints.change_points(two)] == [8, 16]
    back = np.r_[noisy(rng, 8, 0.02), noisy(rng, 6, 0.02, 1.3), noisy(rng, 8, 0.02)]
    assert [i for i, _ in changepoints.change_points(back)] == [8, 14]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_significant_step_under_the_threshold_is_not_a_change_point(seed: int) -> None:
    rng = np.random.default_rng(seed)
    small = np.r_[noisy(rng, 10, 0.005), noisy(rng, 10, 0.005, 1.03)]
    assert changepoints.change_points(small) == []


def test_change_point_sizes_and_directions() -> None:
    rng = np.random.default_rng(0)
    values = np.r_[noisy(rng, 6, 0.01, 0.010), noisy(rng, 6, 0.01, 0.030)]
    frame = pd.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(12)],
            "order": range(12),
            "workload": "train",
            "target": "bare",
            "metric": ["train.step_time_s"] * 12,
            "median": values,
        }
    )
    (point,) = changepoints.detect(frame)
    assert (point.index, point.run_id) == (6, "r6")
    assert point.change == pytest.approx(2.0, rel=0.05) and point.worse
    faster = frame.assign(metric="train.throughput")
    assert changepoints.detect(faster)[0].worse is False  # throughput up is better
