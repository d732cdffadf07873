"""``kind: ssh`` against a real OpenSSH server started by the tests."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from bench.errors import TargetError
from bench.results import load, load_cells, load_manifest
from bench.targets.sshconn import Endpoint, connect
from tests.conftest import REPO, bench_cli
from tests.procfs import working_in
from tests.sshd import Netns, SshServer, free_port, keygen

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="openssh-server missing"),
]

TRAIN = "{name: train, kind: train_step, batch_size: 8, steps: 3, warmup_steps: 1}"
INFER = "{name: infer, kind: inference, model: mlp, min_query_count: 5, warmup_queries: 1}"
# Command cells for the tests whose subject is SSH itself: no torch start-up in the worker.
CMD = '{name: cmd, kind: command, argv: [sleep, "0.05"]}'
# A cell that runs until it is stopped; the worker (``python -m workloads run``) is its parent.
LONG = '{name: long, kind: command, argv: [sleep, "300"], timeout_s: 120}'


def suite(tmp_path: Path, targets: list[str], workloads: list[str], reps: int = 1) -> Path:
    path = tmp_path / f"suite-{uuid.uuid4().hex[:6]}.yaml"
    body = f"name: sshtest\nrepetitions: {reps}\ntargets:\n"
    body += "".join(f"  - {t}\n" for t in targets)
    body += "workloads:\n" + "".join(f"  - {w}\n" for w in workloads)
    path.write_text(body)
    return path


def run(tmp_path: Path, suite_path: Path, *extra: str):
    done = bench_cli("run", str(suite_path), "--results-dir", str(tmp_path / "results"), *extra)
    run_dir = Path(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    return done, run_dir


def remote(server: SshServer, remote_dir: Path, **extra: object) -> str:
    return server.target_yaml(python=sys.executable, workdir=str(remote_dir), **extra)


def test_local_and_ssh_produce_the_same_metrics(server, remote_dir, tmp_path) -> None:
    local = "{name: bare, kind: local, baseline: true}"
    path = suite(tmp_path, [local, remote(server, remote_dir)], [TRAIN, INFER])
    done, run_dir = run(tmp_path, path)
    assert done.returncode == 0, done.stderr
    df = load(run_dir)
    host_probe = {"mem.host_bytes"}  # measured by the controller for local processes only
    for workload in ("train", "infer"):
        by_target = {
            t: set(df[(df.workload == workload) & (df.target == t)]["metric"]) - host_probe
            for t in ("bare", "remote")
        }
        assert by_target["bare"] == by_target["remote"], workload
        assert "startup.provision_s" in by_target["remote"]
    cells = load_cells(run_dir).set_index("target")
    assert "remote host" in cells.loc["remote"].iloc[0]["absent"]["mem.host_bytes"]
    fingerprint = load_manifest(run_dir)["targets"]["remote"]["fingerprint"]
    assert fingerprint["torch"].startswith("2.13.0")
    assert list(remote_dir.iterdir()) == []  # the run's remote directory is gone


def test_package_is_uploaded_once_per_run(server, remote_dir, tmp_path) -> None:
    path = suite(tmp_path, [remote(server, remote_dir)], [CMD], reps=2)
    proc = start_run(tmp_path, path)
    seen: set[str] = set()
    while proc.poll() is None:  # watch the remote run directory while the run goes on
        seen |= {p.name for p in remote_dir.glob("bench-*/workloads-*") if p.is_dir()}
        time.sleep(0.05)
    assert proc.returncode == 0, proc.stderr.read()
    assert len(seen) == 1  # one content-hashed package directory for every cell
    assert list(remote_dir.iterdir()) == []


def start_run(tmp_path: Path, path: Path) -> subprocess.Popen:
    """``bench run`` in the background, for tests that act while it runs."""
    cmd = [
        sys.executable,
        "-m",
        "bench.cli",
        "run",
        str(path),
        "--results-dir",
        str(tmp_path / "r"),
    ]
    return subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def failing_run(tmp_path: Path, target: str, workload: str = CMD) -> tuple[str, Path]:
    done, run_dir = run(tmp_path, suite(tmp_path, [target], [workload]))
    assert done.returncode == 1, done.stderr
    cells = load_cells(run_dir)
    assert (cells["status"] == "failed").all()
    return cells.iloc[0]["error"], run_dir


def test_wrong_user_key(server, remote_dir, tmp_path) -> None:
    other = keygen(tmp_path / "other_key")
    error, _ = failing_run(tmp_path, remote(server, remote_dir, key=str(other)))
    assert "authentication failed" in error
    assert list(remote_dir.iterdir()) == []


def test_host_key_mismatch_shows_both_fingerprints(server, remote_dir, tmp_path) -> None:
    impostor = keygen(tmp_path / "impostor")
    pub = " ".join(Path(f"{impostor}.pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"[{server.host}]:{server.port} {pub}\n")
    error, _ = failing_run(tmp_path, remote(server, remote_dir, known_hosts=str(known)))
    assert "HOST KEY MISMATCH" in error
    assert error.count("SHA256:") == 2


def test_unknown_host_is_refused_unless_accept_new(server, remote_dir, tmp_path, monkeypatch):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    error, _ = failing_run(tmp_path, remote(server, remote_dir, known_hosts=str(empty)))
    assert "is not in" in error and "SHA256:" in error
    state = tmp_path / "state"
    monkeypatch.setenv("BENCH_STATE_DIR", str(state))
    target = remote(server, remote_dir, known_hosts=str(empty), host_key="accept-new")
    done, _ = run(tmp_path, suite(tmp_path, [target], [CMD]))
    assert done.returncode == 0, done.stderr
    assert f"[{server.host}]:{server.port} ssh-ed25519" in (state / "known_hosts").read_text()


def test_stopped_server_is_connection_refused(tmp_path, remote_dir) -> None:
    down = SshServer(tmp_path / "down").setup()  # configured, never started
    target = down.target_yaml(python=sys.executable, workdir=str(remote_dir), connect_retries=1)
    error, run_dir = failing_run(tmp_path, target)
    assert "connection refused" in error
    assert "fingerprint_error" in load_manifest(run_dir)["targets"]["remote"]


def test_missing_remote_python(server, remote_dir, tmp_path) -> None:
    target = server.target_yaml(python="/nonexistent/python3", workdir=str(remote_dir))
    error, _ = failing_run(tmp_path, target)
    assert "remote python '/nonexistent/python3' not found" in error
    assert list(remote_dir.iterdir()) == []


def test_torch_missing_on_remote(server, remote_dir, tmp_path) -> None:
    probe = subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system python has torch")
    error, _ = failing_run(
        tmp_path, server.target_yaml(python="/usr/bin/python3", workdir=str(remote_dir)), TRAIN
    )
    assert "No module named 'torch'" in error and "install torch" in error
    assert list(remote_dir.iterdir()) == []


def test_worker_killed_mid_run(server, remote_dir, tmp_path) -> None:
    path = suite(tmp_path, [remote(server, remote_dir)], [LONG, CMD])
    proc = start_run(tmp_path, path)
    pid = _wait_for_worker(remote_dir, proc)
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    cells = load_cells(Path(stdout.strip().splitlines()[-1])).set_index("workload")
    assert "before reporting a result" in cells.loc["long", "error"]
    assert cells.loc["cmd", "status"] == "ok"  # the other cell still ran
    assert list(remote_dir.iterdir()) == []


def test_ctrl_c_stops_the_remote_worker_and_removes_the_run_dir(server, remote_dir, tmp_path):
    proc = start_run(tmp_path, suite(tmp_path, [remote(server, remote_dir)], [LONG]))
    pid = _wait_for_worker(remote_dir, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert not _alive(pid)
    assert list(remote_dir.iterdir()) == []


def test_ctrl_c_while_the_remote_worker_starts_still_stops_it(server, remote_dir, tmp_path):
    """Ctrl-C before the worker has reported its pid (its interpreter still starting): the
    worker is found by the pid its shell wrote, not left to run on."""
    slow = tmp_path / "slow-python"  # a worker that takes a minute to start
    wait = 'case "$*" in "-m workloads run "*) sleep 60;; esac'
    slow.write_text(f'#!/bin/sh\n{wait}\nexec {sys.executable} "$@"\n')
    slow.chmod(0o755)
    target = server.target_yaml(python=str(slow), workdir=str(remote_dir))
    proc = start_run(tmp_path, suite(tmp_path, [target], [TRAIN]))
    pid = _wait_for_worker(remote_dir, proc)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 130, stderr
    assert not _alive(pid)
    assert not _processes_in(remote_dir), "the starting worker's shell ran on"
    assert list(remote_dir.iterdir()) == []


def test_connection_dropped_mid_run(server, remote_dir, tmp_path) -> None:
    path = suite(tmp_path, [remote(server, remote_dir)], [LONG])
    proc = start_run(tmp_path, path)
    pid = _wait_for_worker(remote_dir, proc)
    time.sleep(1.0)
    session = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(session, signal.SIGKILL)  # the sshd process serving this connection
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    run_dir = Path(stdout.strip().splitlines()[-1])
    cells = load_cells(run_dir)
    assert "connection dropped" in cells.iloc[0]["error"]
    assert "cleanup_errors" not in load_manifest(run_dir), load_manifest(run_dir)
    assert not _alive(pid)  # the orphaned worker was stopped at the end of the run
    assert list(remote_dir.iterdir()) == []


def _processes_in(remote_dir: Path) -> list[tuple[int, bytes]]:
    """(pid, command line) of the live processes working in a cell directory of ``remote_dir``."""
    return [(p.pid, p.cmdline) for p in working_in(str(remote_dir)) if "/cell-" in p.cwd]


def _wait_for_worker(remote_dir: Path, proc: subprocess.Popen, timeout: float = 90) -> int:
    """PID of a worker whose working directory is a cell directory under ``remote_dir``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        for pid, cmdline in _processes_in(remote_dir):
            if b"workloads" in cmdline:
                return pid
        time.sleep(0.1)
    raise AssertionError("no remote worker appeared")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_suite_values_cannot_inject_commands(server, tmp_path) -> None:
    marker = tmp_path / "pwned"
    evil_dir = tmp_path / f"w; touch {marker}; echo $(touch {marker}2)"
    evil_dir.mkdir(parents=True)
    env = {"EVIL": f"$(touch {marker}3)`touch {marker}4`"}
    target = server.target_yaml(python=sys.executable, workdir=str(evil_dir), env=env)
    evil_python = server.target_yaml(
        name="evil", python=f"{sys.executable}; touch {marker}5", workdir=str(evil_dir)
    )
    done, run_dir = run(tmp_path, suite(tmp_path, [target, evil_python], [CMD]))
    assert done.returncode == 1, done.stderr  # the evil target fails, the other runs
    cells = load_cells(run_dir).set_index("target")
    assert cells.loc["remote", "status"] == "ok", cells.loc["remote", "error"]
    assert cells.loc["evil", "status"] == "failed"
    assert not list(tmp_path.glob("pwned*"))
    assert list(evil_dir.iterdir()) == []


