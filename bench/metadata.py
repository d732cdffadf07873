"""Best-effort facts about the controller: version, git commit, host, command line.

Each collector is small and never raises: missing metadata is recorded as missing, it never
stops a benchmark (the pyperf approach).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bench


def git_commit() -> str | None:
    """The commit of the bench checkout, with ``+dirty`` when it has local changes."""
    root = Path(bench.__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def host_fingerprint() -> dict[str, Any]:
    """The controller host, without torch (the controller may have no GPU stack)."""
    from workloads.fingerprint import collect

    return collect(include_torch=False)


def now_iso(timespec: str = "seconds") -> str:
    """Wall-clock time in UTC, for records meant for humans (never for durations)."""
    return datetime.now(timezone.utc).isoformat(timespec=timespec)


def new_run_id(suite_dir: Path) -> str:
    """A run id that sorts by time (UTC, to the second) and never collides: a random suffix
    keeps apart runs started in the same second, even of suites in different directories
    (every schedule left at its default time starts its suite in the same second)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    while True:
        candidate = f"{stamp}-{secrets.token_hex(3)}"
        if not (suite_dir / candidate).exists():
            return candidate


def controller_label() -> str:
    """``host:pid`` of this controller, for people reading labels and owner files; ownership
    itself is decided by ``bench.owner.token()`` (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def controller() -> dict[str, Any]:
    """Version, commit and command line of this controller."""
    return {
        "bench_version": bench.__version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "argv": sys.argv,
    }
