"""A ``kind: python`` workload's directory as an asset: the user's code, shipped like a
checkpoint at ``location: image``.

At the start of each run the directory is listed and hashed, and copied into bench's cache
under its content's digest (``<cache>/assets/code-<digest>/``, the files under ``src/`` beside
the index), unless a copy with that digest is there already. From there every target gets the
very same bytes the way it gets any asset: the cached directory itself (local), a layer of a
derived image (docker), a copy over SFTP into the run's directory once per run (ssh, static
VM) or onto each fresh guest's disk (QEMU). The worker hashes what it imported from after the
run, so a copy that differs is an error, not a silent variant.

What is shipped: every file under the directory except ``__pycache__`` and compiled files,
and names beginning with a dot (``.git``, ``.venv``, editor and tool caches); symbolic links to
files are followed, links to directories are not.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from bench.assets import make
from bench.assets.model import Asset
from bench.build import cache
from bench.errors import BuildError
from workloads.assetid import CODE_DIR, INDEX, digest, file_sha256

LOCATION = "image"
MAX_BYTES = 256 << 20
MAX_FILES = 10_000
SKIPPED = ("__pycache__",)
COMPILED = (".pyc", ".pyo")


class TooLarge(ValueError):
    """The directory holds more than a code directory should (data belongs in a dataset)."""


def _shipped(name: str) -> bool:
    return not name.startswith(".") and name not in SKIPPED and not name.endswith(COMPILED)


def listing(directory: Path) -> list[str]:
    """The files that are shipped, as sorted POSIX paths relative to ``directory``;
    ``TooLarge`` beyond ``MAX_FILES`` files or ``MAX_BYTES`` bytes."""
    found: list[str] = []
    total = 0
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if _shipped(d) and not os.path.islink(Path(root, d)))
        for name in sorted(n for n in files if _shipped(n)):
            path = Path(root, name)
            if not path.is_file():  # a dangling link, a socket
                continue
            found.append(path.relative_to(directory).as_posix())
            total += path.stat().st_size
        if len(found) > MAX_FILES or total > MAX_BYTES:
            raise TooLarge(
                f"{directory} holds more than {MAX_FILES} files or {MAX_BYTES >> 20} MiB to "
                "ship to every target; keep data out of the code directory (or name it with "
                "a leading dot to leave it out)"
            )
    return sorted(found)


def ensure(directory: Path, note: Callable[[str], None]) -> Asset:
    """The cached copy of ``directory``'s shipped files, made when no copy of this content
    exists yet."""
    directory = directory.resolve()
    try:
        names = listing(directory)
        files = {f"{CODE_DIR}/{n}": file_sha256(str(directory / n)) for n in names}
    except (OSError, TooLarge) as exc:
        raise BuildError(f"code directory {directory}: {exc}") from None
    key = f"code-{digest(files)[:20]}"
    with cache.locked(make.DIRECTORY):
        final = make.directory() / key
        if not (final / INDEX).is_file():
            note(f"copying the code of {directory} into the cache ({len(files)} files)")
            _copy(directory, files, final)
        return make.load(final, key)


def _copy(directory: Path, files: dict[str, str], final: Path) -> None:
    """Copy the files under ``final/src`` (modes kept), check each copy against the hash
    taken before, and write the index last, under a temporary name until complete."""
    partial = final.with_name(f"{final.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    with cache.unfinished(partial):
        for name, sha in files.items():
            source, copy = directory / name.removeprefix(f"{CODE_DIR}/"), partial / name
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
            shutil.copymode(source, copy)
            if file_sha256(str(copy)) != sha:
                raise BuildError(f"code directory {directory}: {source} changed while copied")
        index = {
            "kind": "code",
            "params": {"kind": "code", "files": len(files)},
            "files": files,
            "bytes": sum((partial / name).stat().st_size for name in files),
            "sha256": digest(files),
        }
        partial.mkdir(parents=True, exist_ok=True)
        (partial / INDEX).write_text(json.dumps(index, indent=1, sort_keys=True))
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
