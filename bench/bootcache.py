"""Facts that hold until the host reboots, kept so a run does not pay again for them.

Some answers cost a guest boot under software emulation (tens of seconds) and cannot change
while the host runs the same kernel and the inputs stay the same: whether KVM works, and what a
pristine guest booted from the same disk, QEMU and settings reports about itself. Each is kept
in the state directory under a hash of its inputs and the host's boot id, so a reboot, a new
QEMU, a rebuilt disk or a changed setting asks again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.build import cache
from bench.state import state_dir

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot of the host ('unknown' where the kernel does not say)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return "unknown"


def path(kind: str, *parts: str) -> Path:
    """Where the answer for ``parts`` in this boot is kept."""
    key = cache.digest(f"{kind}-v1", boot_id(), *parts)[:16]
    return state_dir() / kind / f"{key}.json"


def remembered(kind: str, parts: tuple[str, ...], make: Callable[[], Any]) -> tuple[Any, bool]:
    """(the answer, whether it was kept from earlier in this boot): ``make()`` is called and
    its JSON-able answer kept when there is none yet (or the kept one cannot be read)."""
    file = path(kind, *parts)
    try:
        return json.loads(file.read_text())["answer"], True
    except (OSError, ValueError, KeyError):
        pass
    answer = make()
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump({"answer": answer}, handle)
    os.replace(name, file)
    return answer, False
