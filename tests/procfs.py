"""Processes looked up in /proc by their working directory: how tests find the workers a run
started (and prove them gone) without going through bench's own records."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


class Proc(NamedTuple):
    pid: int
    cwd: str
    cmdline: bytes


def working_in(prefix: str) -> list[Proc]:
    """Processes whose working directory starts with ``prefix`` (a zombie has none)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cwd.startswith(prefix):
            found.append(Proc(int(entry.name), cwd, cmdline))
    return found
