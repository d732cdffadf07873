"""Assets (made, verified, staged) and the datasets and loaders that read them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from workloads import assets, datasets, run_workload
from workloads.spec import SpecError

REPO = Path(__file__).resolve().parent.parent
G = assets.GENERATOR
PARAMS: dict[str, dict[str, Any]] = {
    "jpeg": {"format": "jpeg", "samples": 12, "image_size": 40},
    "tar": {"format": "tar", "samples": 12, "image_size": 40, "shard_samples": 5},
    "raw": {"format": "raw", "samples": 6, "sample_bytes": 300},
    "tokens": {"format": "tokens", "samples": 6, "seq_len": 8, "vocab": 50},
    "checkpoint": {"model": "cnn", "preset": None, "sizing": {}},
}


def params(kind: str, seed: int = 0) -> dict[str, Any]:
    asset = "checkpoint" if kind == "checkpoint" else "dataset"
    return {"kind": asset, "generator": G, **PARAMS[kind], "seed": seed}


def made(tmp_path: Path, kind: str, name: str = "a") -> Path:
    assets.make(params(kind), str(tmp_path / name))
    return tmp_path / name


def opened(path: Path, kind: str, **options: Any) -> Any:
    options = {"output_size": None, "train": False, **options}
    return datasets.open_dataset(str(path), params(kind), **options)


# --- assets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PARAMS))
def test_same_params_make_the_same_bytes(tmp_path: Path, kind: str) -> None:
    first = assets.make(params(kind, 3), str(tmp_path / "a"))
    again = assets.make(params(kind, 3), str(tmp_path / "b"))
    other = assets.make(params(kind, 4), str(tmp_path / "c"))
    assert first == again and first["sha256"] != other["sha256"]
    for name in first["files"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert first["bytes"] == sum((tmp_path / "a" / n).stat().st_size for n in first["files"])
    assert assets.read_index(str(tmp_path / "b")) == again
    assert assets.verify(str(tmp_path / "b")) == again["sha256"] == assets.digest(again["files"])


def test_params_keep_only_what_changes_the_bytes() -> None:
    workload = {"kind": "train_step", "model": "resnet18", "preset": None, "image_size": 64}
    workload.update({"location": "volume", "layers": None, "dataset": {"format": "tar"}})
    ckpt = assets.checkpoint_params(workload, 5)
    assert ckpt == {**params("checkpoint", 5), "model": "resnet18"}
    assert assets.checkpoint_params({**workload, "image_size": 128}, 5) == ckpt
    assert assets.checkpoint_params({**workload, "layers": 2}, 5)["sizing"] == {"layers": 2}
    data = assets.dataset_params({**workload, "dataset": {"format": "tar", "vocab": 9}}, 5)
    expected = {"format": "tar", "samples": 256, "image_size": 64, "shard_samples": 64}
    assert data == {"kind": "dataset", "generator": G, **expected, "seed": 5}
    assert assets.checkpoint_params({**workload, "location": None}, 5) is None
    assert assets.dataset_params({**workload, "dataset": None}, 5) is None
    with pytest.raises(SpecError, match=r"unknown keys \['colour'\]"):
        assets.check_params({**params("raw"), "colour": 1})


def test_cli_prints_the_index_and_refuses_bad_params(tmp_path: Path) -> None:
    def cli(given: str, out: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "workloads", "assets", "make"]
        command += ["--params-json", given, "--out", str(out)]
        return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=60)

    done = cli(json.dumps(params("raw")), tmp_path / "cli")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == assets.make(params("raw"), str(tmp_path / "api"))
    bad = cli(json.dumps({**params("raw"), "samples": 0}), tmp_path / "bad")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == "asset params: samples must be an integer >= 1"
    assert cli("{", tmp_path / "bad").returncode == 2


def test_verify_names_a_changed_or_missing_file(tmp_path: Path) -> None:
    path = made(tmp_path, "jpeg")
    image = path / "images" / "000003.jpg"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 1
    image.write_bytes(bytes(data))
    with pytest.raises(assets.AssetError, match=f"^{image}: sha256 .* the copy is corrupt$"):
        assets.verify(str(path))
    image.unlink()
    with pytest.raises(assets.AssetError, match=f"^{image}: cannot read"):
        assets.verify(str(path))
    (path / "asset.json").write_text('{"files": {"../x": "0"}}')
    with pytest.raises(assets.AssetError, match="not an asset index"):
        assets.verify(str(path))


def test_stage_copies_into_a_fresh_directory_and_close_removes_it(tmp_path: Path) -> None:
    source = made(tmp_path, "raw")
    index = assets.read_index(str(source))
    spec = {"dataset": {"path": str(source), "sha256": index["sha256"]}, "location": "tmpfs"}
    as_is = assets.stage({**spec, "stage_to": None})
    assert as_is.paths == {"dataset": str(source)} and as_is.copy_s is None
    ram = tmp_path / "ram"
    ram.mkdir()
    with assets.stage({**spec, "stage_to": str(ram)}) as staged:
        copy = Path(staged.paths["dataset"])
        assert copy.parent.parent == ram and staged.copy_s is not None
        report = staged.report()
        assert report["dataset"]["sha256"] == index["sha256"]
        assert report["dataset"]["path"] == str(copy) and report["location"] == "tmpfs"
        (copy / "sample-000001.bin").write_bytes(b"x" * 300)
        with pytest.raises(assets.AssetError, match=r"sample-000001\.bin"):
            staged.report()
    assert list(ram.iterdir()) == [] and source.exists()
    wrong = {**spec["dataset"], "sha256": "0" * 64}
    with pytest.raises(assets.AssetError, match="is not the 0000"):
        assets.stage({**spec, "dataset": wrong, "stage_to": None}).report()


def test_fs_type_takes_the_longest_mount_point(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "overlay / overlay rw 0 0\nsrv /data ext4 ro 0 0\nshm /data/my\\040shm tmpfs rw 0 0\n"
    )
    assert assets.fs_type("/data/my shm/x", str(mounts)) == "tmpfs"
    assert assets.fs_type("/data/my", str(mounts)) == "ext4"
    assert assets.fs_type("/database", str(mounts)) == "overlay"
    assert assets.fs_type("/proc/self") == "proc"
    assert assets.fs_type("/x", str(tmp_path / "absent")) is None


# --- datasets and loaders -------------------------------------------------------------------


def test_image_datasets_decode_to_normalised_tensors(tmp_path: Path) -> None:
    jpeg = opened(made(tmp_path, "jpeg", "j"), "jpeg")
    tar = opened(made(tmp_path, "tar", "t"), "tar")
    assert len(jpeg) == len(tar) == 12
    image, label = jpeg[7]
    assert image.shape == (3, 40, 40) and image.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label < 10 and -2.2 < image.mean() < 2.7
    assert torch.equal(tar[7][0], image) and tar[7][1] == label  # the same samples
    assert tar.nbytes(7) == jpeg.nbytes(7) == os.path.getsize(tmp_path / "j/images/000007.jpg")
    cropped, _ = opened(tmp_path / "t", "tar", output_size=24, train=True)[3]
    assert cropped.shape == (3, 24, 24)
    assert datasets.for_model(jpeg, "vision") is jpeg
    with pytest.raises(ValueError, match="cannot feed a language model"):
        datasets.for_model(jpeg, "language")


def test_raw_and_token_datasets(tmp_path: Path) -> None:
    raw = opened(made(tmp_path, "raw", "r"), "raw")
    assert (
        raw[2].dtype == torch.uint8
        and bytes(raw[2]) == (tmp_path / "r/sample-000002.bin").read_bytes()
    )
    rows = opened(made(tmp_path, "tokens", "k"), "tokens")
    inputs, targets = datasets.for_model(rows, "language", "next_token")[1]
    assert inputs.shape == targets.shape == (8,) and inputs.dtype == torch.int64
    assert torch.equal(inputs[1:], targets[:-1]) and int(inputs.max()) < 50
    tokens, label = datasets.for_model(rows, "language")[1]
    assert tokens.shape == (8,) and 0 <= label < 10
    with pytest.raises(ValueError, match="vocab 50 exceeds the model's 40"):
        datasets.for_model(rows, "language", "next_token", vocab=40)
    with pytest.raises(ValueError, match="cannot feed a vision model"):
        datasets.for_model(rows, "vision")


@pytest.mark.parametrize("workers", [0, 2])
def test_augmentation_follows_the_loader_seed(tmp_path: Path, workers: int) -> None:
    dataset = opened(made(tmp_path, "jpeg"), "jpeg", output_size=16, train=True)
    dataset[0]  # draws in this process first: each worker must still get its own stream

    def batches(seed: int) -> list[torch.Tensor]:
        loader = datasets.make_loader(
            dataset, batch_size=4, num_workers=workers, shuffle=False, pin_memory=True, seed=seed
        )
        return [images for images, _ in loader]

    first, again, other = batches(1), batches(1), batches(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])  # crops and flips differ; the order does not
    plain = opened(tmp_path / "a", "jpeg", output_size=16)
    assert not torch.equal(first[0][0], plain[0][0])


def test_an_unrelated_error_is_not_explained() -> None:
    assert datasets.explain_loader_error(RuntimeError("No space left on device")) is None
    died = RuntimeError("DataLoader worker (pid(s) 12) exited unexpectedly")
    assert "most often for lack of shared memory" in str(datasets.explain_loader_error(died))


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_a_full_dev_shm_ends_the_run_with_the_explanation() -> None:
    """A worker's batch does not fit in a 1 MiB /dev/shm (its own mount namespace)."""
    workload = {"kind": "data_loading", "device": "cpu", "samples": 16, "sample_bytes": 1 << 18}
    workload.update({"batch_size": 8, "num_workers": 1, "warmup_batches": 0})
    spec = json.dumps({"workload": workload})
    script = 'mount -t tmpfs -o size=1M tmpfs /dev/shm && exec "$@"'
    command = ["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-m", "workloads"]
    done = subprocess.run(
        [*command, "run", "--spec-json", spec],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    error = json.loads(done.stdout.splitlines()[-1])
    assert error["event"] == "error"
    assert error["message"].startswith("a DataLoader worker died for lack of shared memory: ")
    assert "/dev/shm is 1 MiB" in error["message"] and "shm_size:" in error["message"]


# --- data_loading ---------------------------------------------------------------------------


def asset_spec(tmp_path: Path, kind: str, **options: Any) -> dict[str, Any]:
    path = made(tmp_path, kind, "asset")
    digest = assets.read_index(str(path))["sha256"]
    workload = {"kind": "data_loading", "device": "cpu", "location": "tmpfs"}
    workload.update({"dataset": PARAMS[kind], "batch_size": 4, "shuffle": False, **options})
    (tmp_path / "ram").mkdir()
    spec_assets = {"dataset": {"path": str(path), "sha256": digest}, "location": "tmpfs"}
    return {"workload": workload, "assets": {**spec_assets, "stage_to": str(tmp_path / "ram")}}


def test_data_loading_reads_the_staged_jpeg_asset(tmp_path: Path) -> None:
    spec = asset_spec(tmp_path, "jpeg", num_workers=2, warmup_batches=1)
    result = run_workload(spec)
    metrics, info = result["metrics"], result["info"]
    assert metrics["data.loader_startup_s"]["value"] > 0
    # unshuffled: the warmup batch is samples 0-3, the measured ones 4-11
    files = [tmp_path / f"asset/images/{index:06d}.jpg" for index in range(4, 12)]
    read = sum(path.stat().st_size for path in files)
    window = info["measured_window_s"]
    assert metrics["data.bandwidth"]["value"] == pytest.approx(read / window)
    assert metrics["data.throughput"]["value"] == pytest.approx(8 / window)
    staged = info["assets"]["dataset"]
    assert staged["sha256"] == spec["assets"]["dataset"]["sha256"]
    assert Path(staged["path"]).parent.parent == tmp_path / "ram"
    assert staged["fs_type"] == assets.fs_type(str(tmp_path))
    assert info["assets"]["location"] == "tmpfs" and info["assets"]["copy_s"] > 0
    assert list((tmp_path / "ram").iterdir()) == []


def test_data_loading_refuses_an_asset_that_is_not_the_controllers(tmp_path: Path) -> None:
    spec = asset_spec(tmp_path, "raw", num_workers=0, warmup_batches=0)
    spec["assets"]["dataset"]["sha256"] = "f" * 64
    with pytest.raises(assets.AssetError, match="is not the ffff"):
        run_workload(spec)
