"""MLPerf LoadGen in the worker, in this process: the system under test, the logs read back,
the early-stopping rule, the scenario options, and what the controller makes of the verdict.

LoadGen itself is real in every test; where the model does not matter, the system under test
answers without one (or sleeps), so LoadGen's behaviour is checked in milliseconds.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.results import CellRecord, ResultStore
from bench.stability import warnings
from bench.verdict import judge
from tests.conftest import bench_cli
from workloads import loadgen
from workloads import loadgen_log as logs
from workloads.execute import run_workload
from workloads.spec import SpecError, validate


def detail_of(
    plan: loadgen.Plan, forward: Any = None, max_batch: int = 1, trace: bool = True
) -> tuple[dict[str, Any], list[float], loadgen.Finished]:
    """Run LoadGen on ``plan`` with a system under test that answers at once (or runs
    ``forward``): LoadGen's detail log, the traced latencies, what the run left."""

    def sut(lg: Any) -> loadgen.QueueSut:
        return loadgen.QueueSut(lg, forward or (lambda _: None), max_batch)

    finished = loadgen.run(plan, 16, sut, trace)
    try:
        detail, errors = logs.read_detail(finished.outdir / logs.DETAIL_FILE)
        assert errors == []
        latencies: list[float] = []
        if trace:
            per_query = plan.scenario == "multi_stream"
            latencies, _ = logs.trace_latencies(finished.outdir / logs.TRACE_FILE, per_query)
        return detail, latencies, finished
    finally:
        loadgen.cleanup(finished)


def test_the_early_stopping_rule_needs_what_loadgen_says() -> None:
    assert logs.queries_needed(0.90) == 64 and logs.queries_needed(0.99) == 662
    detail, latencies, _ = detail_of(loadgen.Plan("single_stream", 70, seed=1))
    text = logs.one_line(detail["early_stopping_result"])
    assert f"Processed at least {logs.queries_needed(0.9)} queries (70)" in text
    assert f"at least {logs.queries_needed(0.99)} total queries" in text
    assert detail["result_validity"] == "VALID" and len(latencies) == 70
    ordered = sorted(latencies)
    for fraction in logs.PERCENTILES.values():
        key = logs.percentile_key(fraction, per_query=False)
        assert detail[key] * logs.NS == ordered[int(70 * fraction)]
    # a server with every query under its bound (t = 0) needs min_passing(0, p99) queries
    server = loadgen.Plan("server", 50, seed=1, target_qps=2000.0, target_latency_s=1.0)
    detail, _, _ = detail_of(server)
    needed = logs.min_passing(0, 0.99) - 50
    assert f"Would need to run at least {needed} more queries" in detail["early_stopping_result"]


def test_a_server_queue_is_answered_in_batches() -> None:
    def slow(indices: Sequence[int]) -> None:
        time.sleep(0.002)

    plan = loadgen.Plan("server", 60, seed=2, target_qps=20000.0, target_latency_s=0.5)
    detail, latencies, finished = detail_of(plan, slow, max_batch=8)
    assert sum(finished.batch_sizes) == 60 == len(latencies) == detail["result_query_count"]
    assert max(finished.batch_sizes) == 8 and len(finished.forward_times) < 60
    assert detail["result_validity"] == "INVALID"  # 60 queries: too few for early stopping


def test_a_failing_forward_ends_the_test_and_is_raised() -> None:
    calls = []

    def failing(indices: Sequence[int]) -> None:
        calls.append(indices)
        if len(calls) == 3:
            raise RuntimeError("the model broke")

    before = set(Path(tempfile.gettempdir()).glob("bench-loadgen-*"))
    with pytest.raises(RuntimeError, match="the model broke"):
        detail_of(loadgen.Plan("single_stream", 20, seed=0), failing)
    assert len(calls) == 3  # the queries after it were answered without the model
    assert set(Path(tempfile.gettempdir()).glob("bench-loadgen-*")) == before


@pytest.fixture(scope="module")
def multi_stream() -> dict[str, Any]:
    workload = {"kind": "inference", "model": "mlp", "device": "cpu", "threads": 1}
    workload |= {"scenario": "multi_stream", "samples_per_query": 4, "min_query_count": 20}
    return run_workload({"workload": {**workload, "warmup_queries": 2}, "seed": 5})


