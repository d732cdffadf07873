"""Which stored targets and workloads a ``matrix:`` made, and with which values, as a table a
notebook joins onto ``load()`` (whose columns stay as they are) to group by a swept value."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd

from bench.results.model import Manifest
from bench.results.read import read_manifest, run_dir


def swept(path: str | Path, of: Literal["targets", "workloads"] = "targets") -> pd.DataFrame:
    """One row per target (or workload, ``of="workloads"``) of the run in ``path``: its name
    (column ``target`` or ``workload``), ``base`` (the name written in the suite: the name
    itself where no matrix made it) and one column per swept key (empty where the entry does
    not sweep it), e.g. ``load(run).merge(swept(run), on="target")``."""
    return swept_frame(read_manifest(run_dir(path)), of)


def swept_frame(manifest: Manifest, of: Literal["targets", "workloads"]) -> pd.DataFrame:
    """``swept`` from a manifest already read."""
    made = getattr(manifest.matrix, of)
    listed = [e.get("name") for e in getattr(manifest.suite, of) if isinstance(e, dict)]
    names = [n for n in listed if isinstance(n, str)] + [n for n in made if n not in listed]
    rows = []
    for name in names:
        entry = made.get(name)
        values = entry.values if entry is not None else {}
        rows.append({of[:-1]: name, "base": entry.base if entry is not None else name, **values})
    return pd.DataFrame(rows, columns=[of[:-1], "base", *keys(manifest, of)])


def keys(manifest: Manifest, of: Literal["targets", "workloads"]) -> list[str]:
    """The swept keys of a run's targets or workloads, in the order the suite gives them."""
    found: dict[str, None] = {}
    for entry in getattr(manifest.matrix, of).values():
        found.update(dict.fromkeys(entry.values))
    return list(found)
