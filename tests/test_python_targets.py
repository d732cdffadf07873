"""``kind: python`` on bare metal, in a container, over SSH and in a guest: the cell of
``tests/matrix/python.yaml`` (a tiny user directory) in the session's one run per target
kind. The user's directory reaches each target as the same code asset, the loop is timed, the
user's metrics are stored and shown, and start-up, memory and CPU are measured as for any kind."""

from __future__ import annotations

import json
import statistics

import pytest

pytestmark = pytest.mark.slow

KINDS = ("local", "docker", "ssh", "vm")
WORKLOAD = "py-tiny"
STAGED_UNDER = {  # where each kind's worker read the code from
    "local": "/assets/code-",
    "docker": "/bench-assets/code-",
    "ssh": "/assets/code-",
    "vm": "/var/tmp/bench-assets/code-",
}


@pytest.mark.parametrize("kind", KINDS)
def test_the_users_code_runs_and_is_measured_like_any_workload(matrix_run, kind: str) -> None:
    run = matrix_run(kind)
    cell = run.cell(WORKLOAD)
    assert cell["status"] == "ok", (cell["error"], cell["stderr_tail"])
    metrics = run.metrics(WORKLOAD)
    times = run.raw(WORKLOAD)["iteration_s"]
    assert len(times) == 10 and len(run.raw(WORKLOAD)["warmup_iteration_s"]) == 2
    assert metrics["python.iteration_s"] == pytest.approx(statistics.median(times))
    assert metrics["python.throughput"] == pytest.approx(8 * 10 / sum(times))
    units = run.units(WORKLOAD)
    assert units["python.throughput"] == "rows/s" and units["python.iteration_s"] == "s"
    assert 0.0 <= metrics["user.agreement"] <= 1.0 and units["user.agreement"] == ""
    assert metrics["user.params"] == 16 * 32 + 32 + 32 * 2 + 2 and units["user.params"] == "weights"
    phases = [metrics[f"startup.{p}_s"] for p in ("provision", "ready", "first_step")]
    assert min(phases) > 0 and sum(phases) == pytest.approx(metrics["startup.total_s"])
    assert metrics["startup.import_s"] > 0  # torch, before the user's module (info)
    assert metrics["mem.rss_peak_bytes"] > 50 << 20
    assert metrics["cpu.util_pct"] > 0
    info = cell["info"]
    assert info["python"]["ready"] == "ctx.ready()" and info["measured_iterations"] == 10
    assert 0 < info["python"]["import_s"] < metrics["startup.ready_s"]
    assert not [r for r in cell["reasons"] if "iterations" in r]


@pytest.mark.parametrize("kind", KINDS)
def test_every_target_reads_the_same_code_asset(matrix_run, kind: str) -> None:
    run = matrix_run(kind)
    assert run.run_dir is not None, run.proc.stderr
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    made = manifest["assets"][WORKLOAD]["code"]
    read = run.cell(WORKLOAD)["info"]["assets"]["code"]
    assert read["sha256"] == made["sha256"] and made["params"] == {"kind": "code", "files": 2}
    assert STAGED_UNDER[kind] in read["path"]
    directory = run.cell(WORKLOAD)["info"]["python"]["directory"]
    assert directory == read["path"] + "/src"
    if kind == "vm":  # copied onto each fresh guest's disk, inside provision
        assert run.metrics(WORKLOAD)["startup.stage_s"] > 0


@pytest.mark.parametrize("kind", ("local", "docker"))
def test_the_summary_shows_the_kinds_and_the_users_metrics(matrix_run, kind: str) -> None:
    run = matrix_run(kind)
    shown = [line for line in run.proc.stdout.splitlines() if WORKLOAD in line or "│" in line]
    table = "\n".join(shown)
    for name in ("python.iteration_s", "python.throughput", "user.agreement", "user.params"):
        assert name in table, run.proc.stdout
    assert "rows/s" in table
    report = (run.run_dir / "report.md").read_text()
    assert "python.throughput" in report and "python.iteration_s" in report