@pytest.fixture
def second_host(tmp_path: Path):
    """A second SSH host: inside a network namespace with its own address where this machine
    allows one, else a second server on another loopback port."""
    ns = Netns.create()
    if ns is None:
        server = SshServer(tmp_path / "second")
    else:
        server = SshServer(tmp_path / "second", host=ns.ns_ip, port=22, netns=ns.name)
    try:
        yield server.setup().start()
    finally:
        server.stop()
        if ns is not None:
            ns.delete()


def test_parallel_hosts_overlap_across_hosts_never_within(server, second_host, tmp_path) -> None:
    targets = [remote(server, tmp_path, name="h1"), remote(second_host, tmp_path, name="h2")]
    first = '{name: first, kind: command, argv: [sleep, "3"]}'  # long enough to overlap
    done, run_dir = run(tmp_path, suite(tmp_path, targets, [first, CMD]), "--parallel-hosts", "2")
    assert done.returncode == 0, done.stderr
    cells = load_cells(run_dir)
    spans = {
        t: sorted((_t(r.started_at), _t(r.finished_at)) for r in rows.itertuples())
        for t, rows in cells.groupby("target")
    }
    for t, intervals in spans.items():
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert start >= end, f"two cells overlapped on host {t}"
    (a0, a1), (b0, b1) = spans["h1"][0], spans["h2"][0]
    assert a0 < b1 and b0 < a1  # the first cells of the two hosts ran at the same time


