"""What a made asset is, a workload's set of assets at one location, and what a target
returns once it has staged a set.

A cell's spec carries ``assets`` (``{"checkpoint": {"path", "sha256"}, "dataset": {...},
"stage_to", "location"}``) with the paths as the worker sees them; the digests are those of
the cached directories, so the worker can check that what it read is what was made.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.build import cache

KINDS = ("checkpoint", "dataset", "code")  # code: a ``kind: python`` workload's directory
LOCATIONS = ("image", "volume", "tmpfs")
PAGE = 4096


@dataclass(frozen=True)
class Asset:
    """One asset directory in the controller's cache."""

    kind: str
    key: str
    path: Path
    sha256: str
    bytes: int
    params: dict[str, Any]
    footprint: int  # bytes its files occupy in whole pages (what a tmpfs or ext4 needs)

    def record(self) -> dict[str, Any]:
        """What the run manifest keeps about it."""
        return {"sha256": self.sha256, "bytes": self.bytes, "key": self.key, "params": self.params}


@dataclass(frozen=True)
class AssetSet:
    """The assets one workload reads, at the location its suite names."""

    location: str
    assets: tuple[Asset, ...]

    @property
    def key(self) -> str:
        """Names the set and its location (what a target keys its staged copies by)."""
        return set_key(self.location, [a.sha256 for a in self.assets])

    @property
    def footprint(self) -> int:
        return sum(a.footprint for a in self.assets)

    def spec(self, paths: Mapping[str, str], stage_to: str | None = None) -> dict[str, Any]:
        """The spec's ``assets``, each asset at ``paths[kind]`` as the worker sees it."""
        out: dict[str, Any] = {"location": self.location, "stage_to": stage_to}
        for asset in self.assets:
            out[asset.kind] = {"path": paths[asset.kind], "sha256": asset.sha256}
        return out

    def under(self, root: str, stage_to: str | None = None) -> dict[str, Any]:
        """The spec's ``assets`` with each asset at ``root/<key>`` (a POSIX path)."""
        paths = {a.kind: f"{root.rstrip('/')}/{a.key}" for a in self.assets}
        return self.spec(paths, stage_to)


@dataclass(frozen=True)
class Staged:
    """A set staged on one target: the spec's ``assets`` and what the manifest keeps."""

    spec: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)


def set_key(location: str, digests: Sequence[str]) -> str:
    """The key of a set at ``location`` holding assets with ``digests`` (in kind order)."""
    return cache.digest("assets-v1", location, *digests)[:16]


def key_of(spec_assets: Mapping[str, Any]) -> str:
    """The key of the set a cell spec's ``assets`` describes (``AssetSet.key`` of it)."""
    found = [spec_assets[k]["sha256"] for k in KINDS if isinstance(spec_assets.get(k), Mapping)]
    return set_key(str(spec_assets.get("location")), found)


def cell_assets(spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """A cell spec's ``assets`` when it stages anything, else None."""
    found = spec.get("assets")
    if not isinstance(found, Mapping) or not any(k in found for k in KINDS):
        return None
    return dict(found)


def with_stage_to(spec: Mapping[str, Any], stage_to: str) -> dict[str, Any]:
    """A copy of ``spec`` whose assets are copied to ``stage_to`` first (location tmpfs)."""
    out = copy.deepcopy(dict(spec))
    out["assets"]["stage_to"] = stage_to
    return out


def pages(size: int) -> int:
    """``size`` rounded up to whole pages."""
    return -(-size // PAGE) * PAGE
