"""Summaries: median and IQR per workload, target and metric, in suite order."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.report.units import fmt
from bench.stats import summarize


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
    ],
)
def test_units_are_scaled(value: float, unit: str, text: str) -> None:
    assert fmt(value, unit) == text


def test_hardware_note_only_when_targets_differ() -> None:
    from bench.report.console import hardware_note

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
