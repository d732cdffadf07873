"""``bench run`` end to end on the local target: real worker processes, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.results import load, load_cells, load_manifest, load_raw
from tests.conftest import REPO, bench_cli, run_suite
from tests.procfs import working_in
from workloads import nvmldevice
from workloads.common import DeviceUnavailableError
from workloads.gpu import GPU_METRICS

pytestmark = pytest.mark.slow

TINY = """\
name: tiny
repetitions: 2
min_iterations: 5
targets:
  - {name: bare, kind: local, baseline: true}
workloads:
  - {name: train, kind: train_step, model: mlp, batch_size: 8, steps: 6, warmup_steps: 2}
  - {name: infer, kind: inference, model: cnn, min_query_count: 64, warmup_queries: 3}
  - {name: load, kind: data_loading, samples: 96, sample_bytes: 2048, batch_size: 16,
     num_workers: 1, warmup_batches: 1}
"""

EXPECTED = {
    "train": {"train.throughput", "train.step_time_s", "train.data_wait_s"},
    "infer": {
        "infer.throughput",
        "infer.latency_p50_s",
        "infer.latency_p90_s",
        "infer.latency_p99_s",
        "infer.latency_p999_s",
    },
    "load": {"data.throughput", "data.bandwidth", "data.loader_startup_s"},
}
COMMON = {
    "startup.import_s",
    "startup.provision_s",
    "startup.ready_s",
    "startup.first_step_s",
    "startup.total_s",
    "mem.rss_peak_bytes",
    "mem.host_bytes",
    "cpu.util_pct",
    "cpu.user_pct",
    "cpu.sys_pct",
}
GPU = set(GPU_METRICS)
ENVIRONMENTAL = ("the CPU was thermally", "the CPU clock fell", "the hypervisor took")
"""The verdict's reasons that report the machine (throttling, clock, steal), not the cell."""


def run_dir_of(done: subprocess.CompletedProcess[str]) -> Path:
    """The run directory ``bench run`` printed as its last stdout line."""
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    root = tmp_path_factory.mktemp("e2e")
    return run_suite(root, TINY), root / "results"


def test_run_succeeds_and_prints_run_dir_last(tiny_run) -> None:
    done, results = tiny_run
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert Path(last).parent == results / "tiny"
    assert "median" in done.stdout and "IQR" in done.stdout


def test_every_workload_reports_its_metrics(tiny_run) -> None:
    run_dir = run_dir_of(tiny_run[0])
    df = load(run_dir)
    assert set(df["repetition"]) == {0, 1}
    # nothing unmeasured is stored as zero; the kernel splits CPU time into user and system
    # by sampling ticks, so in a short measured phase one side may truly be nothing
    split = df.metric.isin(["cpu.user_pct", "cpu.sys_pct"])
    assert (df[~split]["value"] > 0).all()
    assert (df["value"] >= 0).all()
    for workload, metrics in EXPECTED.items():
        for rep in (0, 1):
            got = set(df[(df.workload == workload) & (df.repetition == rep)]["metric"])
            assert got == metrics | COMMON, (workload, rep)
    assert not GPU & set(df["metric"])  # no GPU here: absent, not zero


def test_startup_phases_add_up(tiny_run) -> None:
    run_dir = run_dir_of(tiny_run[0])
    df = load(run_dir).pivot_table(index="cell", columns="metric", values="value")
    parts = df["startup.provision_s"] + df["startup.ready_s"] + df["startup.first_step_s"]
    assert ((parts - df["startup.total_s"]).abs() < 1e-6).all()
    assert (df["startup.ready_s"] > df["startup.provision_s"]).all()  # importing torch


def test_cells_record_absent_metrics_with_reasons(tiny_run) -> None:
    run_dir = run_dir_of(tiny_run[0])
    cells = load_cells(run_dir)
    assert len(cells) == 6 and (cells["status"] == "ok").all()
    # A shared machine may truly steal or slow the CPU during a cell; that is the only
    # reason a cell of this suite may be INVALID for.
    for verdict, reasons in zip(cells["verdict"], cells["reasons"], strict=True):
        assert (verdict == "VALID") == (not reasons), (verdict, reasons)
        assert all(reason.startswith(ENVIRONMENTAL) for reason in reasons), reasons
    for info in cells[cells.workload == "load"]["info"]:  # inside the deployment's directory
        assert info["dataset_dir"].startswith(os.path.join(tempfile.gettempdir(), "bench-"))
    for absent in cells["absent"]:
        assert set(absent) >= GPU
        assert all(isinstance(reason, str) and reason for reason in absent.values())


