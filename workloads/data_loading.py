"""Input-pipeline throughput: a dataset on disk read through a DataLoader.

This isolates what training jobs often wait on: opening and reading many files, decoding and
augmenting in worker processes, handing batches back through shared memory, collation.
Batches stay in host memory (pinned when asked and an accelerator is present), so the figure
describes the host's storage, filesystem and CPU, whatever GPU it has.

With ``dataset`` the data is an asset the controller made once and staged where ``location``
says (image, volume or tmpfs: ``workloads.assets``), JPEG files or tar shards decoded and
augmented in the workers, or raw files; its digest is checked after the measured loop, so
every target is shown to have read the same bytes. Without it, raw files are written to a
fresh temporary directory from the seed and removed when the run ends, failed or not. With
``cold_cache`` every file is dropped from the page cache after it is read (and, for the
temporary files, after it is written), so every epoch reads from the storage device rather
than from memory; on a tmpfs there is no device and the advice has no effect.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from workloads.assets import read_index, stage
from workloads.common import metric
from workloads.context import Context, Outcome
from workloads.datasets import (
    WithSizes,
    drop_from_page_cache,
    explain_loader_error,
    make_loader,
    open_dataset,
    read_range,
)
from workloads.loop import run_loop
from workloads.spec import SpecError

Count = Callable[[Any], tuple[int, int]]  # a batch -> (samples, bytes read)


def write_dataset(
    directory: str, samples: int, sample_bytes: int, seed: int, cold: bool
) -> list[str]:
    """Write ``samples`` files of random bytes, the same for the same seed."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(samples):
        path = os.path.join(directory, f"sample-{index:06d}.bin")
        with open(path, "wb") as handle:
            handle.write(rng.bytes(sample_bytes))
            if cold:
                handle.flush()
                os.fsync(handle.fileno())
                drop_from_page_cache(handle.fileno())
        paths.append(path)
    return paths


class FileDataset(Dataset[torch.Tensor]):
    """Each item is one file's bytes as a uint8 tensor."""

    def __init__(self, paths: list[str], sample_bytes: int, cold: bool) -> None:
        self.paths = paths
        self.sample_bytes = sample_bytes
        self.cold = cold

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        data = read_range(self.paths[index], 0, self.sample_bytes, self.cold)
        return torch.frombuffer(data, dtype=torch.uint8)


def _epochs(loader: DataLoader, epochs: int, startup: list[float]) -> Iterator[Any]:
    """Every batch of every epoch; ``startup`` gets the time from ``iter(loader)`` (worker
    processes start here) to the first batch."""
    started = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            if not startup:
                startup.append(time.perf_counter() - started)
            yield batch


def tensor_count(batch: torch.Tensor) -> tuple[int, int]:
    """Raw bytes: what was read is what the batch holds."""
    return batch.shape[0], batch.numel() * batch.element_size()


def sized_count(batch: list[Any]) -> tuple[int, int]:
    """A ``WithSizes`` batch: the files' bytes its items read, not the decoded tensors'."""
    sizes = batch[1]
    return len(sizes), int(sizes.sum())


def _measure(ctx: Context, loader: DataLoader, count: Count) -> tuple[Outcome, float]:
    """Read every batch of every epoch; the first ``warmup_batches`` are left out."""
    cfg = ctx.workload
    startup: list[float] = []
    batches = _epochs(loader, cfg["epochs"], startup)
    warmup = cfg["warmup_batches"]
    measured = len(loader) * cfg["epochs"] - warmup
    if measured < 1:
        raise SpecError(f"workload.warmup_batches ({warmup}) leaves no measured batches")
    host = torch.device("cpu")
    monitor = ctx.monitor(host)
    ctx.ready(str(host))
    reporter = ctx.reporter(warmup + measured)
    try:
        loop = run_loop(
            lambda: count(next(batches)), warmup, measured, lambda: None, reporter, monitor
        )
    except Exception as exc:
        explained = explain_loader_error(exc)
        if explained is None:
            raise
        raise explained from exc
    finally:
        batches.close()
        del loader  # shuts persistent workers down before the files go
    samples = sum(n for n, _ in loop.outputs)
    size = sum(nbytes for _, nbytes in loop.outputs)
    outcome = Outcome(
        loop=loop,
        metrics={
            "data.throughput": metric(samples / loop.window_s, "samples/s"),
            "data.bandwidth": metric(size / loop.window_s, "bytes/s"),
        },
        raw={"batch_time_s": loop.measured_times, "warmup_batch_time_s": loop.warmup_times},
        info={},
    )
    return outcome, startup[0]


