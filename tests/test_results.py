"""Results store round trip, atomic writes, refusal to overwrite, multi-run loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.errors import ResultsError
from bench.results import (
    SAMPLE_COLUMNS,
    CellRecord,
    ResultStore,
    Sample,
    load,
    load_cells,
    load_manifest,
    load_raw,
)


def record(cell: int, status: str = "ok") -> CellRecord:
    return CellRecord(
        cell=cell,
        target="bare",
        kind="local",
        workload="w",
        workload_kind="train_step",
        repetition=cell,
        status=status,
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:01.500+00:00",
        duration_s=1.5,
        error=None if status == "ok" else "boom",
        startup={"provision": 0.01},
        absent={"gpu.util_mean_pct": "workload ran on cpu"},
    )


def sample(cell: int, metric: str, value: float) -> Sample:
    return Sample("r1", "bare", "local", "w", "train_step", cell, metric, value, "samples/s", cell)


def make_store(tmp_path: Path) -> ResultStore:
    store = ResultStore(tmp_path, "suite", "r1")
    store.create({"status": "running", "suite": {"name": "suite"}})
    return store


def test_round_trip(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.add_cell(record(0), [sample(0, "train.throughput", 10.0)], {"step_time_s": [0.1, 0.2]})
    store.add_cell(record(1), [sample(1, "train.throughput", 12.0)], {"step_time_s": [0.3]})
    store.update_manifest(status="complete")

    df = load(store.path)
    assert list(df.columns) == SAMPLE_COLUMNS
    assert df["value"].tolist() == [10.0, 12.0]
    assert df["repetition"].dtype == "int64"
    cells = load_cells(store.path)
    assert cells["status"].tolist() == ["ok", "ok"]
    assert cells.iloc[0]["absent"] == {"gpu.util_mean_pct": "workload ran on cpu"}
    assert load_manifest(store.path)["status"] == "complete"
    raw = load_raw(store.path)
    assert raw["0000-bare-w-r0"]["step_time_s"] == [0.1, 0.2]


def test_each_cell_is_on_disk_as_soon_as_it_is_added(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.add_cell(record(0), [sample(0, "m", 1.0)], {})
    # A fresh reader (as after a crash) sees the finished cell without any finalisation.
    assert load(tmp_path / "suite" / "r1")["value"].tolist() == [1.0]
    assert not list(store.path.glob(".*"))  # no temporary files left behind


def test_existing_run_is_never_overwritten(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.add_cell(record(0), [sample(0, "m", 1.0)], {})
    before = (store.path / "samples.jsonl").read_text()
    with pytest.raises(ResultsError, match="already exists") as info:
        ResultStore(tmp_path, "suite", "r1").create({})
    assert info.value.exit_code == 2
    assert (store.path / "samples.jsonl").read_text() == before


def test_suite_directory_loads_every_run(tmp_path: Path) -> None:
    for run in ("r1", "r2"):
        store = ResultStore(tmp_path, "suite", run)
        store.create({})
        store.add_cell(record(0), [Sample(run, "bare", "local", "w", "t", 0, "m", 1.0, "s", 0)], {})
    df = load(tmp_path / "suite")
    assert sorted(df["run_id"]) == ["r1", "r2"]
    assert sorted(load_cells(tmp_path / "suite")["run_id"]) == ["r1", "r2"]


def test_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no such results directory"):
        load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="holds no runs"):
        load(tmp_path / "empty")
    store = make_store(tmp_path)
    (store.path / "samples.jsonl").write_text('{"run_id": "r1"\n')
    with pytest.raises(ResultsError, match="malformed JSON"):
        load(store.path)


def test_failed_run_without_samples_loads_empty(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.add_cell(record(0, status="failed"), [], {})
    assert load(store.path).empty
    assert json.loads((store.path / "cells.jsonl").read_text())["error"] == "boom"


def test_samples_without_a_cell_record_are_not_results(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.add_cell(record(0), [sample(0, "m", 1.0)], {})
    # As if the run died after writing cell 1's samples but before its cell record.
    with (store.path / "samples.jsonl").open("a") as handle:
        handle.write(json.dumps({**sample(1, "m", 2.0).__dict__}) + "\n")
    assert load(store.path)["cell"].tolist() == [0]
