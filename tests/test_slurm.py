"""``kind: slurm`` against a real local cluster (two slurmd nodes in network namespaces of
their own): queue time in start-up, the node of every cell, fleets with an outlier node,
Slurm's own reasons for jobs it ended, Ctrl-C and ``bench gc`` cancelling exactly the run's
jobs, and clear errors before the first cell."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from bench import fleetcheck, state
from bench.build.config import BuildConfig
from bench.build.image import base_image
from bench.errors import SuiteError
from bench.fleet import expand
from bench.results import load, load_cells, load_manifest
from bench.results.model import as_manifest
from bench.suite import parse_suite
from bench.targets.slurmcli import explain
from bench.targets.slurmtarget import SrunWatcher
from tests.conftest import REPO, bench_cli
from tests.docker_engine import ensure_engine
from tests.slurm_cluster import NODES, local_cluster, node_cpus, oci_bundle, slurm
from tests.test_run_e2e import run_dir_of

# About 0.1 s of one CPU in a shell loop, then a metric line.
BUSY = (
    "i=0; while [ $i -lt 60000 ]; do i=$((i+1)); done; "
    """echo '{"bench_metric": "answer", "value": 42}'"""
)


def test_srun_lines_are_read_and_the_workers_pass_on() -> None:
    watcher = SrunWatcher()
    lines = [
        b"srun: defined options\n",
        b"srun: jobid 17: nodes(1):`n2', cpu counts: 1(x1)\n",
        b"worker says hello\n",
        b"srun: launch/slurm: _task_start: Node n2, 1 tasks started\n",
        b"slurmstepd: error: *** STEP 17.0 ON n2 CANCELLED AT 2026 DUE TO TIME LIMIT ***\n",
    ]
    passed = list(watcher.lines(lines))
    assert passed == [b"worker says hello\n"]
    assert (watcher.job_id, watcher.node) == ("17", "n2") and watcher.started.is_set()
    assert "DUE TO TIME LIMIT" in watcher.reason() and watcher.ended.is_set()


def _suite(targets: str, reps: int = 1, workload: str = BUSY) -> str:
    return (
        f"name: sl{uuid.uuid4().hex[:6]}\nrepetitions: {reps}\ntargets:\n{targets}\n"
        f"workloads:\n  - {{name: cmd, kind: command, argv: [sh, -c, {json.dumps(workload)}]}}\n"
    )


def test_a_fleet_is_one_target_per_node_and_refuses_to_be_the_baseline() -> None:
    text = _suite(
        "  - {name: bare, kind: local, baseline: true}\n"
        "  - {name: gpu, kind: slurm, nodes: [a1, a2], partition: p}"
    )
    suite = expand(parse_suite(text))
    assert [t.name for t in suite.targets] == ["bare", "gpu[node=a1]", "gpu[node=a2]"]
    assert suite.target("gpu[node=a2]").nodelist == "a2"
    assert suite.swept["targets"]["gpu[node=a1]"] == {"base": "gpu", "values": {"node": "a1"}}
    with pytest.raises(SuiteError, match="cannot be the baseline"):
        expand(parse_suite(_suite("  - {name: gpu, kind: slurm, nodes: [a1], baseline: true}")))
    with pytest.raises(SuiteError, match="excludes nodelist"):
        parse_suite(_suite("  - {name: gpu, kind: slurm, nodes: all, nodelist: a1}"))


def test_the_node_unlike_the_others_is_flagged() -> None:
    manifest = as_manifest(
        {
            "matrix": {
                "targets": {f"f[node={n}]": {"base": "f", "values": {"node": n}} for n in "abc"}
            }
        }
    )
    rows = [
        {"workload": "w", "target": f"f[node={n}]", "metric": "command.wall_s", "unit": "s",
         "value": value + 0.001 * r}
        for n, value in (("a", 0.10), ("b", 0.10), ("c", 0.25))
        for r in range(5)
    ]  # fmt: skip
    found = fleetcheck.outliers(pd.DataFrame(rows), manifest)
    assert len(found) == 1 and "node c is an outlier on command.wall_s" in found[0]
    faster = pd.DataFrame(rows).assign(
        value=lambda f: f["value"].where(f["target"] != "f[node=c]", 0.02)
    )
    assert fleetcheck.outliers(faster, manifest) == []  # a faster node is no outlier to chase


def test_cells_on_differing_nodes_are_named() -> None:
    def cell(node: str, cpus: str) -> dict:
        info = {"slurm": {"node": node, "node_hardware": {"CPUTot": cpus, "RealMemory": "1"}}}
        return {"target": "job", "info": info}

    same = pd.DataFrame([cell("n1", "2"), cell("n2", "2")])
    assert fleetcheck.mixed_hardware(same) == []
    found = fleetcheck.mixed_hardware(pd.DataFrame([cell("n1", "2"), cell("n2", "64")]))
    assert len(found) == 1 and found[0].startswith("job: its cells ran on nodes with different")
    assert "n2: CPUTot 64" in found[0]


def test_slurms_refusals_are_one_line_with_the_fix() -> None:
    munge = (
        "sinfo: error: Munge encode failed: Failed to access munge.socket.2 (Did you start munged?)"
    )
    error = explain("target 'job'", "partitions", munge + "\nslurm_load_partitions: error\n")
    assert "Slurm refused authentication" in error.one_line() and "munged" in error.one_line()
    down = "sinfo: error: Unable to contact slurm controller (connect failure)"
    assert "no Slurm controller answers" in explain("t", "nodes", down).one_line()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[str]:
    with local_cluster(tmp_path_factory.mktemp("slurm")) as conf:
        yield conf


def _target(conf: str, name: str, extra: str = "", python: str = sys.executable) -> str:
    return f"  - {{name: {name}, kind: slurm, conf: {conf}, python: {python}{extra}}}"


def _run(
    tmp_path: Path, text: str, timeout: int = 600
) -> tuple[subprocess.CompletedProcess[str], Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    suite = tmp_path / "suite.yaml"
    suite.write_text(text)
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"), timeout=timeout)
    return done, run_dir_of(done)


@pytest.mark.slow
def test_cells_queue_run_on_nodes_and_a_slowed_node_stands_out(cluster, tmp_path: Path) -> None:
    """One run: bare metal, a Slurm target placed by the scheduler, and a fleet over both
    nodes while a CPU hog runs on node n2's CPUs: queue time is measured, every cell names its
    node, the fleet is reported per node, and n2 is flagged."""
    hog = subprocess.Popen(
        ["nice", "-n", "-10", "taskset", "-c", node_cpus("n2"), "sh", "-c", "while :; do :; done"],
        start_new_session=True,
    )
    # The kernel shares a CPU between sessions (autogroups) before it applies nice: the hog's
    # session gets the weight of nice -10 too, so n2's jobs get a small share of their CPU
    # whatever else runs on the machine.
    autogroup = Path(f"/proc/{hog.pid}/autogroup")
    if autogroup.exists():
        autogroup.write_text("-10")
    try:
        targets = "\n".join(
            [
                "  - {name: bare, kind: local, baseline: true}",
                _target(cluster, "hpc"),
                _target(cluster, "fleet", ", nodes: all"),
            ]
        )
        done, run_dir = _run(tmp_path, _suite(targets, reps=5))
    finally:
        os.killpg(hog.pid, signal.SIGKILL)
        hog.wait()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    items = [i for _, body in state.records() for i in body["items"].values()]
    left = [i for i in items if i.get("conf") == cluster]
    assert not left, left  # a finished run leaves bench gc nothing to look for
    samples = load(run_dir)
    queue = samples[(samples.target == "hpc") & (samples.metric == "startup.queue_s")]["value"]
    provision = samples[(samples.target == "hpc") & (samples.metric == "startup.provision_s")]
    assert (
        len(queue) == 5
        and (queue > 0).all()
        and (queue.to_numpy() < provision["value"].to_numpy()).all()
    )
    cells = load_cells(run_dir)
    for _, cell in cells[cells.kind == "slurm"].iterrows():
        facts = cell["info"]["slurm"]
        assert facts["node"] in NODES and facts["job_id"] and facts["submit_time"]
        if cell["target"].startswith("fleet["):
            assert cell["target"] == f"fleet[node={facts['node']}]"
    assert set(load_manifest(run_dir)["targets"]) >= {"fleet[node=n1]", "fleet[node=n2]"}
    report = (run_dir / "report.md").read_text()
    assert "node n2 is an outlier on command.wall_s" in report
    assert "node n1 is an outlier" not in report


@pytest.mark.slow
def test_a_job_past_its_time_limit_fails_with_slurms_reason(cluster, tmp_path: Path) -> None:
    """Slurm checks time limits about once a minute: this takes a minute or more."""
    text = _suite(_target(cluster, "short", ", time_limit: '0:01'"), workload="sleep 120")
    done, run_dir = _run(tmp_path, text)
    assert done.returncode == 1
    error = load_cells(run_dir).iloc[0]["error"]
    assert "Slurm ended job" in error and "TIMEOUT" in error, error


@pytest.mark.slow
def test_bad_requests_fail_before_the_first_cell(cluster, tmp_path: Path) -> None:
    text = _suite(_target(cluster, "nope", ", partition: nosuch"))
    done, run_dir = _run(tmp_path, text)
    assert done.returncode == 1
    error = load_cells(run_dir).iloc[0]["error"]
    assert "unknown partition 'nosuch'" in error and "debug" in error, error
    text = _suite(_target(cluster, "big", ", gres: 'gpu:8'"))
    done, run_dir = _run(tmp_path / "gres", text)
    assert "the request cannot be met" in load_cells(run_dir).iloc[0]["error"]


def _bench_jobs(conf: str) -> list[str]:
    return [
        line
        for line in slurm(conf, "squeue", "-h", "-o", "%i %j").splitlines()
        if " bench-" in line
    ]


def _wait(predicate, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def _start(conf: str, tmp_path: Path) -> subprocess.Popen[str]:
    suite = tmp_path / "suite.yaml"
    suite.write_text(_suite(_target(conf, "long"), workload="sleep 300"))
    argv = [sys.executable, "-m", "bench.cli", "run", str(suite)]
    return subprocess.Popen(
        [*argv, "--results-dir", str(tmp_path / "r")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_cancels_the_runs_jobs_and_nothing_else(cluster, tmp_path: Path) -> None:
    other = slurm(
        cluster,
        "sbatch",
        "--parsable",
        "-J",
        "someone-else",
        "-o",
        "/dev/null",
        "--wrap",
        "sleep 300",
    ).strip()
    try:
        proc = _start(cluster, tmp_path)
        assert _wait(lambda: bool(_bench_jobs(cluster))), proc.stderr
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.returncode == 130
        assert _wait(lambda: not _bench_jobs(cluster), 30)
        assert other in slurm(cluster, "squeue", "-h", "-o", "%i").split()
    finally:
        slurm(cluster, "scancel", other)


@pytest.mark.slow
def test_gc_cancels_the_jobs_of_a_killed_run(cluster, tmp_path: Path) -> None:
    proc = _start(cluster, tmp_path)
    assert _wait(lambda: bool(_bench_jobs(cluster)))
    os.kill(proc.pid, signal.SIGKILL)  # the controller only: srun, in its session, lives on
    proc.wait()
    assert _bench_jobs(cluster)
    done = bench_cli("gc")
    assert done.returncode == 0, done.stderr
    assert "Slurm job(s)" in done.stdout + done.stderr
    assert _wait(lambda: not _bench_jobs(cluster), 30)


@pytest.mark.slow
def test_a_cell_runs_in_slurms_own_container(cluster, tmp_path: Path) -> None:
    """srun --container with the cluster's oci.conf (runc): the worker runs from an OCI bundle
    of bench's base image, whose filesystem holds a marker the host's does not."""
    client = ensure_engine()
    image, _ = base_image(client, BuildConfig(), lambda _: None)
    bundle = oci_bundle(tmp_path / "bundle", client, image)
    probe = (
        "test -f /bench-bundle-marker && "
        """echo '{"bench_metric": "in_bundle", "value": 1}'"""
    )
    text = _suite(_target(cluster, "ctr", f", container: {bundle}", "python3"), workload=probe)
    done, run_dir = _run(tmp_path / "run", text)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    samples = load(run_dir)
    assert list(samples[samples.metric == "user.in_bundle"]["value"]) == [1]
    assert not Path("/bench-bundle-marker").exists()


@pytest.mark.slow
def test_bench_environment_stays_out_of_the_job(cluster, tmp_path: Path) -> None:
    """srun hands its environment to the job: only what a worker needs goes with it, never
    the rest of bench's (a webhook URL, a cloud key), as for a local worker."""
    probe = (
        'echo "{\\"bench_metric\\": \\"leaked\\", \\"value\\": ${#BENCH_TEST_CONTROLLER_SECRET}}"'
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(_suite(_target(cluster, "job"), workload=probe))
    env = {"BENCH_TEST_CONTROLLER_SECRET": "hunter2"}
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"), env=env)
    assert done.returncode == 0, done.stderr
    samples = load(run_dir_of(done))
    assert list(samples[samples.metric == "user.leaked"]["value"]) == [0]
