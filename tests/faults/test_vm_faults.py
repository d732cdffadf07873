"""Faults of a ``kind: vm`` run with real QEMU guests (TCG here): the guest's QEMU killed while
its cell runs, and a guest that never answers SSH within the boot timeout.

Each run has a bare-metal cell first, so that there is a finished cell to keep."""

from __future__ import annotations

import os
import shutil
import signal
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
LOADING = 48 << 20  # read by the guest after sshd started: the worker importing torch


def console(cmdline: list[str]) -> Path:
    """The serial console file of a QEMU command line."""
    (serial,) = [cmdline[i + 1] for i, arg in enumerate(cmdline) if arg == "-serial"]
    return Path(serial.removeprefix("file:"))


def read_bytes(pid: int) -> int:
    """Bytes QEMU has read so far (its disks, mostly)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError(f"no rchar in /proc/{pid}/io")


def guest_sshd(scope: Scope, fingerprint: set[int]) -> int | None:
    """The cell's QEMU once its guest has started sshd."""
    for pid, cmdline in qemu_pids(scope).items():
        try:
            if pid not in fingerprint and SSHD_MARK in console(cmdline).read_text("latin-1"):
                return pid
        except OSError:
            return None
    return None


def test_guest_qemu_killed_mid_cell(tmp_path: Path) -> None:
    """The fingerprint's guest is killed as soon as it starts too: that failure is recorded
    for the target and its cells still run, and the test needs one full boot, not two."""
    scope = Scope(tmp_path)
    proc = runs.start(scope, runs.suite(scope, [BARE, VM], [runs.TRAIN]))
    first = runs.wait_for(lambda: qemu_pids(scope), proc, 1800, "the fingerprint's guest")
    for pid in first:
        os.kill(pid, signal.SIGKILL)
    cell = runs.wait_for(lambda: guest_sshd(scope, set(first)), proc, 600, "the cell's guest")
    base = read_bytes(cell)  # torch is hundreds of MiB: reading them is the worker starting
    runs.wait_for(lambda: read_bytes(cell) > base + LOADING, proc, 300, "the worker in the guest")
    os.kill(cell, signal.SIGKILL)
    status, _, stderr = runs.finish(proc)
    assert status == 1, stderr
    runs.one_line(stderr, "cell failed: train on vm #1", "QEMU process exited (status -9)")
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
    assert_nothing_left(scope)
