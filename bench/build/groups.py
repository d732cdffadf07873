"""Optional package groups: the pins a suite's workloads need beyond torch's.

Pillow (image datasets) and transformers (BERT, Llama) are installed on the built targets only
for suites whose workloads use them, so a suite without them (the quickstart) builds the very
wheelhouse, venv, image and guest disk it built before groups existed: the requirement text,
hence every artefact key, is unchanged. Each group's pins live beside the base pins, in
``requirements-<group>.txt``, and are appended to the base (or to a suite's own pins file).
The ``requirements:`` of a suite's ``kind: python`` workloads come last, in the same text, so
the venv, the image and the guest disk install them from the same wheelhouse.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel

from workloads import spec, userentry

DIRECTORY = Path(__file__).parent
GROUPS = ("pillow", "transformers")
OWN_HEADER = "# The suite's own: the requirements of its kind: python workloads\n"


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


def requirements(workloads: Iterable[BaseModel]) -> tuple[str, ...]:
    """The pinned requirements the suite's ``kind: python`` workloads ask for (their
    ``requirements:``), each line once, in suite order: installed on every built target."""
    found: dict[str, None] = {}
    for workload in workloads:
        for line in getattr(workload, "requirements", None) or ():
            found.setdefault(line.strip(), None)
    return tuple(found)


def with_groups(base: str, groups: Collection[str], extra: Sequence[str] = ()) -> str:
    """``base`` followed by each group's pins, in a fixed order, then the ``extra`` lines
    that pin a project not pinned already (the suite's check refuses a different version of
    one); ``base`` itself when there are none."""
    if not groups and not extra:
        return base
    parts = [_ended(base)]
    parts += [pins_file(group).read_text() for group in sorted(groups)]
    text = "".join(parts)
    pinned = {userentry.pinned_name(line) for line in text.splitlines()}
    own = [line for line in extra if userentry.pinned_name(line) not in pinned]
    if not own:
        return text
    return _ended(text) + OWN_HEADER + "".join(f"{line}\n" for line in own)


def _ended(text: str) -> str:
    """``text`` ending with a newline, unless empty."""
    return text if not text or text.endswith("\n") else text + "\n"
