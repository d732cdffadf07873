"""Each asset made once, by the worker package's own code, into bench's cache.

An asset is named by a hash of its params (which hold every option that changes its bytes and
the generator's version), so the second run of a suite, and every other suite that needs the
same checkpoint or dataset, finds it made. It is made under a temporary name and renamed into
place when complete, under the cache's lock, so a failed or interrupted make leaves nothing
that could be taken for an asset, and two runs never make the same one at once.

The bytes are made by ``python -m workloads assets make`` in a subprocess: the controller never
imports torch. That interpreter is the controller's own when it has torch (and Pillow or
transformers where the suite needs them), else the matched venv ``bench build`` makes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import workerpack
from bench.assets.model import Asset, pages
from bench.build import cache
from bench.errors import BuildError
from bench.targets import envvars
from workloads.assetid import INDEX

if TYPE_CHECKING:
    from bench.build.builder import Builder

DIRECTORY = "assets"
MODULES = {"pillow": "PIL", "transformers": "transformers"}  # each package group's import name


def asset_key(params: dict[str, Any]) -> str:
    """The cache name of the asset ``params`` describe."""
    return cache.digest("asset-v1", json.dumps(params, sort_keys=True))[:20]


def directory() -> Path:
    """Where made assets live: ``<cache>/assets/<key>/``."""
    return cache.root() / DIRECTORY


def interpreter(builder: Builder, groups: Collection[str]) -> str:
    """The Python that makes assets: this one when it can import what making needs (torch,
    numpy and the package groups' modules), else the matched venv made from it."""
    wanted = ["torch", "numpy", *(MODULES[g] for g in sorted(groups) if g in MODULES)]
    if all(importlib.util.find_spec(name) is not None for name in wanted):
        return sys.executable
    return str(builder.venv(sys.executable))


def ensure(
    params: dict[str, Any], python: Callable[[], str], note: Callable[[str], None]
) -> tuple[Asset, bool]:
    """The asset ``params`` describe, made when it is not in the cache yet; (asset, made now).

    ``python`` is called only when something must be made (finding the interpreter may build
    a venv)."""
    key = asset_key(params)
    with cache.locked(DIRECTORY):
        final = directory() / key
        if (final / INDEX).is_file():
            return load(final, key), False
        partial = final.with_name(f"{key}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        note(f"making the {params.get('kind')} asset {key} ({_summary(params)})")
        with cache.unfinished(partial):
            partial.mkdir(parents=True)
            index = _make(python(), params, partial)
            if index.get("params") != params or not (partial / INDEX).is_file():
                raise BuildError(f"asset {key}: the maker wrote another asset than asked for")
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
        return load(final, key), True


def load(path: Path, key: str) -> Asset:
    """A made asset, read from its index (its digest over its files, as the maker hashed
    them: each target's worker hashes its copy against it)."""
    try:
        index = json.loads((path / INDEX).read_text())
        if not isinstance(index.get("params"), dict) or not isinstance(index.get("sha256"), str):
            raise ValueError("no params or sha256")
    except (OSError, ValueError, AttributeError) as exc:
        raise BuildError(
            f"asset {key}: unreadable index {path / INDEX}: {exc}",
            hint=f"remove {path} to make it again",
        ) from None
    return Asset(
        kind=str(index["kind"]),
        key=key,
        path=path,
        sha256=str(index["sha256"]),
        bytes=int(index["bytes"]),
        params=dict(index["params"]),
        footprint=_footprint(path),
    )


def _make(python: str, params: dict[str, Any], out: Path) -> dict[str, Any]:
    """Run the worker package's maker; the index it printed. A failure is one line with its
    last words."""
    command = [python, "-m", "workloads", "assets", "make"]
    command += ["--params-json", json.dumps(params, sort_keys=True), "--out", str(out)]
    env = envvars.inherited()
    root = str(workerpack.package_root())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise BuildError(f"asset {asset_key(params)}: cannot run {python}: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise BuildError(
            f"asset {asset_key(params)} ({_summary(params)}): make failed with status "
            f"{done.returncode}: {last}"
        )
    try:
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError, TypeError):
        raise BuildError(f"asset {asset_key(params)}: the maker printed no index") from None


def _footprint(path: Path) -> int:
    """The bytes the directory's files occupy in whole pages, index included."""
    total = 0
    for root, _, files in os.walk(path):
        total += sum(pages(os.path.getsize(os.path.join(root, name))) for name in files)
    return total


def _summary(params: dict[str, Any]) -> str:
    """A short human name: ``resnet18`` or ``jpeg x 64``."""
    if params.get("kind") == "checkpoint":
        preset = f" {params['preset']}" if params.get("preset") else ""
        return f"{params.get('model')}{preset}"
    return f"{params.get('format')} x {params.get('samples')}"