@pytest.mark.slow  # imports torch and builds a model
def test_multi_stream_reports_per_query_latencies_and_loadgens_verdict(multi_stream) -> None:
    latencies = multi_stream["raw"]["latency_s"]
    assert len(latencies) == 20 and len(multi_stream["raw"]["warmup_latency_s"]) == 2
    ordered = sorted(latencies)
    for name, fraction in logs.PERCENTILES.items():
        assert multi_stream["metrics"][name]["value"] == ordered[int(20 * fraction)], name
    assert multi_stream["metrics"]["infer.throughput"]["unit"] == "samples/s"
    info = multi_stream["info"]["loadgen"]
    assert info["validity"] == "INVALID" and info["query_count"] == 20
    assert info["forwards"] == 20 and info["mean_batch"] == 4 and info["samples_per_query"] == 4
    assert info["reasons"] == [f"early stopping: {info['early_stopping']}"]
    assert "Need to process at least 662 queries" in info["early_stopping"]
    assert info["settings"]["seed"] == 5 and info["settings"]["samples_per_query"] == 4
    files = multi_stream["files"]
    assert set(files) == {f"loadgen/{name}" for name in logs.KEPT_FILES}
    assert "Scenario : MultiStream" in files["loadgen/mlperf_log_summary.txt"]
    verdict = judge(None, multi_stream["info"], min_iterations=10)
    assert verdict.reasons == [f"LoadGen ruled the run INVALID: {info['reasons'][0]}"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target_qps": 10}, "target_qps applies to the server and offline scenarios, not"),
        ({"batch_size": 4}, "batch_size applies to the server and offline scenarios, not"),
        ({"scenario": "offline", "samples_per_query": 2}, "applies to the multi_stream scenario"),
        ({"scenario": "offline", "target_latency_s": 0.1}, "applies to the server scenario, not"),
        ({"scenario": "server", "target_qps": 10}, "target_latency_s is required by the server"),
        ({"min_duration_s": 5, "max_duration_s": 1}, "max_duration_s (1) is shorter than"),
        ({"requests": 10}, "unknown option(s) ['requests']"),
    ],
)
def test_options_a_scenario_ignores_or_needs_are_refused(options: dict, message: str) -> None:
    with pytest.raises(SpecError) as found:
        validate({"workload": {"kind": "inference", **options}})
    assert message in str(found.value)


def test_bench_validate_names_the_option_in_one_line(write_suite) -> None:
    suite = write_suite("""
        name: lg
        targets: [{name: bare, kind: local}]
        workloads:
          - {name: infer, kind: inference, scenario: single_stream, target_qps: 50}
        """)
    done = bench_cli("validate", str(suite))
    assert done.returncode == 2 and "target_qps applies to the server and offline" in done.stderr
    assert "workloads[0]" in done.stderr and len(done.stderr.strip().splitlines()) <= 2


def cells(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """A cells frame as ``load_cells`` returns it, with the LoadGen info a worker records."""
    needed = logs.needed_per_percentile()
    return pd.DataFrame(
        [
            {"workload": w, "target": t, "status": "ok",
             "info": {"loadgen": {"query_count": n, "queries_needed": needed}}}
            for w, t, n in rows
        ]
    )  # fmt: skip


def test_percentiles_on_too_few_queries_are_warned_about_once_per_workload_and_target() -> None:
    samples = pd.DataFrame(
        [("w", "t", "infer.latency_p99_s", "s", rep, 0.01) for rep in range(5)],
        columns=["workload", "target", "metric", "unit", "repetition", "value"],
    )
    found = warnings(samples, {}, cells([("w", "t", 700), ("w", "t", 200), ("v", "t", 7000)]))
    assert found == [
        "w on t: infer.latency_p99_s (needs 662), infer.latency_p999_s (needs 6636) rest on "
        "200 queries, fewer than LoadGen's early-stopping rule needs to bound them; raise "
        "min_query_count (or min_duration_s) or read them as rough"
    ]


def test_the_store_keeps_a_cells_files_and_only_under_its_raw_folder(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, "s", "run")
    store.create({})
    record = CellRecord(0, "bare", "local", "w", "inference", 0, "ok", "", "", 1.0)
    files = {"loadgen/mlperf_log_detail.txt": "detail", "../escape.txt": "x", ".hidden": "x"}
    store.add_cell(record, [], {}, files)
    folder = store.path / "raw" / record.slug
    assert [p.relative_to(folder).as_posix() for p in folder.rglob("*.txt")] == [
        "loadgen/mlperf_log_detail.txt"
    ]
    assert not (store.path / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()
