"""Removing what a dead invocation left: local worker directories with their processes, and
what its record lists (``bench.state``): remote run directories, static VMs it booted.

A process counts as a bench worker of directory D only when its working directory is inside
D *and* its environment has ``TMPDIR`` inside D (bench starts every worker so): a shell that
someone opened in D is never killed. A remote directory is reached with the connection facts
the record kept; a target that logs in with a password cannot be reached without the suite
(passwords are never written), so gc says what to remove by hand instead.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import shutil
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from bench.errors import TargetError
from bench.targets.local import workdir_owner
from bench.targets.remotecmd import execute
from bench.targets.sshconn import Endpoint, connect

ORDER = {"local_tmp": 0, "remote_dir": 1, "static_vm": 2}  # a VM is stopped last
KILL_WAIT_S = 5.0

REMOTE_GC = """
import os, shutil, signal, stat, sys, time
root = sys.argv[1]
try:
    found = os.lstat(root)
except FileNotFoundError:
    sys.exit(0)
if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
    print("not a directory of this user (a symlink, a file or another user's): left alone")
    sys.exit(1)
def inside(path):
    return path == root or path.startswith(root + "/")
def workers():
    found = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            cwd = os.readlink("/proc/" + name + "/cwd")
            with open("/proc/" + name + "/environ", "rb") as handle:
                env = handle.read().split(b"\\0")
        except (OSError, ValueError):
            continue
        tmp = [e[7:].decode(errors="replace") for e in env if e.startswith(b"TMPDIR=")]
        if inside(cwd) and tmp and inside(tmp[0]):
            found.append(int(name))
    return found
for _ in range(50):
    pids = workers()
    if not pids:
        break
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.1)
shutil.rmtree(root, ignore_errors=True)
sys.exit(1 if os.path.lexists(root) else 0)
"""


def order(item: dict[str, Any]) -> int:
    """Workers first, remote directories next, VMs last (a stopped VM's disk is out of reach)."""
    return ORDER.get(str(item.get("kind")), len(ORDER))


def marked_workdirs(root: Path) -> list[tuple[Path, str]]:
    """Worker directories in the temp dir ``root`` with the owner token each is marked with."""
    out = []
    for path in root.glob("bench-*"):
        if path.is_symlink() or not path.is_dir():
            continue
        token = workdir_owner(str(path))
        if token:
            out.append((path, token))
    return out


def local_worker(workdir: Path, dry_run: bool) -> str:
    """Kill the worker processes of a worker directory and remove it; what was removed."""
    pids = workers_in(workdir)
    line = str(workdir) + (f" and {len(pids)} worker process(es)" if pids else "")
    if not dry_run:
        kill(pids)
        shutil.rmtree(workdir, ignore_errors=True)
        if workdir.exists():
            raise TargetError(f"gc: cannot remove {workdir}")
    return line


def workers_in(workdir: Path) -> list[int]:
    """Processes working in ``workdir`` with their TMPDIR there: its bench workers."""
    root = str(workdir)
    inside = lambda p: p == root or p.startswith(root + "/")  # noqa: E731
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        tmp = [e[7:].decode(errors="replace") for e in env if e.startswith(b"TMPDIR=")]
        if inside(cwd) and tmp and inside(tmp[0]):
            found.append(int(entry.name))
    return found


def kill(pids: list[int]) -> None:
    """SIGKILL the workers, and the process group of each that leads one (a worker runs in a
    session of its own: its group holds whatever it started), and wait until they are gone."""
    for pid in pids:
        with suppress(OSError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
        with suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + KILL_WAIT_S
    while any(_running(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def remote_dir(item: dict[str, Any], dry_run: bool) -> str:
    """Stop the workers of a remote run directory and remove it, over SSH."""
    host, port, user = str(item.get("host")), int(item.get("port", 22)), str(item.get("user"))
    path = str(item.get("path"))
    where = f"{user}@{host}:{port}:{path}"
    if not posixpath.basename(path).startswith("bench-") or not posixpath.isabs(path):
        raise TargetError(f"gc: {where} is not a bench run directory; left alone")
    if dry_run:
        return where
    if item.get("password"):
        raise TargetError(
            f"gc: cannot log in to {user}@{host}:{port} (the target uses a password, which "
            f"bench never stores); remove {path} there by hand"
        )
    endpoint = Endpoint(
        host=host,
        port=port,
        user=user,
        key=item.get("key"),
        password=None,
        known_hosts=Path(str(item.get("known_hosts"))),
        host_key=str(item.get("host_key", "strict")),
        timeout_s=float(item.get("timeout_s", 10.0)),
        retries=0,
    )
    try:
        client = connect(endpoint)
    except TargetError as exc:
        raise TargetError(f"gc: {where}: {exc.message}") from None
    try:
        python = str(item.get("python", "python3"))
        command = f"{shlex.quote(python)} -c {shlex.quote(REMOTE_GC)} {shlex.quote(path)}"
        status, output = execute(client, command, timeout=60)
    finally:
        client.close()
    if status != 0:
        last = output.strip().splitlines()[-1:] or [f"exit status {status}"]
        raise TargetError(f"gc: cannot remove {where}: {last[0]}")
    return where


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
