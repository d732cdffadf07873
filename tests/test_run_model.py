"""The typed run model: stored runs of every schema load, what a run is compared against is
recorded when it starts, and a manifest whose nested fields have the wrong shape is one line
and exit status 2 for every command that reads it, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import metrics, results
from bench.errors import ResultsError
from bench.results import model
from tests.conftest import bench_cli

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
FIXTURE_RUNS = sorted(p.parent for p in FIXTURES.glob("*/*/manifest.json"))


@pytest.mark.parametrize("run", FIXTURE_RUNS, ids=lambda p: p.parent.name)
def test_stored_schema_1_runs_load_and_migrate(run: Path) -> None:
    raw = json.loads((run / "manifest.json").read_text())
    assert raw["schema"] == 1 and "analysis" not in raw
    found = results.read_manifest(run)
    assert found.schema_version == model.SCHEMA_VERSION == 2
    assert (found.baseline, found.paired) == ("bare", True)  # the suite marks bare, interleaved
    assert found.run_id == run.name and set(found.targets) == set(raw["targets"])
    bare = found.targets["bare"]
    assert bare.kind == "local" and bare.fingerprint is not None
    assert bare.fingerprint.hardware()["cores"] == {
        k: v for k, v in raw["targets"]["bare"]["fingerprint"]["cores"].items() if k != "usable"
    }
    assert results.load_manifest(run) == raw  # notebooks still get the stored JSON


@pytest.mark.parametrize(
    ("suite", "expected"),
    [
        ({"targets": [{"name": "a"}, {"name": "b", "baseline": True}]}, ("b", True)),
        ({"targets": [{"name": "b", "baseline": True}], "overhead": False}, (None, True)),
        ({"targets": [{"name": "b", "baseline": True}], "order": "blocked"}, ("b", False)),
        ({"targets": [{"name": "a"}], "order": "random"}, (None, False)),
        ({}, (None, True)),
    ],
)
def test_schema_1_analysis_is_derived_as_bench_0_1_did(suite: dict, expected: tuple) -> None:
    found = model.parse({"schema": 1, "suite": suite})
    assert (found.baseline, found.paired) == expected


def test_a_new_run_records_what_it_is_compared_against(tmp_path: Path) -> None:
    store = results.ResultStore(tmp_path, "s", "r1")
    suite = {"name": "s", "order": "blocked", "targets": [{"name": "x", "baseline": True}]}
    store.create({"status": "running", "suite": suite})
    raw = json.loads((store.path / "manifest.json").read_text())
    assert raw["schema"] == 2
    assert raw["analysis"] == {"baseline": "x", "paired": False}
    assert results.read_manifest(store.path).baseline == "x"


def test_a_newer_schema_is_refused_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": 99}))
    with pytest.raises(ResultsError, match="schema 99 is not one this bench reads"):
        results.read_manifest(tmp_path)


def test_unknown_keys_are_kept() -> None:
    found = model.parse({"schema": 2, "suite": {"name": "s", "future": 1}, "later": {"x": 1}})
    assert found.suite.as_written() == {"name": "s", "future": 1}
    assert found.model_extra == {"later": {"x": 1}}


def test_old_cells_without_verdicts_count_failed_cells_as_invalid(tmp_path: Path) -> None:
    """A cells.jsonl row written before cells had verdicts: a failed cell's numbers are not
    results (reading it as VALID would let it into comparisons and histories)."""
    run = tmp_path / "s" / "r1"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"run_id": "r1", "suite": {"name": "s"}}))
    base = {"target": "t", "kind": "local", "workload": "w", "workload_kind": "train_step"}
    times = {"started_at": "x", "finished_at": "y", "duration_s": 1.0}
    rows = [
        {**base, **times, "cell": 0, "repetition": 0, "status": "ok"},
        {**base, **times, "cell": 1, "repetition": 1, "status": "failed", "error": "boom"},
    ]
    (run / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cells = results.load_cells(run)
    assert cells["verdict"].tolist() == ["VALID", "INVALID"]
    assert results.invalid_numbers(cells) == {1}
    assert cells.loc[1, "reasons"] == ["the cell failed: boom"]


BAD_NESTED = [
    ({"suite": {"name": "s", "targets": 5}}, "suite.targets is not a JSON array"),
    ({"suite": {"name": "s", "workloads": [1]}}, "suite.workloads.0 is not a JSON object"),
    ({"targets": {"bare": {"fingerprint": []}}}, "targets.bare.fingerprint is not a JSON object"),
    ({"targets": {"bare": {"artefacts": "x"}}}, "targets.bare.artefacts is not a JSON object"),
    ({"targets": {"bare": {"fingerprint": {"environment": 3}}}}, "environment is not a JSON array"),
    ({"controller": "x"}, "controller is not a JSON object"),
    ({"security_warnings": "x"}, "security_warnings is not a JSON array"),
]


@pytest.fixture(scope="module")
def broken_runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str]]:
    """Copies of a stored run, each with one nested manifest field of the wrong shape."""
    root = tmp_path_factory.mktemp("broken")
    source = FIXTURE_RUNS[0]
    out = []
    for i, (patch, message) in enumerate(BAD_NESTED):
        run = root / f"run{i}"
        shutil.copytree(source, run)
        raw = json.loads((run / "manifest.json").read_text())
        for key, value in patch.items():
            merged = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
            raw[key] = merged
        (run / "manifest.json").write_text(json.dumps(raw))
        out.append((run, message))
    return out


@pytest.mark.parametrize("index", range(len(BAD_NESTED)))
def test_malformed_nested_manifest_fields_are_one_line_for_readers(
    broken_runs: list[tuple[Path, str]], index: int
) -> None:
    run, message = broken_runs[index]
    with pytest.raises(ResultsError, match=message.replace(".", r"\.")):
        results.read_manifest(run)


@pytest.mark.slow
def test_malformed_nested_manifest_is_exit_2_for_every_command(
    broken_runs: list[tuple[Path, str]],
) -> None:
    """summary, report and compare each read the manifest: a wrong shape deep inside it is the
    same one line for each, never a traceback."""
    run, message = broken_runs[0]
    for args in (["summary", str(run)], ["report", str(run)], ["compare", str(run), str(run)]):
        done = bench_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr


def test_every_stored_metric_is_in_the_vocabulary_with_its_unit() -> None:
    """The units the worker and the probes write are the ones bench.metrics describes (one
    place to add a metric: a new one the worker emits fails here until it is described)."""
    for run in FIXTURE_RUNS:
        frame = results.load(run)
        for metric, unit in set(zip(frame["metric"], frame["unit"], strict=True)):
            assert metric in metrics.METRICS, metric
            assert metrics.METRICS[metric].unit == unit, metric


def test_metric_lists_are_derived_from_the_vocabulary() -> None:
    key = set(metrics.KEY_METRICS)
    assert key <= set(metrics.HEADLINE_METRICS) and key <= set(metrics.OVERHEAD_METRICS)
    assert "gpu.util_mean_pct" in metrics.HEADLINE_METRICS
    assert "gpu.util_mean_pct" not in metrics.OVERHEAD_METRICS  # ratios of percentages mislead
    assert all(metrics.METRICS[m].better is not None for m in metrics.KEY_METRICS)
    assert metrics.direction("user.anything") is None  # never judged blindly
    assert metrics.METRICS["mem.host_bytes"].format(3 * 2**30) == "3 GiB"
