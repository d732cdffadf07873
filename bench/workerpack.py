"""The ``workloads`` package as one archive, named by a hash of its content.

Remote targets receive the worker as a single upload; naming the archive by its content lets a
target skip the upload when the same package is already there, and makes it certain that every
target of a run executes byte-identical worker code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bench.errors import TargetError


@dataclass(frozen=True)
class Package:
    """A gzipped tar of ``workloads/`` and the hash that names it."""

    digest: str
    archive: bytes

    @property
    def name(self) -> str:
        """Short, path-safe name used for the unpacked directory."""
        return f"workloads-{self.digest[:16]}"


def package_root() -> Path:
    """The directory that contains the ``workloads`` package (goes on the worker's path)."""
    spec = importlib.util.find_spec("workloads")
    if spec is None or not spec.submodule_search_locations:
        raise TargetError("the workloads package is not installed beside bench")
    return Path(next(iter(spec.submodule_search_locations))).parent


def _files(root: Path) -> list[Path]:
    """Source files of the package in a stable order (no caches, no bytecode)."""
    base = root / "workloads"
    return sorted(p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


@lru_cache(maxsize=1)
def build() -> Package:
    """Archive the installed ``workloads`` package (deterministic: fixed mtimes and owners)."""
    root = package_root()
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for path in _files(root):
            data = path.read_bytes()
            relative = path.relative_to(root).as_posix()
            digest.update(relative.encode() + b"\0" + data + b"\0")
            info = tarfile.TarInfo(relative)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return Package(digest.hexdigest(), buffer.getvalue())