def _loader(ctx: Context, dataset: Dataset[Any]) -> DataLoader:
    cfg = ctx.workload
    return make_loader(
        dataset,
        batch_size=cfg["batch_size"],
        num_workers=cfg["num_workers"],
        shuffle=cfg["shuffle"],
        pin_memory=cfg.get("pin_memory", False),
        seed=ctx.spec.seed,
    )


def _run_temporary(ctx: Context) -> Outcome:
    """No dataset asset: raw files written by this worker into a temporary directory."""
    cfg = ctx.workload
    directory = tempfile.mkdtemp(prefix="workloads-data-")
    try:
        paths = write_dataset(
            directory, cfg["samples"], cfg["sample_bytes"], ctx.spec.seed, cfg["cold_cache"]
        )
        dataset = FileDataset(paths, cfg["sample_bytes"], cfg["cold_cache"])
        outcome, startup_s = _measure(ctx, _loader(ctx, dataset), tensor_count)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    outcome.metrics["data.loader_startup_s"] = metric(startup_s, "s")
    outcome.info = _info(
        cfg, outcome, directory, cfg["samples"], cfg["samples"] * cfg["sample_bytes"]
    )
    return outcome


def _run_asset(ctx: Context) -> Outcome:
    """The staged dataset asset, checked against the digest the controller recorded."""
    cfg = ctx.workload
    spec_assets = getattr(ctx.spec, "assets", None) or {}
    if not spec_assets.get("dataset"):
        raise SpecError("workload.dataset needs spec.assets.dataset (bench run stages it)")
    wanted = {key: spec_assets.get(key) for key in ("dataset", "stage_to", "location")}
    with stage(wanted) as staged:
        path = staged.paths["dataset"]
        params = read_index(path)["params"]
        if params.get("format") != cfg["dataset"]["format"]:
            raise SpecError(f"{path} holds a {params.get('format')} dataset, not the workload's")
        dataset = open_dataset(path, params, output_size=None, train=True, cold=cfg["cold_cache"])
        outcome, startup_s = _measure(ctx, _loader(ctx, WithSizes(dataset)), sized_count)
        assets = staged.report()  # hashed after the loop, so the loop read what the host had
    outcome.metrics["data.loader_startup_s"] = metric(startup_s, "s")
    outcome.info = _info(cfg, outcome, path, len(dataset), assets["dataset"]["bytes"])
    outcome.info["assets"] = assets
    return outcome


def run(ctx: Context) -> Outcome:
    if ctx.workload.get("dataset") is None:
        return _run_temporary(ctx)
    return _run_asset(ctx)


def _info(cfg: dict, outcome: Outcome, directory: str, samples: int, size: int) -> dict:
    info = {
        "device": "cpu",
        "samples": samples,
        "sample_bytes": cfg["sample_bytes"],
        "dataset_bytes": size,
        "batch_size": cfg["batch_size"],
        "num_workers": cfg["num_workers"],
        "epochs": cfg["epochs"],
        "shuffle": cfg["shuffle"],
        "cold_cache": cfg["cold_cache"],
        "requested_device": cfg["device"],
        "dataset_dir": directory,
        "measured_batches": len(outcome.loop.measured_times),
        "measured_samples": sum(count for count, _ in outcome.loop.outputs),
        "warmup_batches": len(outcome.loop.warmup_times),
    }
    if cfg.get("dataset") is not None:
        del info["sample_bytes"]  # the dataset's own options say what each sample is
        info["pin_memory"] = bool(cfg.get("pin_memory")) and torch.cuda.is_available()
    return info
