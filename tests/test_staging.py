"""Assets on the controller: made once into the cache by the worker package's own maker,
named by their params, recorded in the manifest; locations a target cannot offer refused when
the suite is validated; a guest's assets disk as QEMU and ext4 see it."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.assets import make, volume
from bench.assets.model import AssetSet, key_of
from bench.assets.staging import Staging, wanted
from bench.build.builder import Builder
from bench.errors import BuildError, SuiteError
from bench.plan import build_plan
from bench.suite import parse_suite
from bench.targets.qemu import Machine, free_port
from bench.targets.registry import make_target
from tests.conftest import bench_cli
from tests.test_qemu_args import QEMU, devices_set_up

SUITE = """\
name: assets
seed: 7
targets:
  - {name: bare, kind: local}
workloads:
  - {name: train, kind: train_step, model: mlp, batch_size: 4, steps: 2, location: image}
  - {name: load, kind: data_loading, batch_size: 4, num_workers: 0, location: tmpfs,
     dataset: {format: raw, samples: 16, sample_bytes: 512}}
  - {name: plain, kind: inference, model: mlp}
"""
STATIC_VM = "{name: svm, kind: vm, provisioner: static, host: example.org}"
REMOTE_ENGINE = "{name: far, kind: docker, image: x, docker_host: 'tcp://192.0.2.1:2376'}"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Iterator[Path]:
    """A cache of its own, so that "made once" starts from nothing."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENCH_CACHE_DIR", str(root))
        yield root


def _staging(text: str = SUITE) -> tuple[Staging, list[str]]:
    suite = parse_suite(text)
    notes: list[str] = []
    targets = {t.name: make_target(t) for t in suite.targets}
    return Staging(suite, targets, build_plan(suite), note=notes.append), notes


@pytest.fixture(scope="module")
def first(cache) -> tuple[Staging, list[str], dict]:
    staging, notes = _staging()
    return staging, notes, staging.prepare(Builder(parse_suite(SUITE).build), set(), "r1")


def test_each_asset_is_made_once_and_recorded(cache, first) -> None:
    _, notes, record = first
    assert set(record) == {"train", "load"}  # "plain" has no location: nothing staged
    assert sum("making" in note for note in notes) == 2
    for workload, kind in (("train", "checkpoint"), ("load", "dataset")):
        entry = record[workload][kind]
        index = json.loads((cache / "assets" / entry["key"] / "asset.json").read_text())
        assert entry["sha256"] == index["sha256"] and entry["bytes"] == index["bytes"] > 0
        assert entry["params"]["seed"] == 7  # the suite's seed, whatever the repetition
    made = {p: p.stat().st_mtime_ns for p in (cache / "assets").glob("*/asset.json")}
    assert len(made) == 2 and not list((cache / "assets").glob("*.partial"))

    again, notes_again = _staging()
    assert again.prepare(Builder(parse_suite(SUITE).build), set(), "r2") == record
    assert not any("making" in note for note in notes_again)
    assert {p: p.stat().st_mtime_ns for p in made} == made  # found, not made again


def test_cells_get_the_cached_directories(cache, first) -> None:
    staging, _, record = first
    base = {"workload": {}, "seed": 9}
    train = staging.spec(base, "bare", "train")["assets"]
    entry = record["train"]["checkpoint"]
    key = entry["key"]
    assert train == {
        "location": "image",
        "stage_to": None,  # local: read in place; a tmpfs cell gets its /dev/shm dir per cell
        "checkpoint": {"path": str(cache / "assets" / key), "sha256": entry["sha256"]},
    }
    assert key_of(train) == staging.sets["train"].key
    assert staging.spec(base, "bare", "plain") == base


