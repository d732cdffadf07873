"""``bench gc`` for ``kind: ssh`` (and static VMs, which are reached the same way): the remote
run directories a dead run recorded, with the workers working in them, removed over SSH.

A remote directory is reached with the connection facts the record kept; a target that logs
in with a password cannot be reached without the suite (passwords are never written), so gc
says what to remove by hand instead.
"""

from __future__ import annotations

import posixpath
import shlex
from pathlib import Path
from typing import Any

from bench.errors import TargetError
from bench.leftovers import DIRECTORIES, Sweep
from bench.targets.remotecmd import execute
from bench.targets.sshconn import Endpoint, connect

HEADING = "remote run dir(s)"

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


class RemoteDirs:
    """The recorded remote run directories of dead runs (nothing is found unrecorded)."""

    stage = DIRECTORIES
    headings = (HEADING,)
    records = ("remote_dir",)

    def recorded(self, item: dict[str, Any], sweep: Sweep) -> bool:
        return sweep.take(HEADING, lambda: remote_dir(item, sweep.dry_run)) and not sweep.dry_run

    def unrecorded(self, sweep: Sweep) -> None:
        return None


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
