"""The wheelhouse: every pinned package downloaded once, recorded with its sha256.

Installing each target from these files, with ``--no-index``, is what makes "same software" a
fact rather than a hope: the bare-metal venv, the container image and the VM disk receive the
same bytes, and the manifest lists which.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.build import cache
from bench.errors import BuildError

INDEX_FILE = "wheelhouse.json"
REQUIREMENTS_FILE = "requirements.txt"


@dataclass(frozen=True)
class Wheelhouse:
    """A complete wheelhouse directory and what it holds."""

    key: str
    path: Path
    files: dict[str, str]

    @property
    def requirements(self) -> Path:
        """The pinned requirements file stored beside the wheels."""
        return self.path / REQUIREMENTS_FILE

    def record(self) -> dict[str, Any]:
        """What the run manifest stores: where, and every file with its sha256."""
        return {"key": self.key, "path": str(self.path), "files": self.files}


def python_tag() -> str:
    """The interpreter and platform the wheels are chosen for (part of the wheelhouse key)."""
    return f"cp{sys.version_info.major}{sys.version_info.minor}-{platform.machine()}"


def key_of(requirements: str) -> str:
    """The wheelhouse's name in the cache, which every artefact built from it is keyed on: one
    wheelhouse per distinct requirement text and interpreter."""
    return cache.digest("wheelhouse-v1", requirements, python_tag())[:16]


def ensure(requirements: str, note: Callable[[str], None]) -> Wheelhouse:
    """The wheelhouse for ``requirements``, downloading it when it is not in the cache yet."""
    key = key_of(requirements)
    with cache.locked("wheelhouse") as root:
        final = root / "wheelhouse" / key
        if (final / INDEX_FILE).is_file():
            return _load(key, final)
        note(f"downloading the pinned wheels into {final}")
        staging = final.with_name(f"{key}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        with cache.unfinished(staging):
            staging.mkdir(parents=True)
            (staging / REQUIREMENTS_FILE).write_text(requirements)
            _download(staging)
            files = {p.name: cache.file_sha256(p) for p in sorted(staging.glob("*.whl"))}
            index = {"requirements": requirements, "python": python_tag(), "files": files}
            (staging / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
        return Wheelhouse(key, final, files)


def _load(key: str, path: Path) -> Wheelhouse:
    index = json.loads((path / INDEX_FILE).read_text())
    return Wheelhouse(key, path, dict(index["files"]))


def _download(directory: Path) -> None:
    """``pip download`` binary wheels only: a source build could differ between targets."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-r",
        str(directory / REQUIREMENTS_FILE),
        "-d",
        str(directory),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        first = (lines or done.stderr.strip().splitlines()[-1:] or ["pip failed"])[0]
        raise BuildError(
            f"wheelhouse: pip download failed: {first.removeprefix('ERROR: ')}",
            hint="check that the pinned versions exist for this Python and that pip can reach "
            "its index",
        )
