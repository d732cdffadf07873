"""Checkpoints and datasets as content-hashed directories, made once and read on every target.

An asset is a directory holding its files and ``asset.json``: what made it (``params``), the
sha256 of every file, their total size and one digest over the list. The controller makes each
asset once (``python -m workloads assets make``) and copies the directory to the targets, so
every target reads identical bytes, and a target proves it by hashing what it read
(``verify``). ``make`` is deterministic: the same params give the same bytes (seeded numpy,
fixed JPEG quality and no metadata, tar members with fixed times and owners, ``torch.save``
of a seeded model), so the params alone identify an asset and can key a cache.

This module imports only the standard library at module level: the controller imports it to
compute the params of the assets a suite needs. numpy, Pillow and torch load only in ``make``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workloads.assetid import (  # noqa: F401 (the params live there; callers find them here)
    DATASET_DEFAULTS,
    FORMAT_KEYS,
    GENERATOR,
    INDEX,
    SIZING,
    STAGED,
    checkpoint_params,
    dataset_params,
    digest,
    file_sha256,
)
from workloads.spec import SpecError

MINIMUM = {"image_size": 16, "seq_len": 2, "vocab": 2, "seed": 0}  # 1 for the others
CHECKPOINT_KEYS = {"kind", "generator", "model", "preset", "sizing", "seed"}


class AssetError(RuntimeError):
    """An asset directory is missing, unreadable or differs from its index."""


# --- what make can make (the params themselves: workloads.assetid) ------------------------------


def _check_int(params: Mapping[str, Any], key: str) -> None:
    value = params.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < MINIMUM.get(key, 1):
        raise SpecError(f"asset params: {key} must be an integer >= {MINIMUM.get(key, 1)}")


def _check_keys(params: Mapping[str, Any], wanted: set[str]) -> None:
    if set(params) != wanted:
        extra, missing = sorted(set(params) - wanted), sorted(wanted - set(params))
        raise SpecError(f"asset params: unknown keys {extra}, missing keys {missing}")


def check_params(params: Any) -> None:
    """Raise ``SpecError`` naming the first thing ``make`` could not make from ``params``."""
    if not isinstance(params, Mapping):
        raise SpecError("asset params must be a JSON object")
    if params.get("generator") != GENERATOR:
        raise SpecError(f"asset params: generator must be {GENERATOR!r}")
    kind = params.get("kind")
    if kind == "checkpoint":
        _check_keys(params, CHECKPOINT_KEYS)
        if not isinstance(params["model"], str) or not params["model"]:
            raise SpecError("asset params: model must be a model name")
        if params["preset"] is not None and not isinstance(params["preset"], str):
            raise SpecError("asset params: preset must be a string or null")
        sizing = params["sizing"]
        if not isinstance(sizing, Mapping) or set(sizing) - set(SIZING):
            raise SpecError(f"asset params: sizing must be an object with keys from {SIZING}")
        for key in sizing:
            _check_int(sizing, key)
    elif kind == "dataset":
        fmt = params.get("format")
        if fmt not in FORMAT_KEYS:
            raise SpecError(f"asset params: format must be one of {sorted(FORMAT_KEYS)}")
        keys = ("samples", *FORMAT_KEYS[fmt])
        _check_keys(params, {"kind", "generator", "format", "seed", *keys})
        for key in keys:
            _check_int(params, key)
    else:
        raise SpecError("asset params: kind must be checkpoint or dataset")
    _check_int(params, "seed")


# --- making one --------------------------------------------------------------------------------


def make(params: Mapping[str, Any], out_dir: str) -> dict[str, Any]:
    """Write the asset ``params`` describes into ``out_dir`` and return its index.

    ``asset.json`` is written last, so a directory without it is an unfinished one.
    """
    check_params(params)
    os.makedirs(out_dir, exist_ok=True)
    from workloads.assetfiles import WRITERS

    writer = WRITERS[params["kind"] if params["kind"] == "checkpoint" else params["format"]]
    names = writer(params, out_dir)
    files = {name: file_sha256(os.path.join(out_dir, name)) for name in sorted(names)}
    index = {
        "kind": params["kind"],
        "params": dict(params),
        "files": files,
        "bytes": sum(os.path.getsize(os.path.join(out_dir, name)) for name in files),
        "sha256": digest(files),
    }
    with open(os.path.join(out_dir, INDEX), "w", encoding="utf-8") as handle:
        json.dump(index, handle, indent=1, sort_keys=True)
    return index


# --- reading and checking one ------------------------------------------------------------------


def _safe(name: Any) -> bool:
    """A relative path inside the asset: an index cannot make ``verify`` read elsewhere."""
    return (
        isinstance(name, str)
        and bool(name)
        and not os.path.isabs(name)
        and ".." not in name.split("/")
    )


def read_index(directory: str) -> dict[str, Any]:
    """The asset's ``asset.json``, checked for shape; ``AssetError`` naming it otherwise."""
    path = os.path.join(directory, INDEX)
    try:
        with open(path, encoding="utf-8") as handle:
            index = json.load(handle)
    except (OSError, ValueError) as exc:
        raise AssetError(f"{path}: cannot read the asset index ({exc})") from exc
    files = index.get("files") if isinstance(index, dict) else None
    if not isinstance(files, dict) or not all(_safe(name) for name in files):
        raise AssetError(f"{path}: not an asset index (no files list of relative paths)")
    if not isinstance(index.get("params"), dict) or not isinstance(index.get("sha256"), str):
        raise AssetError(f"{path}: not an asset index (params or sha256 missing)")
    return index


