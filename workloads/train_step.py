"""Training throughput the way a training job spends it: batches come from a DataLoader, are
copied to the device (pinned and non-blocking on CUDA), then forward under autocast, loss,
backward (through a GradScaler for fp16 on CUDA) and the optimizer step.

Without a ``dataset`` the loader serves seeded synthetic rows held in memory (the small
models' quick runs); with one it reads the dataset the controller staged on the target, so the
target's filesystem and the loader's worker processes are part of what is measured. The time
each step waits for its batch is kept apart (``train.data_wait_s``): an input-bound step is
then visible as such instead of as a slow model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from workloads import models, modelsetup
from workloads.assets import StagedAssets
from workloads.common import median, metric
from workloads.context import Context, Outcome
from workloads.loop import run_loop

SYNTHETIC_BATCHES = 8
"""Batches of distinct synthetic rows a run without a dataset cycles through."""


def make_optimizer(name: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")


def synthetic(cfg: dict[str, Any]) -> Dataset[Any]:
    """Seeded rows of the model's input shape, made on the CPU (the loader copies them)."""
    rows = cfg["batch_size"] * SYNTHETIC_BATCHES
    inputs, targets = models.make_batch(
        cfg["model"], rows, torch.float32, torch.device("cpu"), **models.options(cfg)
    )
    return TensorDataset(inputs, targets)


def staged(path: str, cfg: dict[str, Any]) -> Dataset[Any]:
    """The staged dataset, decoded and augmented for this model."""
    from workloads import datasets

    output = cfg["image_size"] if cfg["model"] != "cnn" else cfg["image_size"] or 32
    dataset = datasets.open_dataset(path, cfg["dataset"], output_size=output, train=True)
    name = cfg["model"]
    return datasets.for_model(dataset, models.family(name), models.target_kind(name))


def batches(loader: Any) -> Iterator[Any]:
    """The loader's batches, epoch after epoch, for as many steps as the run takes."""
    while True:
        yield from loader


class Trainer:
    """One training step over the next batch; remembers how long it waited for that batch."""

    def __init__(self, ctx: Context, setup: modelsetup.Setup, loader: Any) -> None:
        cfg = ctx.workload
        self.device = ctx.device
        self.setup = setup
        self.optimizer = make_optimizer(cfg["optimizer"], setup.model, cfg["lr"])
        cuda_fp16 = ctx.device.type == "cuda" and cfg["precision"] == "fp16"
        self.scaler = torch.amp.GradScaler("cuda") if cuda_fp16 else None
        self.non_blocking = bool(loader.pin_memory)
        self.dtype = next(setup.model.parameters()).dtype  # float inputs take the weights'
        self.batches = batches(loader)
        self.forward: Callable[..., torch.Tensor] = setup.model

    def step(self) -> tuple[int, float]:
        started = time.perf_counter()
        inputs, targets = next(self.batches)
        waited = time.perf_counter() - started
        dtype = self.dtype if inputs.is_floating_point() else None
        inputs = inputs.to(self.device, dtype=dtype, non_blocking=self.non_blocking)
        targets = targets.to(self.device, non_blocking=self.non_blocking)
        self.optimizer.zero_grad(set_to_none=True)
        with self.setup.autocast():
            logits = self.forward(inputs)
        loss = models.loss(logits.float(), targets)  # reduced in fp32 whatever the precision
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return int(targets.shape[0]), waited

    def first_compiled_step(self, function: Callable[..., torch.Tensor]) -> None:
        self.forward = function
        self.step()


def run(ctx: Context) -> Outcome:
    return modelsetup.run(ctx, _train)


def _train(ctx: Context, setup: modelsetup.Setup, place: StagedAssets) -> Outcome:
    from workloads import datasets

    cfg = ctx.workload
    path = place.paths.get("dataset")
    source = staged(path, cfg) if path else synthetic(cfg)
    loader = datasets.make_loader(
        source,
        batch_size=cfg["batch_size"],
        num_workers=cfg["num_workers"],
        shuffle=True,
        pin_memory=cfg["pin_memory"] and ctx.device.type == "cuda",
        seed=ctx.spec.seed,
        drop_last=len(source) >= cfg["batch_size"],  # type: ignore[arg-type]
    )
    setup.model.train()
    trainer = Trainer(ctx, setup, loader)
    trainer.forward = modelsetup.compiled(setup, cfg["compile"], trainer.first_compiled_step, ctx)
    return _measure(ctx, trainer)


def _measure(ctx: Context, trainer: Trainer) -> Outcome:
    from workloads import datasets
    from workloads.common import synchronizer

    cfg = ctx.workload
    warmup, steps = cfg["warmup_steps"], cfg["steps"]
    monitor = ctx.monitor(ctx.device)
    ctx.ready(str(ctx.device))
    reporter = ctx.reporter(warmup + steps)
    try:
        loop = run_loop(trainer.step, warmup, steps, synchronizer(ctx.device), reporter, monitor)
    except RuntimeError as exc:
        raise datasets.explain_loader_error(exc) or exc from exc
    times = loop.measured_times
    rows = [count for count, _ in loop.outputs]
    waits = [waited for _, waited in loop.outputs]
    return Outcome(
        loop=loop,
        metrics={
            "train.throughput": metric(sum(rows) / sum(times), "samples/s"),
            "train.step_time_s": metric(median(times), "s"),
            "train.data_wait_s": metric(median(waits), "s"),
        },
        raw={
            "step_time_s": times,
            "warmup_step_time_s": loop.warmup_times,
            "data_wait_s": waits,
        },
        info={
            "model": cfg["model"],
            "batch_size": cfg["batch_size"],
            "optimizer": cfg["optimizer"],
            "lr": cfg["lr"],
            "precision": cfg["precision"],
            "num_workers": cfg["num_workers"],
            "measured_steps": len(times),
            "warmup_steps": len(loop.warmup_times),
        },
    )
