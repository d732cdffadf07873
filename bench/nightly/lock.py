"""One ``bench nightly`` at a time per history directory: an ``flock`` on ``nightly.lock``."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from bench.errors import InputError

LOCK = "nightly.lock"
DIR_MODE = 0o755  # a history directory bench creates: readers of the exports must reach them


class LockedError(InputError):
    """Another ``bench nightly`` is using the history directory."""


def _open_lock(path: Path) -> IO[str]:
    """The lock file, opened without following a symbolic link (bench runs as root: a link
    planted there would have it truncate any file on the system) and refused unless it is a
    plain file with one name."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        what = "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be opened: {exc}"
        raise InputError(f"{path} {what}; nothing was changed", hint="remove it") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise InputError(
            f"{path} is not a plain file with a single name; nothing was changed",
            hint="remove it",
        )
    return os.fdopen(fd, "r+")


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold ``root/nightly.lock`` for the duration, or fail at once without touching anything.

    ``flock`` is released by the kernel when the holder dies, so a killed run never leaves a
    stale lock behind; the file only says who holds it.
    """
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, DIR_MODE)  # the exports inside are for readers running as other users
    handle = _open_lock(root / LOCK)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise LockedError(
            f"{root}: another bench nightly is running ({holder}); nothing was changed",
            hint="wait for it to finish; the lock goes away when that process exits",
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        handle.flush()
        yield
    finally:
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
