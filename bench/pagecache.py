"""Dropping the page cache before a repetition, for suites that ask for ``cache: cold``.

A warm page cache makes start-up (reading torch's libraries) and data loading (reading the
dataset) measure memory instead of storage. A cold run is what a freshly booted node or a
freshly scheduled job sees. Dropping needs root on the machine whose cache it is; where that is
not possible the reason is recorded, and the cell is INVALID rather than quietly warm.
"""

from __future__ import annotations

import os
from pathlib import Path

DROP_CACHES = Path("/proc/sys/vm/drop_caches")

# The same on a remote host: directly as root, else through passwordless sudo, else it fails.
REMOTE_DROP = (
    "sync; if [ -w /proc/sys/vm/drop_caches ]; then echo 3 > /proc/sys/vm/drop_caches; "
    "else sudo -n sh -c 'echo 3 > /proc/sys/vm/drop_caches'; fi"
)


def drop_local(path: Path = DROP_CACHES) -> str | None:
    """Write back dirty pages, then drop clean page cache, dentries and inodes on this host.

    Returns None on success, else why it could not be done.
    """
    os.sync()
    try:
        path.write_text("3\n")
    except OSError as exc:
        return f"{path}: {exc.strerror or exc} (dropping the page cache needs root)"
    return None


def record(mode: str, reason: str | None, seconds: float) -> dict[str, object]:
    """What a cell's info says about its cache state."""
    out: dict[str, object] = {"mode": mode, "dropped": reason is None, "drop_s": round(seconds, 4)}
    if reason is not None:
        out["reason"] = reason
    return out