def test_a_failed_make_is_one_line_and_leaves_nothing(cache) -> None:
    suite = parse_suite(SUITE)
    _, params = wanted(suite.workload("load"), 0)
    bad = {**params["dataset"], "samples": 0}
    with pytest.raises(BuildError) as caught:
        make.ensure(bad, lambda: make.interpreter(Builder(suite.build), ()), lambda m: None)
    line = caught.value.one_line()
    assert "make failed with status 2" in line and "samples" in line and "\n" not in line
    assert not (cache / "assets" / make.asset_key(bad)).exists()
    assert not list((cache / "assets").glob("*.partial"))


@pytest.mark.parametrize(
    ("target", "location", "words"),
    [
        (STATIC_VM, "volume", "a static VM has none"),
        (REMOTE_ENGINE, "volume", "remote Docker engine at tcp://192.0.2.1:2376"),
        (REMOTE_ENGINE, "tmpfs", "remote Docker engine"),
    ],
)
def test_locations_a_target_cannot_offer_are_refused(target, location, words) -> None:
    text = f"""\
name: refused
targets:
  - {target}
workloads:
  - {{name: w1, kind: inference, model: mlp, location: {location}}}
"""
    with pytest.raises(SuiteError) as caught:
        parse_suite(text)
    line = caught.value.one_line()
    assert "workloads[0].location" in line and words in line
    assert "target 'svm'" in line or "target 'far'" in line
    assert "workload 'w1'" in line and "hint: use location: image" in line


def test_offered_locations_pass(write_suite) -> None:
    path = write_suite(
        f"""\
        name: offered
        targets:
          - {STATIC_VM}
          - {REMOTE_ENGINE}
        workloads:
          - {{name: w1, kind: inference, model: mlp, location: image}}
          - {{name: w2, kind: inference, model: mlp, location: tmpfs}}
        """
    )
    refused = bench_cli("validate", str(path))  # tmpfs on the remote engine: exit 2, one line
    assert refused.returncode == 2 and "target 'far', workload 'w2'" in refused.stderr
    assert "svm" not in refused.stderr  # a static VM offers tmpfs (its /dev/shm)
    path.write_text(path.read_text().replace("location: tmpfs", "location: image"))
    done = bench_cli("validate", str(path))
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def dataset_set(first) -> AssetSet:
    staging, _, _ = first
    return AssetSet("volume", staging.sets["load"].assets)


def test_a_volume_is_an_ext4_image_of_the_assets_made_once(dataset_set, tmp_path) -> None:
    if shutil.which("debugfs") is None:
        pytest.skip("e2fsprogs missing")
    image = volume.ensure(dataset_set, "test")
    stamp = image.stat().st_mtime_ns
    assert volume.ensure(dataset_set, "test") == image and image.stat().st_mtime_ns == stamp
    asset = dataset_set.assets[0]
    out = tmp_path / "index.json"
    command = f"dump /{asset.key}/asset.json {out}"
    subprocess.run(["debugfs", "-R", command, str(image)], capture_output=True, check=True)
    assert json.loads(out.read_text())["sha256"] == asset.sha256


@pytest.mark.skipif(shutil.which(QEMU) is None, reason="QEMU missing")
def test_the_assets_disk_is_a_read_only_third_drive(dataset_set, tmp_path) -> None:
    image = volume.ensure(dataset_set, "test")
    package = tmp_path / "pkg.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(package), "1M"], check=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "overlay.qcow2"), "1M"],
        check=True,
    )
    nowhere = tmp_path / "absent"
    plain = Machine(QEMU, "tcg", "max", 1, 64, "writeback", nowhere, nowhere, nowhere, package)
    assert sum(word == "-drive" for word in plain.command(tmp_path, free_port(), "n")) == 2
    argv = Machine(
        QEMU, "tcg", "max", 1, 64, "none", nowhere, nowhere, nowhere, package, asset_disk=image
    ).command(tmp_path, free_port(), "bench-r1-t")
    drives = [argv[i + 1] for i, word in enumerate(argv) if word == "-drive"]
    assert drives[2] == f"file={image},format=raw,if=virtio,readonly=on,cache=none"
    with devices_set_up(argv, tmp_path) as done:
        assert done.returncode == 0, done.stderr  # QEMU opened the image read-only
