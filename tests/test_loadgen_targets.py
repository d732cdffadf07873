"""Inference under MLPerf LoadGen on every target kind: the cells of tests/matrix/loadgen.yaml.

Each target kind runs the matrix suite once per session (``matrix_run``); every test here reads
that run. LoadGen runs inside the worker, so its verdict, percentiles and logs must come back
from a container, an SSH host and a guest exactly as from bare metal.
"""

from __future__ import annotations

import pytest

from workloads import loadgen_log

pytestmark = pytest.mark.slow

KINDS = ["local", "docker", "ssh", "vm"]
SINGLE_STREAM = {"local": "lg-single", "docker": "lg-single", "ssh": "lg-single", "vm": "infer"}
"""Each run's single_stream cell (a guest's is its own infer, tests/matrix/guest.yaml)."""
LATENCIES = list(loadgen_log.PERCENTILES)


def logged(run, workload: str) -> dict:
    """The cell's stored LoadGen detail log, read back as LoadGen's key/value pairs."""
    cell = run.cell(workload)
    slug = f"{cell['cell']:04d}-{cell['target']}-{workload}-r{cell['repetition']}"
    folder = run.run_dir / "raw" / slug / "loadgen"
    assert (folder / loadgen_log.SUMMARY_FILE).read_text().startswith("=" * 48)
    values, errors = loadgen_log.read_detail(folder / loadgen_log.DETAIL_FILE)
    assert errors == []
    return values


def assert_rank_percentiles(metrics: dict[str, float], latencies: list[float]) -> None:
    """LoadGen's percentile is the sorted latencies at rank int(n * q): the raw array must be
    exactly what it ranked."""
    ordered = sorted(latencies)
    for name, fraction in loadgen_log.PERCENTILES.items():
        assert metrics[name] == ordered[int(len(ordered) * fraction)], name


@pytest.mark.parametrize("kind", KINDS)
def test_single_stream_is_valid_and_its_percentiles_are_its_raw_latencies(
    matrix_run, kind: str
) -> None:
    run = matrix_run(kind)
    name = SINGLE_STREAM[kind]
    cell = run.cell(name)
    assert cell["status"] == "ok" and cell["verdict"] == "VALID", cell["reasons"]
    latencies = run.raw(name)["latency_s"]
    assert len(latencies) == 64 and min(latencies) > 0
    metrics = run.metrics(name)
    assert_rank_percentiles(metrics, latencies)
    assert 0 < metrics["infer.throughput"] <= 1 / min(latencies)
    detail = logged(run, name)
    assert detail["result_validity"] == "VALID" and detail["result_query_count"] == 64
    info = cell["info"]["loadgen"]
    assert info["queries_needed"]["infer.latency_p99_s"] == 662 and info["query_count"] == 64
    assert f"{name} on {run.target}" in run.proc.stdout and "needs 662" in run.proc.stdout


@pytest.mark.parametrize("kind", ["local", "docker", "ssh"])  # not in a guest: see loadgen.yaml
def test_offline_is_valid_with_throughput_only(matrix_run, kind: str) -> None:
    run = matrix_run(kind)
    cell = run.cell("lg-offline")
    assert cell["status"] == "ok" and cell["verdict"] == "VALID", cell["reasons"]
    metrics = run.metrics("lg-offline")
    detail = logged(run, "lg-offline")
    assert metrics["infer.throughput"] == pytest.approx(detail["result_samples_per_second"])
    assert detail["generated_samples_per_query"] == 96
    assert all("offline" in cell["absent"][name] for name in LATENCIES)
    assert len(run.raw("lg-offline")["batch_time_s"]) == 12 == cell["info"]["loadgen"]["forwards"]


@pytest.mark.parametrize("kind", ["local", "docker", "ssh"])  # not in a guest: see loadgen.yaml
def test_a_server_offered_more_than_it_sustains_is_invalid_with_loadgens_reason(
    matrix_run, kind: str
) -> None:
    run = matrix_run(kind)
    cell = run.cell("lg-server")
    assert cell["status"] == "ok" and cell["verdict"] == "INVALID"
    assert (
        "LoadGen ruled the run INVALID: Reduce target QPS to improve latency." in (cell["reasons"])
    )
    assert logged(run, "lg-server")["result_perf_constraints_met"] is False
    latencies = run.raw("lg-server")["latency_s"]
    assert len(latencies) == 100
    metrics = run.metrics("lg-server")
    assert_rank_percentiles(metrics, latencies)
    assert metrics["infer.latency_p99_s"] > 0.001
    assert "Reduce target QPS" in run.proc.stdout  # the summary's INVALID cells table
