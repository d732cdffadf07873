"""``bench gc`` for ``kind: vm``: QEMU guests whose owner is gone (found by their owner files),
and the static VMs a dead run booted (their recorded stop command runs).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.errors import TargetError
from bench.leftovers import MACHINES, Sweep
from bench.targets import qemu

UNOWNED_GRACE_S = 60.0  # a guest directory a moment old may not have its owner file yet
STATIC, GUESTS = "static VM(s)", "VM guest(s)"


class Machines:
    """Static VMs from the records, then every orphaned QEMU guest on this host."""

    stage = MACHINES
    headings = (STATIC, GUESTS)
    records = ("static_vm",)

    def recorded(self, item: dict[str, Any], sweep: Sweep) -> bool:
        return sweep.take(STATIC, lambda: static_vm(item, sweep.dry_run)) and not sweep.dry_run

    def unrecorded(self, sweep: Sweep) -> None:
        sweep.report.removed[GUESTS].extend(guests(sweep))


def guests(sweep: Sweep) -> list[str]:
    """Kill orphaned QEMU guests and delete their overlays; one description per guest."""
    removed = []
    for directory, record in qemu.owners():
        if not record and _age_s(directory) < UNOWNED_GRACE_S:
            continue  # being created right now: its owner file comes next
        if record and sweep.spares(record.get("owner"), record.get("controller")):
            continue
        pid = record.get("qemu_pid") or "?"
        removed.append(
            f"{directory.name} (run {record.get('run_id')}, target {record.get('target')}, "
            f"QEMU pid {pid})"
        )
        if not sweep.dry_run:
            qemu.remove_guest(directory, record)
    return removed


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return UNOWNED_GRACE_S


def static_vm(item: dict[str, Any], dry_run: bool) -> str:
    """Run the stop command of a static VM that a dead invocation booted."""
    command = item.get("stop")
    if not isinstance(command, list) or not command:
        raise TargetError(f"gc: static VM {item.get('target')!r}: no stop command recorded")
    line = f"target {item.get('target')!r} ({item.get('host')}): {shlex.join(command)}"
    if dry_run:
        return line
    cwd = str(item.get("cwd") or ".")
    try:
        done = subprocess.run(
            [str(word) for word in command],
            cwd=cwd if os.path.isdir(cwd) else None,
            capture_output=True,
            text=True,
            timeout=float(item.get("timeout_s", 600.0)),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetError(f"gc: stop command of {line} failed: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise TargetError(f"gc: stop command of {line} failed ({done.returncode}): {last}")
    return line