def verify(directory: str) -> str:
    """Hash every file of the asset on this host and return the digest; ``AssetError`` naming
    the first file that is missing or differs from the index."""
    index = read_index(directory)
    files = index["files"]
    for name in sorted(files):
        path = os.path.join(directory, name)
        try:
            actual = file_sha256(path)
        except OSError as exc:
            raise AssetError(f"{path}: cannot read an asset file ({exc.strerror})") from exc
        if actual != files[name]:
            raise AssetError(
                f"{path}: sha256 {actual[:16]}... differs from {files[name][:16]}... "
                f"recorded in {os.path.join(directory, INDEX)}: the copy is corrupt"
            )
    found = digest(files)
    if found != index["sha256"]:
        raise AssetError(f"{os.path.join(directory, INDEX)}: its digest does not match its files")
    return found


def _unescape(field_text: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash in a path as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field_text = field_text.replace(code, char)
    return field_text


def fs_type(path: str, mounts: str = "/proc/mounts") -> str | None:
    """The type of the filesystem ``path`` lives on (overlay, ext4, tmpfs, 9p...): the mount
    with the longest mount point containing it, the last such when mounts are stacked; None
    where the mount table cannot be read."""
    try:
        with open(mounts, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, kind = -1, None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape(fields[1])
        inside = point == "/" or target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:
            best, kind = len(point), fields[2]
    return kind


def describe(directory: str) -> dict[str, Any]:
    """What a worker reports of an asset it read: where, its digest as hashed on this host
    (``verify``), the filesystem and its size."""
    return {
        "path": directory,
        "sha256": verify(directory),
        "fs_type": fs_type(directory),
        "bytes": read_index(directory).get("bytes"),
    }


# --- staging on the target ---------------------------------------------------------------------


@dataclass
class StagedAssets:
    """The asset directories a worker reads (``paths``: name -> directory), after copying them
    to the RAM filesystem when the spec says so. ``close`` removes the copies."""

    location: str | None
    paths: dict[str, str] = field(default_factory=dict)
    copy_s: float | None = None  # None: nothing was copied
    root: str | None = None
    expected: dict[str, str] = field(default_factory=dict)  # name -> the controller's digest

    def report(self) -> dict[str, Any]:
        """``info.assets``: the location, and each asset as read here (hashed again now, after
        the measurement, so a corrupted copy is caught without slowing what was measured);
        ``AssetError`` when a digest is not the one the controller recorded."""
        out: dict[str, Any] = {"location": self.location, "copy_s": self.copy_s}
        for name, path in self.paths.items():
            out[name] = describe(path)
            wanted = self.expected.get(name)
            if wanted is not None and out[name]["sha256"] != wanted:
                raise AssetError(
                    f"{path}: {name} digest {out[name]['sha256'][:16]}... is not the "
                    f"{wanted[:16]}... the controller made"
                )
        return out

    def close(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> StagedAssets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stage(spec_assets: Mapping[str, Any] | None) -> StagedAssets:
    """Where to read the spec's assets: as they are, or, when ``stage_to`` is set (location
    tmpfs), copied into a fresh directory under it first, the copy timed."""
    if not spec_assets:
        return StagedAssets(None)
    names = [name for name in STAGED if spec_assets.get(name)]
    paths = {name: spec_assets[name]["path"] for name in names}
    expected = {name: spec_assets[name].get("sha256") for name in names}
    staged = StagedAssets(spec_assets.get("location"), paths, expected=expected)
    stage_to = spec_assets.get("stage_to")
    if not stage_to:
        return staged
    started = time.perf_counter()
    try:
        staged.root = tempfile.mkdtemp(prefix="bench-staged-", dir=stage_to)
        for name in names:
            staged.paths[name] = shutil.copytree(paths[name], os.path.join(staged.root, name))
    except (OSError, shutil.Error) as exc:
        staged.close()
        raise AssetError(f"cannot stage the assets into {stage_to}: {exc}") from exc
    staged.copy_s = time.perf_counter() - started
    return staged


# --- command line ------------------------------------------------------------------------------


def cli_make(params_json: str, out_dir: str) -> int:
    """``python -m workloads assets make``: print the index; exit 2 with one line on bad
    params, 1 with one line when the files cannot be written."""
    try:
        params = json.loads(params_json)
    except json.JSONDecodeError as exc:
        print(f"asset params are not JSON: {exc}", file=sys.stderr)
        return 2
    try:
        index = make(params, out_dir)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot write the asset into {out_dir}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(index, sort_keys=True))
    return 0
