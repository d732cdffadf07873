"""Asset directories copied to a host reached over SSH (a remote host, a static VM, a QEMU
guest), over SFTP.

A copy is written under a temporary name and renamed when every file is there, so a cut
connection never leaves a directory that looks complete; SFTP's own size check confirms each
file, and the worker hashes what it reads against the digest in its spec. Paths are handed to
SFTP as they are: no shell sees them.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import stat
from pathlib import Path

import paramiko

from bench.assets.model import Asset
from bench.errors import TargetError
from bench.targets.remotecmd import execute

SHM = "/dev/shm"


def upload(client: paramiko.SSHClient, asset: Asset, dest: str, label: str) -> None:
    """Copy ``asset``'s directory to ``dest`` (its parent must exist); a copy already there
    (made by this run) is kept."""
    partial = dest + ".partial"
    try:
        with client.open_sftp() as sftp:
            if _exists(sftp, dest):
                return
            _put_tree(sftp, asset.path, partial)
            sftp.rename(partial, dest)
    except (paramiko.SSHException, OSError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise TargetError(f"{label}: cannot copy asset {asset.key} to {dest}: {why}") from None


def _put_tree(sftp: paramiko.SFTPClient, source: Path, dest: str) -> None:
    """``source``'s files and subdirectories, as they are, under ``dest``."""
    sftp.mkdir(dest, 0o755)
    for root, dirs, files in os.walk(source):
        rel = os.path.relpath(root, source)
        there = dest if rel == "." else posixpath.join(dest, *Path(rel).parts)
        for name in sorted(dirs):
            sftp.mkdir(posixpath.join(there, name), 0o755)
        for name in sorted(files):
            sftp.put(os.path.join(root, name), posixpath.join(there, name), confirm=True)


def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        return stat.S_ISDIR(sftp.stat(path).st_mode or 0)
    except FileNotFoundError:
        return False


def make_dirs(client: paramiko.SSHClient, paths: list[str], label: str) -> None:
    """``mkdir -p`` of ``paths`` on the host (directories of this run or guest)."""
    command = "mkdir -p -m 700 -- " + " ".join(shlex.quote(p) for p in paths)
    status, output = execute(client, command, timeout=60)
    if status != 0:
        last = output.strip().splitlines()[-1:] or [f"exit status {status}"]
        raise TargetError(f"{label}: cannot create {', '.join(paths)}: {last[0]}")


def remove(client: paramiko.SSHClient, path: str) -> None:
    """``rm -rf`` a directory this run created (errors are the run cleanup's to report)."""
    execute(client, f"rm -rf -- {shlex.quote(path)}", timeout=60)
