"""Who owns what bench creates: one token per invocation, and whether its owner still runs.

Every artefact a run creates (container label, guest owner file, worker temp-dir marker,
remote-directory record) carries the token of the invocation that made it. Cleanup at the end
of a run removes only artefacts with its own token, so two runs with the same run id never
remove each other's; ``bench gc`` removes only artefacts whose owner is gone.

A process id alone cannot say that: pids are reused. The token holds the host, the pid, the
process's start time (``/proc/<pid>/stat``, in clock ticks since boot) and the boot id, so
an owner counts as alive only while that very process runs.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

_cached: tuple[int, str] | None = None
_lock = threading.Lock()


@dataclass(frozen=True)
class Owner:
    """A token's parts."""

    host: str
    pid: int
    start: str
    boot: str


def token() -> str:
    """This invocation's owner token, ``host:pid:start:boot:random`` (fixed per process)."""
    global _cached
    pid = os.getpid()
    with _lock:  # lane threads (--parallel-hosts) must all get the same one
        if _cached is None or _cached[0] != pid:  # a forked child is another owner
            start = start_time(pid) or "?"
            host = socket.gethostname()
            _cached = (pid, f"{host}:{pid}:{start}:{boot_id()}:{secrets.token_hex(4)}")
        return _cached[1]


def parse(value: str) -> Owner | None:
    """A token's parts; None for anything that is not a token."""
    parts = value.split(":")
    if len(parts) != 5 or not parts[1].isdigit():
        return None
    return Owner(parts[0], int(parts[1]), parts[2], parts[3])


def alive(value: str) -> bool:
    """Whether the process that owns ``value`` still runs. An owner on another host cannot be
    seen from here and counts as alive; a malformed token counts as dead."""
    found = parse(value)
    if found is None:
        return False
    if found.host != socket.gethostname():
        return True
    if found.boot != boot_id():
        return False  # the machine rebooted since
    stat = _stat(found.pid)
    if stat is None:
        return found.start == "?" and _signalable(found.pid)
    return stat[0] != "Z" and stat[19] == found.start  # a zombie has finished


def mine(value: str | None) -> bool:
    """Whether ``value`` is this invocation's token."""
    return value == token()


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    stat = _stat(pid)
    return stat[19] if stat is not None else None


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    return fields if len(fields) > 19 else None


def boot_id() -> str:
    """The first 8 characters of the kernel's boot id ("-" where there is none)."""
    with suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    return "-"


def _signalable(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
