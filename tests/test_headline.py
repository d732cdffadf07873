"""The summary's first lines: each target against the baseline, in words, with intervals."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
from rich.console import Console

from bench.report import headline
from bench.report.headline import ASPECTS, said

START, THROUGHPUT, MEMORY = ASPECTS


def samples(reps: int = 6) -> pd.DataFrame:
    """bare; ctr 20% slower to start, same throughput, 10% more memory; vm 40x slower to
    start, a tenth of the throughput (noise of a few percent on every value)."""
    rng = np.random.default_rng(1)
    scale = {
        "bare": {"startup.total_s": 1.0, "train.throughput": 1000.0, "mem.host_bytes": 1e9},
        "ctr": {"startup.total_s": 1.2, "train.throughput": 1000.0, "mem.host_bytes": 1.1e9},
        "vm": {"startup.total_s": 40.0, "train.throughput": 100.0, "mem.host_bytes": 3e9},
    }
    rows = []
    for rep in range(reps):
        for target, metrics in scale.items():
            for metric, value in metrics.items():
                noise = 1 + rng.normal(0, 0.01)
                rows.append(("r", target, "train", rep, metric, value * noise, "x"))
    columns = ["run_id", "target", "workload", "repetition", "metric", "value", "unit"]
    return pd.DataFrame(rows, columns=columns)


def rendered(frame: pd.DataFrame) -> str:
    table = headline.table(frame, "bare", {"vm": "vm [TCG (software emulation)]"}, paired=True)
    assert table is not None
    console = Console(file=io.StringIO(), width=250)
    console.print(table)
    return console.file.getvalue()


def test_each_target_in_words_with_intervals() -> None:
    text = rendered(samples())
    ctr = next(line for line in text.splitlines() if line.startswith("ctr"))
    assert re.search(r"1\.(19|2\d)× slower \[1\.\d\d, 1\.\d\d\]", ctr)
    assert "no measurable difference [" in ctr  # throughput
    assert re.search(r"1\.(09|1\d)× more \[", ctr)
    vm = next(line for line in text.splitlines() if line.startswith("vm [TCG"))
    assert re.search(r"(39|40|41)× slower .* 0\.\d+× lower .* [23]\.\d\d× more", vm)


def test_too_few_repetitions_say_so_instead_of_an_interval() -> None:
    text = rendered(samples(reps=3))
    assert text.count("(no interval: < 5 repetitions)") == 6  # 2 targets x 3 aspects
    assert "more [" not in text and "slower [" not in text


def test_said() -> None:
    assert said(1.05, 1.02, 1.08, THROUGHPUT) == "1.05× higher [1.02, 1.08]"
    assert said(0.97, 0.95, 1.01, MEMORY) == "no measurable difference [0.95, 1.01]"
    assert said(0.5, 0.45, 0.55, START) == "0.50× faster [0.45, 0.55]"
    assert said(0.95, 0.94, 0.998, START) == "0.95× faster [0.94, 0.998]"  # not [0.94, 1.00]


def test_no_other_target_no_headline() -> None:
    frame = samples()
    assert headline.table(frame[frame.target == "bare"], "bare", {}, paired=True) is None
