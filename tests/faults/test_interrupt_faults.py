"""Ctrl-C and SIGTERM sent to ``bench run`` while a cell runs in a container or on an SSH host,
after another cell finished: exit 130 and one line, the finished cell kept, nothing left.

(Local workers under both signals: tests/test_run_e2e.py; every wait during a boot or a start
command: tests/test_interrupts.py.)"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from bench.results import load_manifest
from tests.docker_engine import ensure_engine
from tests.faults import runs
from tests.faults.leftovers import Scope, assert_nothing_left, worker_pids
from tests.sshd import SSHD, SshServer

pytestmark = [pytest.mark.fault, pytest.mark.slow]

# Command cells: the faults are the target's, so the worker needs no torch start-up. ``long``
# runs until it is stopped (its worker, ``python -m workloads run``, is the sleep's parent).
CMD = {"name": "cmd", "kind": "command", "argv": ["sleep", "0.05"]}
LONG = {"name": "long", "kind": "command", "argv": ["sleep", "300"], "timeout_s": 300}


def stop_and_check(scope: Scope, proc: subprocess.Popen[str], sig: signal.Signals, target: str):
    """Send ``sig`` mid-cell; bench must stop as documented, keeping the finished cell."""
    proc.send_signal(sig)
    status, _, stderr = runs.finish(proc)
    assert status == 130, stderr
    runs.one_line(stderr, f"error: interrupted; 1 finished cells kept in {runs.run_dir(scope)}")
    runs.cells_kept(scope, ok=[f"cmd@{target}"])
    assert load_manifest(runs.run_dir(scope))["status"] == "interrupted"
    assert_nothing_left(scope)


def test_ctrl_c_mid_container_cell(tmp_path: Path) -> None:
    client = ensure_engine()
    scope = Scope(tmp_path, docker=True)
    target = {"name": "ctr", "kind": "docker", "build": True}
    proc = runs.start(scope, runs.suite(scope, [target], [CMD, LONG]))
    label = {"label": f"bench.run_id={scope.run_id}"}
    runs.wait_for(lambda: runs.cells_written(scope) == 1, proc, 300, "the first cell")
    runs.wait_for(lambda: client.containers.list(filters=label), proc, 120, "the long cell")
    stop_and_check(scope, proc, signal.SIGINT, "ctr")


@pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server missing")
def test_sigterm_mid_ssh_cell(server: SshServer, tmp_path: Path) -> None:
    workdir = tmp_path / "remote"
    workdir.mkdir()
    scope = Scope(tmp_path, workdirs=(workdir,))
    target = runs.ssh_target(server, workdir)
    proc = runs.start(scope, runs.suite(scope, [target], [CMD, LONG]))
    runs.wait_for(lambda: runs.cells_written(scope) == 1, proc, 300, "the first cell")
    runs.wait_for(lambda: worker_pids(scope), proc, 120, "the long cell's worker")
    stop_and_check(scope, proc, signal.SIGTERM, "remote")
