"""Training throughput: forward, backward and optimizer step on one batch.

The same synthetic batch is reused every step: the point is the cost of the
step on this host, not input handling, which ``data_loading`` measures.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from workloads import models
from workloads.common import median, metric, synchronizer, torch_dtype
from workloads.context import Context, Outcome
from workloads.loop import run_loop


def make_optimizer(name: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")


def make_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> Callable[[], None]:
    """One training step. The loss is taken in float32 so reduced-precision
    runs differ in the model's arithmetic only, not in the loss reduction."""
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs).float(), targets)
        loss.backward()
        optimizer.step()

    return step


def run(ctx: Context) -> Outcome:
    cfg = ctx.workload
    dtype = torch_dtype(cfg["dtype"])
    model = models.build(cfg["model"], dtype, ctx.device).train()
    optimizer = make_optimizer(cfg["optimizer"], model, cfg["lr"])
    inputs, targets = models.make_batch(cfg["model"], cfg["batch_size"], dtype, ctx.device)
    step = make_step(model, optimizer, inputs, targets)
    warmup, steps = cfg["warmup_steps"], cfg["steps"]
    monitor = ctx.monitor(ctx.device)
    ctx.ready(str(ctx.device))
    reporter = ctx.reporter(warmup + steps)
    loop = run_loop(step, warmup, steps, synchronizer(ctx.device), reporter, monitor)
    times = loop.measured_times
    return Outcome(
        loop=loop,
        metrics={
            "train.throughput": metric(cfg["batch_size"] * len(times) / sum(times), "samples/s"),
            "train.step_time_s": metric(median(times), "s"),
        },
        raw={"step_time_s": times, "warmup_step_time_s": loop.warmup_times},
        info={
            "model": cfg["model"],
            "parameters": models.parameter_count(model),
            "input_shape": models.input_shape(cfg["model"], cfg["batch_size"]),
            "batch_size": cfg["batch_size"],
            "optimizer": cfg["optimizer"],
            "lr": cfg["lr"],
            "measured_steps": len(times),
            "warmup_steps": len(loop.warmup_times),
        },
    )