def test_manifest_and_raw_arrays(tiny_run) -> None:
    run_dir = run_dir_of(tiny_run[0])
    manifest = load_manifest(run_dir)
    assert manifest["status"] == "complete"
    assert manifest["suite"]["name"] == "tiny"
    assert manifest["host"]["cpu_model"]
    fingerprint = manifest["targets"]["bare"]["fingerprint"]
    assert fingerprint["torch"].startswith("2.13.0")
    assert len(manifest["plan"]) == 6
    phases = manifest["phases_s"]  # where the run's time went
    assert set(phases) == {"prepare", "fingerprint", "stage", "cells"}
    assert all(seconds >= 0 for seconds in phases.values()) and phases["cells"] > 0
    raw = load_raw(run_dir)
    train = [v for k, v in raw.items() if "-train-" in k]
    assert len(train) == 2 and all(len(r["step_time_s"]) == 6 for r in train)
    for r in raw.values():  # the controller's timelines, on the clock of the start-up phases
        marks = r["startup_marks_s"]
        assert 0 < marks["provision"] < marks["ready"] < marks["first_step"]
        memory = r["host_timelines"]["mem.host_bytes"]
        assert memory["unit"] == "bytes" and len(memory["t_s"]) == len(memory["value"]) >= 2
        assert memory["t_s"] == sorted(memory["t_s"]) and memory["t_s"][-1] > marks["provision"]
        assert max(memory["value"]) > 50 * 2**20  # torch is resident at its peak


def test_failed_cells_are_recorded_and_the_run_goes_on(write_suite, tmp_path: Path) -> None:
    crash = tmp_path / "crashing-python"
    crash.write_text("#!/bin/sh\necho 'worker blew up' >&2\nexit 3\n")
    crash.chmod(0o755)
    suite = write_suite(f"""
        name: failing
        repetitions: 1
        targets:
          - {{name: good, kind: local}}
          - {{name: crash, kind: local, python: {crash}}}
          - {{name: missing, kind: local, python: /nonexistent/python3}}
        workloads:
          - {{name: cmd, kind: command, argv: [sleep, "0.05"]}}
    """)
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"))
    assert done.returncode == 1, done.stderr
    run_dir = run_dir_of(done)
    cells = load_cells(run_dir).set_index("target")
    assert cells.loc["good", "status"] == "ok"
    assert "exited (status 3)" in cells.loc["crash", "error"]
    assert "worker blew up" in cells.loc["crash", "error"]
    assert "worker blew up" in cells.loc["crash", "stderr_tail"]
    assert "'/nonexistent/python3' not found" in cells.loc["missing", "error"]
    assert cells.loc["crash", "verdict"] == "INVALID"
    assert cells.loc["crash", "reasons"] == [f"the cell failed: {cells.loc['crash', 'error']}"]
    assert "INVALID cells" in done.stdout
    assert set(load(run_dir)["target"]) == {"good"}
    manifest = load_manifest(run_dir)
    assert manifest["status"] == "failed"
    assert "fingerprint_error" in manifest["targets"]["missing"]


def test_cell_timeout_fails_the_cell_and_stops_the_worker(write_suite, tmp_path: Path) -> None:
    """The worker and the program its cell runs (both working in the deployment directory)
    are gone once the cell has timed out."""
    suite = write_suite("""
        name: timeout
        repetitions: 1
        targets: [{name: bare, kind: local}]
        workloads:
          - {name: long, kind: command, argv: [sleep, "300"], timeout_s: 2}
    """)
    run_id = f"tmo{uuid.uuid4().hex[:8]}"
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"), "--run-id", run_id)
    assert done.returncode == 1
    cells = load_cells(run_dir_of(done))
    assert "timed out" in cells.iloc[0]["error"]
    assert not _worker_pids(run_id)


def test_worker_error_event_is_reported(write_suite, tmp_path: Path) -> None:
    """The worker's error event (``device: cuda`` on a machine without a GPU, refused as the
    worker sets up the cell) is the cell's error."""
    suite = write_suite("""
        name: nocuda
        repetitions: 1
        targets: [{name: bare, kind: local}]
        workloads:
          - {name: gpu, kind: command, device: cuda, argv: [sleep, "0.05"]}
    """)
    if _has_gpu():
        pytest.skip("this machine has a GPU; the CUDA-missing path cannot be exercised")
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"))
    assert done.returncode == 1
    cells = load_cells(run_dir_of(done))
    assert "device: cuda was requested but" in cells.iloc[0]["error"]


