"""Benchmark workloads that run on a target host and report JSON events.

The controller deploys this package to each target and runs it as
``python -m workloads run --spec PATH``; the worker writes one JSON event per
stdout line (``start``, ``ready``, ``first_step``, ``progress``, then
``result`` or ``error``). ``run_workload`` runs the same code in the current
process.

Importing the package does not import torch or numpy, so the controller can
use ``workloads.fingerprint`` and ``workloads.protocol`` on hosts without
them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["run_workload"]


def run_workload(
    spec: Mapping[str, Any], emit: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Run ``spec`` in this process and return its ``result`` event.

    torch is imported on the first call, not when the package is imported.
    """
    from workloads.execute import run_workload as run

    return run(spec, emit)
