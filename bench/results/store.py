"""Writing a run directory as cells finish.

Layout of ``<results>/<suite>/<run-id>/``::

    manifest.json   suite as run, versions, host and target fingerprints, plan, status
    samples.jsonl   one row per metric per cell (only measured values)
    cells.jsonl     one row per finished cell: status, verdict and its reasons, error, start-up,
                    absent metrics + reasons
    raw/<cell>.json per-iteration arrays (step times, latencies, batch times), the GPU timeline,
                    the host-side memory timeline and when each start-up phase ended
    raw/<cell>/     text files the worker kept (an inference cell's MLPerf LoadGen summary and
                    detail logs, under loadgen/)

Every file is replaced atomically (write to a temporary file, then rename) after each cell, so
a run killed at any moment leaves every finished cell readable and never a half-written file.

A write that fails (disk full, quota, I/O error) is a ``ResultsWriteError``: the cell being
written is dropped (cells.jsonl, written last, is what commits a cell, and it still holds the
previous cells) and the run stops. So that the final manifest can still say why, a run keeps
``manifest.reserve`` beside it, space set aside (twice the manifest's size, at least 64 KiB) and
given back just before the final manifest is written; if even that write fails, the manifest
is overwritten in place, compact, within the bytes it already occupies.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.errors import ResultsError, ResultsWriteError
from bench.results.model import MANIFEST, SCHEMA_VERSION, analysis_of
from bench.results.records import CellRecord, Sample

RESERVE_FILE = "manifest.reserve"
RESERVE_MIN_BYTES = 64 << 10
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a mix."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)


class ResultStore:
    """Writes one run directory incrementally as cells finish."""

    def __init__(self, root: str | Path, suite: str, run_id: str) -> None:
        self.path = Path(root) / suite / run_id
        self.run_id = run_id
        self.samples: list[Sample] = []
        self.cells: list[CellRecord] = []
        self.manifest: dict[str, Any] = {}

    def create(self, manifest: dict[str, Any]) -> None:
        """Make the run directory; refuses to touch an existing run."""
        if self.path.exists():
            raise ResultsError(
                f"{self.path}: a run with this id already exists",
                hint="choose another --run-id; existing results are never overwritten",
            )
        try:
            (self.path / "raw").mkdir(parents=True)
        except OSError as exc:
            raise ResultsError(f"{self.path}: cannot create results directory: {exc}") from None
        try:
            analysis = analysis_of(manifest.get("suite", {}))
            self.write_manifest(
                {"schema": SCHEMA_VERSION, "run_id": self.run_id, **manifest, "analysis": analysis}
            )
        except ResultsWriteError:
            shutil.rmtree(self.path, ignore_errors=True)  # nothing ran: leave no empty run
            raise

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace the manifest, and keep enough space in reserve to write it once more."""
        self.manifest = manifest
        text = json.dumps(manifest, indent=2, default=str)
        file = self.path / MANIFEST
        try:
            write_atomic(file, text)
            _reserve(self.path / RESERVE_FILE, max(RESERVE_MIN_BYTES, 2 * len(text)))
        except OSError as exc:
            raise self._write_error(f"cannot write {file}", exc) from None

    def update_manifest(self, **fields: Any) -> None:
        """Merge ``fields`` into the manifest."""
        self.write_manifest({**self.manifest, **fields})

    def finish(self, **fields: Any) -> None:
        """Write the final manifest (status, and why when the run failed) and give the reserve
        back. This is the write that must succeed when the disk is full: the reserve is freed
        first so the atomic write has room, and failing that the file is overwritten in place
        with a compact copy that fits in the bytes it already holds."""
        self.manifest = {**self.manifest, **fields}
        file = self.path / MANIFEST
        (self.path / RESERVE_FILE).unlink(missing_ok=True)
        try:
            write_atomic(file, json.dumps(self.manifest, indent=2, default=str))
        except OSError as exc:
            if not _overwrite_in_place(file, self.manifest):
                raise self._write_error(f"cannot write {file}", exc) from None

    def add_cell(
        self,
        record: CellRecord,
        samples: list[Sample],
        raw: dict[str, Any],
        files: dict[str, str] | None = None,
    ) -> None:
        """Persist one finished cell: raw arrays and files, samples, then the record that
        commits them.

        If a write fails, the cell is not committed (cells.jsonl still lists the earlier cells
        only; samples without a committed cell are not results) and its raw data is removed.
        """
        raw_file = self.path / "raw" / f"{record.slug}.json"
        files_dir = self.path / "raw" / record.slug
        try:
            write_atomic(raw_file, json.dumps(raw))
            _write_files(files_dir, files or {})
            all_samples = [asdict(s) for s in [*self.samples, *samples]]
            write_atomic(self.path / "samples.jsonl", _jsonl(all_samples))
            write_atomic(
                self.path / "cells.jsonl",
                _jsonl([asdict(c) for c in self.cells] + [asdict(record)]),
            )
        except OSError as exc:
            raw_file.unlink(missing_ok=True)
            shutil.rmtree(files_dir, ignore_errors=True)
            what = (
                f"cannot record cell {record.cell} ({record.workload} on {record.target}, "
                f"repetition {record.repetition})"
            )
            raise self._write_error(what, exc) from None
        self.samples += samples
        self.cells.append(record)

    def _write_error(self, what: str, exc: OSError) -> ResultsWriteError:
        """One line: what could not be written, the system's reason, and what is kept."""
        name = errno.errorcode.get(exc.errno or 0, "")
        reason = f"{exc.strerror} ({name})" if exc.strerror and name else str(exc)
        where = f": {exc.filename}" if exc.filename and str(exc.filename) not in what else ""
        kept = f"{len(self.cells)} finished cell{'s are' if len(self.cells) != 1 else ' is'}"
        return ResultsWriteError(
            f"{what}{where}: {reason}; the run stopped, {kept} kept in {self.path}",
            hint="free space on the results filesystem or pass another --results-dir",
        )


FILE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_FILE_DEPTH = 2


def _write_files(directory: Path, files: Any) -> None:
    """Write a cell's kept files under ``directory``. Their names come from the worker, so
    only short relative paths of plain names are taken (no ``..``, no hidden files): a name
    that could leave the run directory is skipped."""
    if not isinstance(files, dict):
        return
    for name, text in sorted(files.items(), key=lambda item: str(item[0])):
        parts = name.split("/") if isinstance(name, str) else []
        if not 0 < len(parts) <= MAX_FILE_DEPTH or not all(map(FILE_PART.fullmatch, parts)):
            continue
        path = directory.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, str(text))


def _reserve(path: Path, size: int) -> None:
    """Grow the reserve file to ``size`` bytes of allocated blocks (never shrinks it). Only a
    lack of space is an error: a filesystem that cannot allocate ahead just has no reserve."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        if os.fstat(fd).st_size < size:
            os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise
    finally:
        os.close(fd)


def _overwrite_in_place(file: Path, manifest: dict[str, Any]) -> bool:
    """Rewrite ``file`` with compact JSON padded with spaces to its current length, so no new
    block is needed (on filesystems that overwrite in place); False when it cannot."""
    text = json.dumps(manifest, separators=(",", ":"), default=str).encode()
    try:
        size = file.stat().st_size
        if len(text) > size:
            return False
        with file.open("r+b") as handle:
            handle.write(text + b" " * (size - len(text)))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        return False
    return True
