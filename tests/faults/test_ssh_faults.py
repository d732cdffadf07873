"""Faults of a ``kind: ssh`` run against a real OpenSSH server: the connection dropped while a
worker runs, and the remote host's disk filling up during a cell."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults import runs
from tests.faults.leftovers import Scope, assert_nothing_left, worker_pids
from tests.sshd import SSHD, SshServer

pytestmark = [
    pytest.mark.fault,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server missing"),
]

# Command cells: the faults are the target's, so the worker needs no torch start-up. ``long``
# runs until it is stopped (its worker, ``python -m workloads run``, is the sleep's parent).
CMD = {"name": "cmd", "kind": "command", "argv": ["sleep", "0.05"]}
LONG = {"name": "long", "kind": "command", "argv": ["sleep", "300"], "timeout_s": 300}
FILL = {  # 4 MiB written into the cell's directory on a 1 MiB file system
    "name": "fill",
    "kind": "command",
    "argv": ["sh", "-c", "head -c 4194304 /dev/zero > fill"],
}


@pytest.fixture
def scope(tmp_path: Path) -> Scope:
    workdir = tmp_path / "remote"
    workdir.mkdir()
    return Scope(tmp_path, workdirs=(workdir,))


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_connection_dropped_mid_cell(server: SshServer, scope: Scope) -> None:
    (workdir,) = scope.workdirs
    path = runs.suite(scope, [runs.ssh_target(server, workdir)], [CMD, LONG])
    proc = runs.start(scope, path)
    runs.wait_for(lambda: runs.cells_written(scope) == 1, proc, 300, "the first cell")
    (pid,) = runs.wait_for(lambda: worker_pids(scope), proc, 120, "the long cell's worker")
    os.kill(parent(pid), signal.SIGKILL)  # the sshd process serving the worker's connection
    status, _, stderr = runs.finish(proc)
    assert status == 1, stderr
    runs.one_line(stderr, "cell failed: long on remote #1", "connection dropped")
    runs.cells_kept(scope, ok=["cmd@remote"], failed=["long@remote"])
    assert_nothing_left(scope)


@pytest.fixture
def small_disk(scope: Scope) -> Iterator[Path]:
    """The remote work directory on a 1 MiB tmpfs: room for the worker, not for its output."""
    (workdir,) = scope.workdirs
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "bench-fault", str(workdir)], check=True
    )
    try:
        yield workdir
    finally:
        subprocess.run(["umount", "--lazy", str(workdir)], check=False)


def test_remote_disk_full(server: SshServer, scope: Scope, small_disk: Path) -> None:
    path = runs.suite(scope, [runs.ssh_target(server, small_disk)], [CMD, FILL])
    done = runs.run(scope, path)
    assert done.returncode == 1, done.stderr
    runs.one_line(done.stderr, "cell failed: fill on remote #1", "No space left on device")
    runs.cells_kept(scope, ok=["cmd@remote"], failed=["fill@remote"])
    assert_nothing_left(scope)
