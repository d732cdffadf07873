"""How a worker is started and how its fingerprint is read.

The worker is always started as ``python -m workloads``; targets differ only in how the package
gets there (already on disk for ``local``, uploaded or baked into an image elsewhere).
"""

from __future__ import annotations

import json
from typing import Any

from bench.errors import TargetError


def run_args(python: str) -> list[str]:
    """The command line that starts a worker reading its spec from stdin."""
    return [python, "-m", "workloads", "run", "--spec", "-"]


def inline_run_args(python: str, spec: dict[str, Any]) -> list[str]:
    """The command line that starts a worker with its spec inline: nothing to copy to the
    target first (copying a file into a container costs the engine tens of milliseconds)."""
    return [python, "-m", "workloads", "run", "--spec-json", json.dumps(spec)]


def fingerprint_args(python: str, torch: bool = True) -> list[str]:
    """The command line that prints the target's environment (without importing torch, and
    so without its version and GPUs, when ``torch`` is False: a suite of torchless kinds)."""
    return [python, "-m", "workloads", "fingerprint", *([] if torch else ["--no-torch"])]


def parse_fingerprint(stdout: str, label: str) -> dict[str, Any]:
    """The ``data`` of the fingerprint event in a worker's stdout."""
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "fingerprint":
            return event.get("data", {})
    raise TargetError(f"{label}: fingerprint printed no fingerprint event")
