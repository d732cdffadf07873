"""Fault: the local results filesystem fills up in the middle of a run.

The results go to a small tmpfs mounted by the test (tests run as root). Once the first cell
is committed, a filler file takes every free byte, so the next write of results really fails
with ENOSPC. bench must stop cleanly: exit status 1 and one error line, every committed cell
still loadable, the manifest marked failed with the reason, the targets cleaned up.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.results import CellRecord, ResultStore, Sample, load, load_cells, load_manifest, load_raw
from tests.conftest import REPO
from tests.test_run_e2e import _worker_pids

pytestmark = pytest.mark.fault
CHUNK = 64 << 10
RESERVE_FILE = "manifest.reserve"  # space a run holds back for its final manifest


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted (lazily, if something still holds it) at the end."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path) -> Path:
    """Take every free byte of ``mount`` (page by page at the end): the next write fails."""
    filler = mount / "filler"
    with filler.open("ab", buffering=0) as handle:
        for size in (CHUNK, 4096, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


# What a run's manifest holds before its cells (the real ones also carry fingerprints).
MANIFEST = {
    "status": "running",
    "created_at": "2025-01-01T00:00:00+00:00",
    "suite": {
        "name": "suite",
        "repetitions": 8,
        "targets": [{"name": "bare", "kind": "local", "baseline": False}],
        "workloads": [{"name": "w", "kind": "train_step", "batch_size": 8, "steps": 4}],
    },
    "plan": [{"index": i, "target": "bare", "workload": "w", "repetition": i} for i in range(8)],
}


def record(cell: int) -> CellRecord:
    return CellRecord(cell, "bare", "local", "w", "train_step", cell, "ok", "t0", "t1", 1.0)


def sample(cell: int) -> Sample:
    return Sample("r1", "bare", "local", "w", "train_step", cell, "m", float(cell), "s", cell)


def test_a_write_that_fails_keeps_the_committed_cells_and_the_manifest_says_why(
    small_fs: Path,
) -> None:
    from bench.errors import ResultsWriteError

    store = ResultStore(small_fs, "suite", "r1")
    store.create(MANIFEST)
    store.add_cell(record(0), [sample(0)], {"steps": [1.0]})
    fill(small_fs)
    with pytest.raises(ResultsWriteError) as failed:
        store.add_cell(record(1), [sample(1)], {"steps": [2.0] * 10_000})
    message = failed.value.one_line()
    assert "cell 1" in message and "No space left on device (ENOSPC)" in message, message
    assert "1 finished cell is kept" in message
    assert load(store.path)["cell"].tolist() == [0]  # the half-recorded cell is not a result
    assert list(load_raw(store.path)) == ["0000-bare-w-r0"]
    # Even with the reserve gone (someone else took the space it freed), the final manifest
    # is written: in place, compact, inside the bytes the manifest already has.
    (store.path / RESERVE_FILE).unlink()
    fill(small_fs)
    store.finish(status="failed", error=message)
    manifest = load_manifest(store.path)
    assert manifest["status"] == "failed" and manifest["error"] == message
    assert manifest["suite"] == MANIFEST["suite"] and manifest["plan"] == MANIFEST["plan"]


SUITE = """\
name: full
repetitions: 8
targets: [{name: bare, kind: local}]
workloads:
  - {name: load, kind: data_loading, samples: 64, sample_bytes: 1024, batch_size: 16,
     num_workers: 0, warmup_batches: 1}
"""


@pytest.mark.slow
def test_results_disk_full_stops_the_run_cleanly(small_fs: Path, tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    run_id = f"full{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "bench.cli", "run", str(suite)]
    command += ["--results-dir", str(small_fs), "--run-id", run_id]
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run_dir = small_fs / "full" / run_id
    try:
        committed = wait_for_cells(run_dir / "cells.jsonl", proc)
        fill(small_fs)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], stderr
    cells = load_cells(run_dir)
    assert committed <= len(cells) < 8 and (cells["status"] == "ok").all()
    assert set(load(run_dir)["cell"]) == set(cells["cell"])
    manifest = load_manifest(run_dir)
    assert manifest["status"] == "failed", manifest["status"]
    assert "No space left on device" in manifest["error"]
    assert manifest["error"] in errors[0]
    assert not (run_dir / RESERVE_FILE).exists()
    assert not _worker_pids(run_id)
    assert not list(Path(tempfile.gettempdir()).glob(f"bench-{run_id}-*"))


def wait_for_cells(path: Path, proc: subprocess.Popen[str], timeout: float = 300) -> int:
    """Wait until ``path`` lists at least one committed cell; how many it lists then."""
    end = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if lines:
            assert all(json.loads(line) for line in lines)
            return len(lines)
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "no cell was committed in time"
        time.sleep(0.02)