def _has_gpu() -> bool:
    """Whether a command cell asking for ``device: cuda`` would find a GPU here."""
    try:
        nvmldevice.choose("cuda", os.environ)
    except DeviceUnavailableError:
        return False
    return True


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_keeps_finished_cells_and_leaves_no_worker(
    write_suite, tmp_path: Path, stop: signal.Signals
) -> None:
    # The short cell finishes first; the long one (the worker and the program it runs) is in
    # flight when the signal comes.
    suite = write_suite("""
        name: slow
        repetitions: 1
        targets: [{name: bare, kind: local}]
        workloads:
          - {name: short, kind: command, argv: [sleep, "0.05"]}
          - {name: long, kind: command, argv: [sleep, "300"]}
    """)
    results = tmp_path / "r"
    run_id = f"ctrlc{uuid.uuid4().hex[:8]}"  # unique: other runs may share this machine
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.cli",
            "run",
            str(suite),
            "--results-dir",
            str(results),
            "--run-id",
            run_id,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_dir = results / "slow" / run_id
    _wait_for(lambda: (run_dir / "cells.jsonl").exists(), proc)
    _wait_for(lambda: _worker_pids(run_id), proc)  # interrupt a cell in flight
    proc.send_signal(stop)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert load_manifest(run_dir)["status"] == "interrupted"
    finished = load_cells(run_dir)
    assert list(finished["workload"]) == ["short"] and (finished["status"] == "ok").all()
    assert set(load(run_dir)["cell"]) == set(finished["cell"])
    assert not _worker_pids(run_id)
    assert not list(Path(tempfile.gettempdir()).glob(f"bench-{run_id}-*"))


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.05)


def _worker_pids(run_id: str) -> list[int]:
    """Processes whose working directory is a deployment directory of ``run_id``."""
    return [p.pid for p in working_in(os.path.join(tempfile.gettempdir(), f"bench-{run_id}-"))]


def test_bad_suite_exits_2_with_one_line(write_suite, tmp_path: Path) -> None:
    suite = write_suite("""
        name: bad
        targets: [{name: bare, kind: local}]
        workloads:
          - {name: t, kind: train_step, batch_size: -1}
    """)
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {suite}:4: workloads[0].batch_size:")
    assert not (tmp_path / "r").exists()


def test_existing_run_id_is_refused_and_kept(write_suite, tmp_path: Path) -> None:
    run_dir = tmp_path / "r" / "tiny" / "keep"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({"run_id": "keep"}))
    suite = write_suite(TINY)
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"), "--run-id", "keep")
    assert done.returncode == 2
    assert "already exists" in done.stderr
    assert json.loads((run_dir / "manifest.json").read_text()) == {"run_id": "keep"}


def test_bad_run_id_and_missing_suite(tmp_path: Path) -> None:
    done = bench_cli("run", "suites/quickstart.yaml", "--run-id", "../x")
    assert done.returncode == 2 and "--run-id" in done.stderr
    done = bench_cli("run", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2 and "suite file not found" in done.stderr


def test_validate_targets_summary_and_help(tiny_run) -> None:
    done = bench_cli("validate", "suites/quickstart.yaml")
    assert done.returncode == 0 and "ok" in done.stdout and "cells" in done.stdout
    done = bench_cli("targets")
    assert done.returncode == 0 and "local" in done.stdout
    run_dir = tiny_run[0].stdout.strip().splitlines()[-1]
    done = bench_cli("summary", run_dir)
    assert done.returncode == 0 and "train.throughput" in done.stdout
    done = bench_cli("--help")
    assert done.returncode == 0 and "Usage:" in done.stdout
    for command in ("run", "validate", "targets", "summary"):  # the same click group, in-process
        helped = CliRunner().invoke(main, [command, "--help"], catch_exceptions=False)
        assert helped.exit_code == 0 and "Usage:" in helped.stdout
    assert bench_cli("summary", "/nonexistent").returncode == 2


def test_default_run_ids_never_collide(tmp_path: Path) -> None:
    from bench.metadata import new_run_id

    first = new_run_id(tmp_path)
    (tmp_path / first).mkdir()
    second = new_run_id(tmp_path)
    assert second != first  # suffixed ("-2") within the same second
