"""Faults of a ``kind: vm`` run with real QEMU guests (TCG here): the guest's QEMU killed while
its cell runs, and a guest that never answers SSH within the boot timeout.

Each run has a bare-metal cell first, so that there is a finished cell to keep."""

from __future__ import annotations

import os
import shutil
import signal
from contextlib import suppress
from pathlib import Path

import pytest

from bench.results import load_manifest
from tests.faults import runs
from tests.faults.leftovers import Scope, assert_nothing_left, qemu_pids

pytestmark = [
    pytest.mark.fault,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="QEMU missing"),
]

BARE = {"name": "bare", "kind": "local"}
VM = {"name": "vm", "kind": "vm", "vcpus": 1, "memory": "512m", "accel": "tcg"}
SSHD_MARK = "bench-guest: sshd"  # the guest's init starts sshd (bench.targets.qemu)


def console(cmdline: list[str]) -> Path:
    """The serial console file of a QEMU command line."""
    (serial,) = [cmdline[i + 1] for i, arg in enumerate(cmdline) if arg == "-serial"]
    return Path(serial.removeprefix("file:"))


def forwarded_port(cmdline: list[str]) -> int:
    """The loopback port QEMU forwards to the guest's sshd."""
    (rule,) = [arg for arg in cmdline if "hostfwd=tcp:127.0.0.1:" in arg]
    return int(rule.split("hostfwd=tcp:127.0.0.1:")[1].split("-")[0])


def connected(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds an established TCP connection to 127.0.0.1:``port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with suppress(OSError):
            inodes.add(os.readlink(fd).removeprefix("socket:[").removesuffix("]"))
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if state == "01" and inode in inodes and int(remote.split(":")[1], 16) == port:
            return True
    return False


def logging_in(scope: Scope, controller: int, fingerprint: set[int]) -> int | None:
    """The cell's QEMU once its guest has started sshd and the controller is connected to it."""
    for pid, cmdline in qemu_pids(scope).items():
        if pid in fingerprint:
            continue
        with suppress(OSError):
            started = SSHD_MARK in console(cmdline).read_text("latin-1")
            if started and connected(controller, forwarded_port(cmdline)):
                return pid
    return None


def test_guest_qemu_killed_mid_cell(tmp_path: Path) -> None:
    """QEMU is killed once the cell's guest runs sshd and the controller is logging in (a kill
    while the worker runs: tests/test_vm.py::test_guest_killed_mid_run_is_reported). The
    fingerprint's guest is killed as soon as it starts, too: that failure is recorded for the
    target and its cells still run, and the test needs one boot, not two."""
    scope = Scope(tmp_path)
    proc = runs.start(scope, runs.suite(scope, [BARE, VM], [runs.TRAIN]))
    first = runs.wait_for(lambda: qemu_pids(scope), proc, 1800, "the fingerprint's guest")
    for pid in first:
        os.kill(pid, signal.SIGKILL)
    cell = runs.wait_for(
        lambda: logging_in(scope, proc.pid, set(first)), proc, 600, "the cell's guest to answer"
    )
    os.kill(cell, signal.SIGKILL)
    status, _, stderr = runs.finish(proc)
    assert status == 1, stderr
    runs.one_line(stderr, "cell failed: train on vm #1", "QEMU exited with status -9")
    runs.cells_kept(scope, ok=["train@bare"], failed=["train@vm"])
    assert "status -9" in load_manifest(runs.run_dir(scope))["targets"]["vm"]["fingerprint_error"]
    assert_nothing_left(scope)


def test_guest_never_answers_ssh(tmp_path: Path) -> None:
    scope = Scope(tmp_path)
    target = {**VM, "boot_timeout_s": 2}  # no guest answers SSH this soon under TCG
    done = runs.run(scope, runs.suite(scope, [BARE, target], [runs.TRAIN]))
    assert done.returncode == 1, done.stderr
    runs.one_line(done.stderr, "cell failed: train on vm #1", "boot timeout")
    runs.cells_kept(scope, ok=["train@bare"], failed=["train@vm"])
    manifest = load_manifest(runs.run_dir(scope))
    assert "boot timeout" in manifest["targets"]["vm"]["fingerprint_error"]
    assert_nothing_left(scope)
