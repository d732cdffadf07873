"""Running a target's own command on the controller (a static VM's start and stop), so that
bench can always take it back.

The command runs in its own process group and session: on a timeout, on Ctrl-C, or when the
run is cancelled from another thread (``--parallel-hosts``), the whole group is terminated, the
shell of a script and whatever it started alike, instead of leaving a ``sleep`` or a ``virsh``
behind. A daemon the command starts on purpose leaves the group itself and is not touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import suppress

from bench import interrupts

POLL_S = 0.1
GRACE_S = 2.0


def run(
    command: list[str], timeout_s: float, cancellable: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to completion and capture its output.

    Raises ``subprocess.TimeoutExpired`` after ``timeout_s`` and ``KeyboardInterrupt`` when the
    run is cancelled (unless ``cancellable`` is False: a stop command should still finish), in
    both cases after the command's process group is gone. ``OSError`` when it cannot start.
    """
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if cancellable:
                interrupts.check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(command, timeout_s)
            try:
                stdout, stderr = process.communicate(timeout=min(POLL_S, remaining))
            except subprocess.TimeoutExpired:
                continue
            return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    except BaseException:
        with interrupts.deferred():
            kill_group(process)
        raise


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGTERM to the command's process group, SIGKILL after a grace period; reaped, pipes
    closed (not waited on: a daemon that escaped the group may hold them)."""
    _signal_group(process.pid, signal.SIGTERM)
    end = time.monotonic() + GRACE_S
    while time.monotonic() < end and _group_alive(process):
        time.sleep(0.02)
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            with suppress(OSError):
                stream.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(process: subprocess.Popen[str]) -> bool:
    """Whether a live member of the group is left (zombies, which only wait to be reaped by
    whoever inherited them, do not count)."""
    process.poll()  # reap the leader if it exited
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_in_group(entry.name, process.pid) for entry in os.scandir("/proc"))


def _in_group(pid: str, pgid: int) -> bool:
    """Whether process ``pid`` is alive (not a zombie) and in process group ``pgid``."""
    if not pid.isdigit():
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] != "Z" and fields[2] == str(pgid)
