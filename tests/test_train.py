"""Training steps as a real job runs them: a DataLoader feeding the step, the staged checkpoint
and dataset read from disk, start-up split into import, weight loading and compile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workloads import assets, run_workload, spec
from workloads.modelsetup import NO_CHECKPOINT, NOT_COMPILED

REPO = Path(__file__).resolve().parent.parent


def workload(**options: Any) -> dict[str, Any]:
    base = {"name": "t", "kind": "train_step", "device": "cpu", "batch_size": 4}
    return {**base, "steps": 3, "warmup_steps": 1, **options}


def staged_spec(tmp_path: Path, options: dict[str, Any], location: str) -> dict[str, Any]:
    """A spec as the runner sends it: the assets made and placed where ``location`` says
    (for local targets: the directory itself, copied to RAM by the worker for tmpfs)."""
    filled = spec.validate({"workload": options, "assets": {"location": location}}).workload
    entry: dict[str, Any] = {"location": location, "stage_to": None}
    if location == "tmpfs":
        entry["stage_to"] = str(tmp_path / "ram")
        os.mkdir(entry["stage_to"])
    for name, params in (
        ("checkpoint", assets.checkpoint_params(filled, 0)),
        ("dataset", assets.dataset_params(filled, 0)),
    ):
        if params is not None:
            index = assets.make(params, str(tmp_path / name))
            entry[name] = {"path": str(tmp_path / name), "sha256": index["sha256"]}
    return {"workload": options, "seed": 0, "assets": entry}


def test_synthetic_rows_through_a_loader_and_no_checkpoint_said_so() -> None:
    result = run_workload({"workload": workload(model="mlp"), "seed": 0})
    metrics, absent = result["metrics"], result["absent"]
    for name in ("train.throughput", "train.step_time_s", "train.data_wait_s"):
        assert metrics[name]["value"] > 0, name
    assert metrics["train.data_wait_s"]["value"] < metrics["train.step_time_s"]["value"]
    assert absent["startup.load_weights_s"] == NO_CHECKPOINT
    assert absent["startup.compile_s"] == NOT_COMPILED
    assert len(result["raw"]["data_wait_s"]) == 3
    assert result["info"]["optimizer"] == "adamw"


def test_resnet18_reads_its_checkpoint_and_jpeg_dataset_from_ram(tmp_path: Path) -> None:
    """A tmpfs location: the worker copies both assets into RAM, loads the checkpoint of the
    model's real size, trains on decoded JPEGs in bf16 autocast and reports the bytes it read
    with the digest the controller made."""
    options = workload(
        model="resnet18",
        image_size=32,
        precision="bf16",
        location="tmpfs",
        dataset={"format": "jpeg", "samples": 16, "image_size": 32},
        num_workers=1,
    )
    sent = staged_spec(tmp_path, options, "tmpfs")
    result = run_workload(sent)
    assert result["metrics"]["startup.load_weights_s"]["value"] > 0
    assert result["info"]["checkpoint_bytes"] > 11_000_000 * 4  # fp32 ResNet-18: 11.7 M
    read = result["info"]["assets"]
    assert read["location"] == "tmpfs" and read["copy_s"] > 0
    for name in ("checkpoint", "dataset"):
        assert read[name]["sha256"] == sent["assets"][name]["sha256"]
        assert read[name]["path"].startswith(str(tmp_path / "ram"))
    assert os.listdir(tmp_path / "ram") == []  # the RAM copy is removed when the run ends


def test_a_checkpoint_changed_after_staging_fails_the_run(tmp_path: Path) -> None:
    options = workload(model="mlp", location="image")
    sent = staged_spec(tmp_path, options, "image")
    index = json.loads((tmp_path / "checkpoint" / "asset.json").read_text())
    index["files"]["model.pt"] = "0" * 64  # what the controller made is not what is there
    (tmp_path / "checkpoint" / "asset.json").write_text(json.dumps(index))
    with pytest.raises(assets.AssetError, match=r"model\.pt"):
        run_workload(sent)


def test_import_time_is_measured_from_the_interpreter_start() -> None:
    """In a worker process, ``startup.import_s`` covers the interpreter's own start and the
    torch import: positive, and shorter than the whole process took."""
    spec_json = json.dumps({"workload": workload(model="mlp"), "seed": 0})
    done = subprocess.run(
        [sys.executable, "-m", "workloads", "run", "--spec-json", spec_json],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    imported = result["metrics"]["startup.import_s"]["value"]
    assert 0 < imported < result["info"]["setup_s"] + imported


def test_compile_without_a_compiler_is_one_clear_error() -> None:
    spec_json = json.dumps({"workload": workload(model="mlp", compile=True), "seed": 0})
    env = {**os.environ, "CXX": "no-such-compiler"}
    done = subprocess.run(
        [sys.executable, "-m", "workloads", "run", "--spec-json", spec_json],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    error = json.loads(done.stdout.splitlines()[-1])
    assert "needs a C++ compiler" in error["message"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")
def test_compile_time_is_its_own_start_up_phase() -> None:
    result = run_workload({"workload": workload(model="mlp", compile=True), "seed": 0})
    assert result["metrics"]["startup.compile_s"]["value"] > 0
    assert "startup.compile_s" not in result["absent"]


def test_llama_trains_on_next_tokens_from_a_staged_token_dataset(tmp_path: Path) -> None:
    options = workload(
        model="llama",
        preset="tiny",
        seq_len=16,
        location="volume",
        dataset={"format": "tokens", "samples": 16, "seq_len": 16},
    )
    result = run_workload(staged_spec(tmp_path, options, "volume"))
    assert result["metrics"]["train.throughput"]["value"] > 0
    assert result["info"]["assets"]["dataset"]["bytes"] > 16 * 17 * 4