def _t(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_ssh_suite_errors_are_located(write_suite) -> None:
    path = write_suite(
        textwrap.dedent("""
        name: s
        targets:
          - {name: r, kind: ssh, host: h, port: 70000}
        workloads: [{name: t, kind: train_step}]
    """)
    )
    done = bench_cli("validate", str(path))
    assert done.returncode == 2
    assert ":3: targets[0].port:" in done.stderr


def test_free_port_is_unused() -> None:
    port = free_port()
    assert 0 < port < 65536


def _endpoint(server: SshServer, **changes) -> Endpoint:
    fields = dict(
        host=server.host,
        port=server.port,
        user=server.user,
        key=str(server.client_key),
        password=None,
        known_hosts=server.known_hosts,
        host_key="strict",
        timeout_s=5,
        retries=2,
    )
    return Endpoint(**{**fields, **changes})


def test_only_connection_failures_are_retried(server, tmp_path) -> None:
    naps: list[float] = []
    with pytest.raises(TargetError, match="connection refused"):
        connect(_endpoint(server, port=free_port()), sleep=naps.append)
    assert len(naps) == 2  # retried twice, with backoff
    naps.clear()
    with pytest.raises(TargetError, match="authentication failed"):
        connect(_endpoint(server, key=str(keygen(tmp_path / "k"))), sleep=naps.append)
    assert naps == []  # an authentication failure is final
    client = connect(_endpoint(server), sleep=naps.append)
    client.close()
