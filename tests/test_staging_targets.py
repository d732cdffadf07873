"""Assets staged on real targets: bare metal, a container on the real engine, a host over a
real OpenSSH server, and a QEMU guest's second disk. Every target reads the bytes the manifest
records; the filesystem under them is the one the location names; a failing cell and the end
of the run leave nothing behind (no container, remote directory or /dev/shm directory)."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest

from bench.assets.staging import Staging
from bench.build.builder import Builder
from bench.plan import build_plan
from bench.results import load_cells, load_manifest
from bench.suite import parse_suite
from tests.conftest import bench_cli
from tests.docker_engine import ensure_engine, labelled
from tests.test_run_e2e import run_dir_of
from tests.test_vm import VM, _prepared, guest_built, guest_dirs, qemu_pids  # noqa: F401
from workloads.assets import fs_type

pytestmark = pytest.mark.slow

RAW = "dataset: {format: raw, samples: 16, sample_bytes: 4096}, batch_size: 4, num_workers: 0"
WORKLOADS = f"""\
workloads:
  - {{name: img, kind: train_step, model: mlp, batch_size: 4, steps: 2, location: image}}
  - {{name: vol, kind: data_loading, {RAW}, location: volume}}
  - {{name: ram, kind: data_loading, {RAW}, location: tmpfs}}
  - {{name: bad, kind: data_loading, {RAW}, location: tmpfs, timeout_s: 0.01}}
"""
BARE = "{name: bare, kind: local}"
CONTAINER = "{name: ctr, kind: docker, build: true}"


@pytest.fixture(scope="module")
def staged_run(server, tmp_path_factory):
    """One run of the four workloads on bare metal, a container and an SSH host."""
    client = ensure_engine()
    tmp = tmp_path_factory.mktemp("staged")
    remote = tmp / "remote"
    remote.mkdir()
    ssh = server.target_yaml(python=sys.executable, workdir=str(remote))
    targets = "".join(f"  - {t}\n" for t in (BARE, CONTAINER, ssh))
    head = "name: staged\nrepetitions: 1\nmin_iterations: 1\ntargets:\n"
    suite = tmp / "suite.yaml"
    suite.write_text(head + targets + WORKLOADS)
    done = bench_cli("run", str(suite), "--results-dir", str(tmp / "r"), timeout=1200)
    run_dir = run_dir_of(done)
    return done, run_dir, remote, client


def test_every_target_reads_the_recorded_bytes(staged_run) -> None:
    done, run_dir, _, _ = staged_run
    cells = load_cells(run_dir)
    assert done.returncode != 0  # the "bad" cells fail (timeout), the others must not
    assert set(cells[cells.status != "ok"].workload) == {"bad"}, done.stderr
    assert all("timed out" in e or "timeout" in e for e in cells[cells.workload == "bad"].error)
    recorded = load_manifest(run_dir)["assets"]
    for cell in cells[cells.status == "ok"].itertuples():
        seen = cell.info["assets"]
        assert seen["location"] == recorded[cell.workload]["location"]
        for kind in ("checkpoint", "dataset"):
            if kind in recorded[cell.workload]:
                assert seen[kind]["sha256"] == recorded[cell.workload][kind]["sha256"], cell.slug


def _fs(cells, target: str, workload: str, kind: str = "dataset") -> dict:
    row = cells[(cells.target == target) & (cells.workload == workload)].iloc[0]
    return row["info"]["assets"][kind]


def test_the_location_decides_the_filesystem(staged_run) -> None:
    _, run_dir, remote, _ = staged_run
    cells = load_cells(run_dir)
    recorded = load_manifest(run_dir)["assets"]
    cache = Path(recorded["vol"]["targets"]["bare"]["paths"]["dataset"])
    assert _fs(cells, "ctr", "img", "checkpoint")["fs_type"] == "overlay"  # an image layer
    assert _fs(cells, "ctr", "vol")["fs_type"] == fs_type(str(cache))  # the host's own
    assert _fs(cells, "ctr", "ram")["fs_type"] == "tmpfs"
    if fs_type(str(cache)) != "overlay":
        assert (
            _fs(cells, "ctr", "vol")["fs_type"] != _fs(cells, "ctr", "img", "checkpoint")["fs_type"]
        )
    assert _fs(cells, "bare", "vol")["path"] == str(cache)  # bare metal reads the cache
    assert _fs(cells, "bare", "ram")["fs_type"] == "tmpfs"
    assert _fs(cells, "bare", "ram")["path"].startswith("/dev/shm/bench-")
    assert _fs(cells, "remote", "img", "checkpoint")["path"].startswith(f"{remote}/bench-")
    assert _fs(cells, "remote", "ram")["path"].startswith("/dev/shm/bench-")
    assert _fs(cells, "remote", "ram")["fs_type"] == "tmpfs"
    image = recorded["img"]["targets"]["ctr"]
    assert image["image"].startswith("bench-assets:")


def test_nothing_is_left_behind(staged_run) -> None:
    _, run_dir, remote, client = staged_run
    run_id = run_dir.name
    assert labelled(client, run_id) == []
    assert list(remote.iterdir()) == []  # the run directory, with its asset copies
    assert list(Path("/dev/shm").glob(f"bench-{run_id}*")) == []  # local and remote RAM dirs
    image = load_manifest(run_dir)["assets"]["img"]["targets"]["ctr"]["image"]
    assert client.images.get(image).labels.get("bench.artefact") == "assets"  # cache, kept


def test_a_guest_reads_the_volume_from_its_second_disk(guest_built) -> None:  # noqa: F811
    suite = parse_suite(f"name: g\nmin_iterations: 1\ntargets:\n  - {VM}\n{WORKLOADS}")
    target = _prepared(VM)
    staging = Staging(suite, {"vm": target}, build_plan(suite))
    recorded = staging.prepare(Builder(suite.build), set(), "g")
    disk = recorded["vol"]["targets"]["vm"]["disk"]
    options = suite.workload("vol").model_dump(mode="json", exclude={"timeout_s"})
    spec = staging.spec({"workload": options, "seed": 0}, "vm", "vol")
    run_id = f"g{uuid.uuid4().hex[:8]}"
    result: dict = {}
    with target.deploy(spec, run_id) as deployment:
        assert deployment.vm.machine.asset_disk == Path(disk)
        for event in deployment.events(time.monotonic() + 600):
            result = event if event.get("event") == "result" else result
    seen = result["info"]["assets"]["dataset"]
    assert seen["sha256"] == recorded["vol"]["dataset"]["sha256"]
    assert seen["path"].startswith("/mnt/bench-assets/") and seen["fs_type"] == "ext4"
    assert not qemu_pids(run_id) and not guest_dirs(run_id)
