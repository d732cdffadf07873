"""The run's directory on a remote host: created fresh, owned, and trusted only by this process.

The run directory becomes the worker's ``PYTHONPATH``, so whoever controls it runs code as the
SSH user. It is therefore created atomically (``mkdir``, never ``mkdir -p``: an existing
directory, whoever planted it, is refused), checked to be a real directory owned by the SSH
user with mode 0700, inside a ``workdir`` that no one else can rename it out of. Nothing found
on the host is trusted: the package is uploaded into the new directory and its SHA-256 is
checked on the remote side before it is unpacked. What a target created and uploaded is
remembered (``Owned``), so later cells of the same run reuse it and cleanup removes only
directories the target made.
"""

from __future__ import annotations

import hashlib
import shlex
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

MAKE_DIR = """
import os, stat, sys
path = sys.argv[1]
parent = os.path.dirname(path)
me = os.geteuid()
def refuse(why):
    print(why)
    sys.exit(3)
def writable_by_others(st):
    return st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX
try:
    link, real = os.lstat(parent), os.stat(parent)
except OSError as exc:
    refuse("workdir " + parent + ": " + exc.strerror)
if stat.S_ISLNK(link.st_mode) and link.st_uid not in (0, me):
    refuse("workdir " + parent + " is a symbolic link owned by uid " + str(link.st_uid))
if not stat.S_ISDIR(real.st_mode):
    refuse("workdir " + parent + " is not a directory")
if real.st_uid not in (0, me) or writable_by_others(real):
    refuse("workdir " + parent + " can be written by others (owner uid " + str(real.st_uid)
           + ", mode " + oct(stat.S_IMODE(real.st_mode)) + ", not sticky)")
try:
    os.mkdir(path, 0o700)
except FileExistsError:
    refuse("already exists and was not created by this run")
except OSError as exc:
    refuse("cannot be created: " + exc.strerror)
st = os.lstat(path)
mode = stat.S_IMODE(st.st_mode)
if not stat.S_ISDIR(st.st_mode) or st.st_uid != me or mode != 0o700:
    refuse("is not a directory owned by uid " + str(me) + " with mode 0o700 (uid "
           + str(st.st_uid) + ", mode " + oct(mode) + ")")
"""

INSTALL = """
import hashlib, os, sys, tarfile
archive, target, expected = sys.argv[1:4]
with open(archive, "rb") as handle:
    found = hashlib.sha256(handle.read()).hexdigest()
if found != expected:
    sys.exit("uploaded archive " + archive + " has SHA-256 " + found + ", expected " + expected)
with tarfile.open(archive) as tar:
    tar.extractall(target, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
os.remove(archive)
"""


def make_dir_command(python: str, run_dir: str) -> str:
    """Create ``run_dir`` (its parent must exist) and check it; exit ``REFUSED`` with the reason."""
    return f"{shlex.quote(python)} -c {shlex.quote(MAKE_DIR)} {shlex.quote(run_dir)}"


def install_command(python: str, archive: str, pkg_dir: str, data: bytes) -> str:
    """Unpack ``archive`` into ``pkg_dir`` if its SHA-256 is that of ``data``, then delete it."""
    words = [python, "-c", INSTALL, archive, pkg_dir, hashlib.sha256(data).hexdigest()]
    return " ".join(shlex.quote(word) for word in words)


@dataclass
class Held:
    """What a target did in one remote run directory."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    created: bool = False
    packages: set[str] = field(default_factory=set)  # package names verified and unpacked


class Owned:
    """The remote run directories one target created, and what it put in them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dirs: dict[str, Held] = {}

    @contextmanager
    def claim(self, run_dir: str) -> Iterator[Held]:
        """The record of ``run_dir``, held exclusively (one upload into it at a time)."""
        with self._lock:
            held = self._dirs.setdefault(run_dir, Held())
        with held.lock:
            yield held

    def forget(self, run_dir: str) -> bool:
        """Drop the record; whether the directory had been created."""
        with self._lock:
            held = self._dirs.pop(run_dir, None)
        return held is not None and held.created
