"""How targets are named in every table and figure of a report."""

from __future__ import annotations

from typing import Any

from bench.results.model import Manifest, as_manifest
from bench.targets import registry


def target_labels(manifest: Manifest | dict[str, Any]) -> dict[str, str]:
    """How each target is named in tables: a VM's accelerator is part of its name, because a
    number measured under software emulation says nothing about KVM."""
    out = {}
    for name, entry in as_manifest(manifest).targets.items():
        accel = registry.kind(entry.kind or "").accel_label(entry.artefacts)
        out[name] = f"{name} [{accel}]" if accel else name
    return out
