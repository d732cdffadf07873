"""Where built artefacts live, how they are named, and how concurrent builds stay apart.

Artefacts are named by a hash of their inputs, so an unchanged input reuses the artefact and a
changed one can never be confused with the old. They live outside any checkout (several clones
and CI runs share them) and are only published once complete: written under a temporary name,
then renamed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def root() -> Path:
    """``$BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/bench``, else ``~/.cache/bench``."""
    explicit = os.environ.get("BENCH_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bench"


def digest(*parts: str | bytes) -> str:
    """A hex sha256 over ``parts`` (separated, so ('ab','c') and ('a','bc') differ)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks (wheels are hundreds of MB)."""
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def locked(name: str) -> Iterator[Path]:
    """Hold an exclusive lock on ``name`` in the cache so that two runs never build the same
    artefact at once (the second waits, then finds it built)."""
    directory = root()
    directory.mkdir(parents=True, exist_ok=True)
    lock_path = directory / f".{name}.lock"
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield directory
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def unfinished(path: Path) -> Iterator[Path]:
    """Remove ``path`` (file or directory) if the block fails or is interrupted, so a failed
    or Ctrl-C'd build leaves nothing half-made behind."""
    try:
        yield path
    except BaseException:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        raise
