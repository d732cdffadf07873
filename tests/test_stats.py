"""Summaries (median, IQR, bootstrap CI of the median, MAD outliers) and ratios to a baseline."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from bench.report.terminal import print_summary
from bench.stats import median_ci, outliers, overhead, ratio, summarize
from bench.units import fmt


def frame(rows):
    return pd.DataFrame(rows, columns=["workload", "target", "metric", "unit", "value"])


def test_median_and_iqr() -> None:
    rows = [("w", "t", "m", "s", v) for v in (1.0, 2.0, 3.0, 4.0, 100.0)]
    out = summarize(frame(rows)).iloc[0]
    assert out["n"] == 5
    assert out["median"] == 3.0  # robust to the outlier
    assert out["q1"] == 2.0 and out["q3"] == 4.0
    assert out["iqr"] == 2.0


def test_groups_keep_first_seen_order() -> None:
    rows = [
        ("zeta", "b", "m", "s", 1.0),
        ("alpha", "a", "m", "s", 2.0),
        ("zeta", "a", "m", "s", 3.0),
    ]
    out = summarize(frame(rows))
    assert list(zip(out["workload"], out["target"], strict=True)) == [
        ("zeta", "b"),
        ("alpha", "a"),
        ("zeta", "a"),
    ]


def test_empty_input() -> None:
    assert summarize(frame([])).empty


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.0123, "s", "12.3 ms"),
        (2.5, "s", "2.5 s"),
        (3 * 2**20, "bytes", "3 MiB"),
        (5.2e8, "bytes/s", "520 MB/s"),
        (123.456, "samples/s", "123.5 samples/s"),
        (10140.4, "samples/s", "10,140 samples/s"),
        (191.34, "%", "191.3 %"),
        (float("nan"), "s", "-"),
        # rounding up to 1000 of a unit moves to the next one, never to exponent notation
        (999.7 * 2**20, "bytes", "0.976 GiB"),
        (1023.9 * 2**20, "bytes", "1 GiB"),
        (0.9996, "s", "1 s"),
        (4321.0, "s", "4,321 s"),
    ],
)
def test_units_are_scaled(value: float, unit: str, text: str) -> None:
    assert fmt(value, unit) == text


def test_hardware_note_only_when_targets_differ() -> None:
    from bench.report.terminal import hardware_note

    box = {"cpu_model": "Xeon", "cores": {"logical": 2}, "memory_bytes": 2**34, "python": "3.11"}
    same = {"targets": {"a": {"fingerprint": box}, "b": {"fingerprint": {**box, "python": "3.12"}}}}
    assert hardware_note(same) is None  # software differences are not hardware
    other = {**box, "cpu_model": "EPYC", "gpu_names": ["H100"]}
    differ = {"targets": {"a": {"fingerprint": box}, "b": {"fingerprint": other}}}
    note = hardware_note(differ)
    assert note is not None and "different hardware" in note
    assert "a: Xeon, 2 cores, 16 GiB" in note and "b: EPYC, 2 cores, 16 GiB, GPUs: H100" in note
    failed = {"targets": {"a": {"fingerprint": box}, "b": {"fingerprint_error": "down"}}}
    assert hardware_note(failed) is None


def test_summary_has_range_interval_and_outliers() -> None:
    rows = [("w", "t", "m", "s", v) for v in (10.0, 10.2, 9.9, 10.1, 10.0, 25.0)]
    out = summarize(frame(rows)).iloc[0]
    assert out["min"] == 9.9 and out["max"] == 25.0
    assert out["ci_low"] <= out["median"] <= out["ci_high"]
    assert out["ci_high"] < 25.0  # the median's interval is not dragged by the outlier
    assert out["outliers"] == 1


def test_no_interval_below_three_values() -> None:
    out = summarize(frame([("w", "t", "m", "s", 1.0), ("w", "t", "m", "s", 2.0)])).iloc[0]
    assert np.isnan(out["ci_low"]) and np.isnan(out["ci_high"])
    assert median_ci(np.array([1.0, 2.0])) is None


def test_median_interval_covers_the_true_median_about_95_percent() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    for trial in range(200):
        values = rng.lognormal(mean=0.0, sigma=0.3, size=15)  # skewed, true median 1.0
        low, high = median_ci(values, seed=trial)
        hits += low <= 1.0 <= high
    assert 0.88 <= hits / 200 <= 0.995


def test_outliers_by_modified_z_score() -> None:
    values = np.array([1.0, 1.1, 0.9, 1.05, 0.95, 5.0])
    assert outliers(values).tolist() == [False] * 5 + [True]
    assert not outliers(np.array([1.0, 1.1, 0.9, 1.05])).any()
    assert outliers(np.array([2.0, 2.0, 2.0, 3.0])).tolist() == [False, False, False, True]


def test_identical_targets_show_no_measurable_difference() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(100, 3, 10), rng.normal(100, 3, 10)
    found = ratio(a, b)
    assert found is not None and not found.measurable
    assert "no measurable difference" in found.describe()


def test_a_clear_slowdown_is_measurable() -> None:
    rng = np.random.default_rng(3)
    base, slow = rng.normal(100, 1, 10), rng.normal(90, 1, 10)
    found = ratio(slow, base)
    assert found is not None and found.measurable and found.high < 1.0
    assert found.describe().startswith("-10.")


def test_overhead_table_compares_with_the_baseline() -> None:
    rows = [("w", "base", "tput", "samples/s", v) for v in (100.0, 101.0, 99.0, 100.5, 100)]
    rows += [("w", "ctr", "tput", "samples/s", v) for v in (80.0, 81.0, 79.0, 80.5, 80)]
    out = overhead(frame(rows), "base")
    assert out[["workload", "target", "metric"]].values.tolist() == [["w", "ctr", "tput"]]
    row = out.iloc[0]
    assert row["ratio"] == pytest.approx(80.0 / 100.0)
    assert row["ci_low"] < row["ratio"] < row["ci_high"] < 1.0
    # with fewer than 5 repetitions a side, a "95%" interval would cover far less: none
    assert ratio(np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 4, 5])).low is None
    assert ratio(np.array([1.0]), np.array([0.0])) is None


def test_pairing_by_repetition_cancels_drift_of_the_machine() -> None:
    rng = np.random.default_rng(7)
    regime = np.where(rng.random(10) < 0.5, 100.0, 135.0)  # the machine switches speed
    rows = []
    for rep, speed in enumerate(regime):
        for target, factor in (("base", 1.0), ("twin", 1.0), ("slow", 0.95)):
            noise = rng.normal(1.0, 0.01)
            rows.append(("w", target, "train.throughput", "samples/s", speed * factor * noise, rep))
    samples = pd.DataFrame(
        rows, columns=["workload", "target", "metric", "unit", "value", "repetition"]
    )
    paired = overhead(samples, "base", paired=True).set_index("target")
    assert paired.loc["slow", "ci_high"] < 1.0 and paired.loc["slow", "verdict"].startswith("-5.")
    assert "no measurable difference" in paired.loc["twin", "verdict"]
    independent = overhead(samples, "base").set_index("target")
    assert independent.loc["slow", "ci_low"] < 0.9  # the regimes swamp the 5%


def _printed(samples: pd.DataFrame, manifest: dict) -> str:
    console = Console(record=True, width=200)
    print_summary(console, samples, pd.DataFrame(), "t", manifest)
    return console.export_text()


def test_summary_compares_targets_with_the_baseline() -> None:
    rows = [("w", "base", "train.throughput", "samples/s", v) for v in (100.0, 101, 99, 100, 100)]
    rows += [("w", "same", "train.throughput", "samples/s", v) for v in (100.0, 99, 101, 100, 100)]
    rows += [("w", "slow", "train.throughput", "samples/s", v) for v in (90.0, 90.5, 89.5, 90, 90)]
    rows += [("w", "slow", "cpu.util_pct", "%", v) for v in (90.0, 90.5, 89.5, 90, 90)]
    samples = frame(rows)
    targets = [{"name": "base", "baseline": True}, {"name": "same"}, {"name": "slow"}]
    text = _printed(samples, {"suite": {"targets": targets}})
    assert "compared with the baseline 'base'" in text
    assert text.lstrip().startswith("What isolation cost against 'base'")  # the first screen
    table = text.split("compared with")[1]  # the headline above it says the same in words
    same = next(line for line in table.splitlines() if "same" in line and "no measurable" in line)
    assert "train.throughput" in same
    slow = next(line for line in table.splitlines() if "slow" in line and "[-" in line)
    assert "-10.0%" in slow
    assert "cpu.util_pct" not in text.split("compared with")[1]  # key metrics only
    off = _printed(samples, {"suite": {"targets": targets, "overhead": False}})
    assert "compared with" not in off


def test_ratio_of_a_metric_that_is_often_zero_has_no_interval_and_no_warning() -> None:
    baseline = np.array([0.0, 0.0, 0.0, 1.0, 2.0, 3.0])
    target = np.array([1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning on the user's terminal fails the test
        found = ratio(target, baseline)
    assert found is not None and found.low is None and found.high is None
    assert found.describe().endswith("(no interval: the baseline is often 0)")
