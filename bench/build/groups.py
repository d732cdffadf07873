"""Optional package groups: the pins a suite's workloads need beyond torch's.

Pillow (image datasets) and transformers (BERT, Llama) are installed on the built targets only
for suites whose workloads use them, so a suite without them (the quickstart) builds the very
wheelhouse, venv, image and guest disk it built before groups existed: the requirement text,
hence every artefact key, is unchanged. Each group's pins live beside the base pins, in
``requirements-<group>.txt``, and are appended to the base (or to a suite's own pins file).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

from pydantic import BaseModel

from workloads import spec

DIRECTORY = Path(__file__).parent
GROUPS = ("pillow", "transformers")


def pins_file(group: str) -> Path:
    """The pinned requirements file of ``group``."""
    if group not in GROUPS:
        raise ValueError(f"unknown package group {group!r} (known: {', '.join(GROUPS)})")
    return DIRECTORY / f"requirements-{group}.txt"


def needed(workloads: Iterable[BaseModel]) -> frozenset[str]:
    """The groups a suite's workloads need on their targets (empty for the quickstart), by the
    worker's own rule (``workloads.spec.extras``) applied to each workload's options exactly as
    the worker is told them (the runner's spec, less the controller's timeout)."""
    found: set[str] = set()
    for workload in workloads:
        found |= spec.extras(workload.model_dump(mode="json", exclude={"timeout_s"}))
    return frozenset(found)


def with_groups(base: str, groups: Collection[str]) -> str:
    """``base`` followed by each group's pins, in a fixed order; ``base`` itself when none."""
    if not groups:
        return base
    parts = [base if not base or base.endswith("\n") else base + "\n"]
    parts += [pins_file(group).read_text() for group in sorted(groups)]
    return "".join(parts)
