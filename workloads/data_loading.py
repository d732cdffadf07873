"""Input-pipeline throughput: files on disk read through a DataLoader.

This isolates what training jobs often wait on: opening and reading many
small files, worker processes, collation. Batches stay in host memory, so
the figure describes the host's storage and CPU, whatever GPU it has.

The dataset is written to a fresh temporary directory from the seed, so
every host reads identical bytes, and removed when the run ends, failed or
not. With ``cold_cache`` each file is flushed and dropped from the page
cache after it is written and after every read, so every epoch reads from
the storage device rather than from memory. (On a tmpfs there is no device
and the advice has no effect.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from workloads.common import metric
from workloads.context import Context, Outcome
from workloads.loop import run_loop
from workloads.spec import total_batches


def drop_from_page_cache(fd: int) -> None:
    """Ask the kernel to forget the file's cached pages."""
    if not hasattr(os, "posix_fadvise"):
        raise OSError("cold_cache needs os.posix_fadvise, missing on this platform")
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


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


def read_file(path: str, size: int, cold: bool) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        filled = 0
        while filled < size:
            count = handle.readinto(view[filled:])
            if not count:
                raise OSError(f"{path}: expected {size} bytes, read {filled}")
            filled += count
        if cold:
            drop_from_page_cache(handle.fileno())
    return buffer


class FileDataset(Dataset[torch.Tensor]):
    """Each item is one file's bytes as a uint8 tensor."""

    def __init__(self, paths: list[str], sample_bytes: int, cold: bool) -> None:
        self.paths = paths
        self.sample_bytes = sample_bytes
        self.cold = cold

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        data = read_file(self.paths[index], self.sample_bytes, self.cold)
        return torch.frombuffer(data, dtype=torch.uint8)


def make_loader(dataset: FileDataset, cfg: dict, seed: int) -> DataLoader:
    """A DataLoader whose shuffle order follows the seed.

    Workers persist across epochs, as in most training scripts, so later
    epochs do not pay for process start-up again.
    """
    workers = cfg["num_workers"]
    return DataLoader(
        dataset,
        batch_size=cfg["batch_size"],
        shuffle=cfg["shuffle"],
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


def _epochs(loader: DataLoader, epochs: int) -> Iterator[torch.Tensor]:
    for _ in range(epochs):
        yield from loader


def make_step(batches: Iterator[torch.Tensor]) -> Callable[[], tuple[int, int]]:
    """Wait for the next batch; report its samples and bytes."""

    def step() -> tuple[int, int]:
        batch = next(batches)
        return batch.shape[0], batch.numel() * batch.element_size()

    return step


def _measure(ctx: Context, paths: list[str]) -> Outcome:
    cfg = ctx.workload
    dataset = FileDataset(paths, cfg["sample_bytes"], cfg["cold_cache"])
    loader = make_loader(dataset, cfg, ctx.spec.seed)
    batches = _epochs(loader, cfg["epochs"])
    warmup = cfg["warmup_batches"]
    measured = total_batches(cfg) - warmup
    host = torch.device("cpu")
    monitor = ctx.monitor(host)
    ctx.ready(str(host))
    reporter = ctx.reporter(warmup + measured)
    try:
        loop = run_loop(make_step(batches), warmup, measured, lambda: None, reporter, monitor)
    finally:
        batches.close()
        del loader  # shuts persistent workers down before the files go
    samples = sum(count for count, _ in loop.outputs)
    size = sum(nbytes for _, nbytes in loop.outputs)
    return Outcome(
        loop=loop,
        metrics={
            "data.throughput": metric(samples / loop.window_s, "samples/s"),
            "data.bandwidth": metric(size / loop.window_s, "bytes/s"),
        },
        raw={
            "batch_time_s": loop.measured_times,
            "warmup_batch_time_s": loop.warmup_times,
        },
        info={},
    )


def run(ctx: Context) -> Outcome:
    cfg = ctx.workload
    directory = tempfile.mkdtemp(prefix="workloads-data-")
    try:
        paths = write_dataset(
            directory,
            cfg["samples"],
            cfg["sample_bytes"],
            ctx.spec.seed,
            cfg["cold_cache"],
        )
        outcome = _measure(ctx, paths)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    outcome.info = _info(cfg, outcome, directory)
    return outcome


def _info(cfg: dict, outcome: Outcome, directory: str) -> dict:
    return {
        "device": "cpu",
        "samples": cfg["samples"],
        "sample_bytes": cfg["sample_bytes"],
        "dataset_bytes": cfg["samples"] * cfg["sample_bytes"],
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
