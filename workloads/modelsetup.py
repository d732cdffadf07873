"""What every kind that runs a model does before its first step, timed the way a real job pays
for it: build the architecture, read the checkpoint from the target's filesystem and load it,
choose the arithmetic (autocast mixed precision), and compile.

``startup.load_weights_s`` and ``startup.compile_s`` are measured here, on the worker's own
clock, as durations of one process; when they do not apply they are absent with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from workloads import assets, models
from workloads.assets import StagedAssets
from workloads.common import metric, synchronizer, torch_dtype
from workloads.context import Context, Outcome

CHECKPOINT_FILE = "model.pt"
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
NO_CHECKPOINT = "no location set: the weights were initialised in memory, not read from disk"
NOT_COMPILED = "compile: false"


class CompilerMissingError(RuntimeError):
    """``compile: true`` on a target without the C++ compiler torch's inductor needs."""


@dataclass
class Setup:
    """A model ready to run, and what preparing it cost."""

    model: nn.Module
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    device_type: str = "cpu"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision the way training scripts use it: autocast around the forward."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=AUTOCAST[self.precision])


def build(ctx: Context, checkpoint: str | None) -> Setup:
    """The workload's model on its device, with weights from ``checkpoint`` when given."""
    cfg = ctx.workload
    dtype = torch_dtype(cfg["dtype"])
    model = models.build(cfg["model"], dtype, ctx.device, **models.options(cfg))
    setup = Setup(model, precision=cfg["precision"], device_type=ctx.device.type)
    setup.info["parameters"] = models.parameter_count(model)
    setup.info["precision"] = cfg["precision"]
    setup.info["compiled"] = cfg["compile"]
    if checkpoint is None:
        setup.absent["startup.load_weights_s"] = NO_CHECKPOINT
    else:
        setup.metrics["startup.load_weights_s"] = metric(load(model, checkpoint, ctx), "s")
        path = os.path.join(checkpoint, CHECKPOINT_FILE)
        setup.info["checkpoint_bytes"] = os.path.getsize(path)
    return setup


def load(model: nn.Module, checkpoint: str, ctx: Context) -> float:
    """Seconds to read the checkpoint file and copy it into the model on its device."""
    sync = synchronizer(ctx.device)
    started = time.perf_counter()
    state = torch.load(
        os.path.join(checkpoint, CHECKPOINT_FILE), map_location="cpu", weights_only=True
    )
    model.load_state_dict(state)
    sync()
    return time.perf_counter() - started


def compiled(
    setup: Setup, enabled: bool, first_step: Callable[[Callable[..., Any]], Any], ctx: Context
) -> Callable[..., Any]:
    """The callable to step with: the model, or ``torch.compile`` of it.

    ``startup.compile_s`` is the compile call plus one step through the compiled model
    (``first_step``), where the real compilation happens; that step is not measured again.
    """
    if not enabled:
        setup.absent["startup.compile_s"] = NOT_COMPILED
        return setup.model
    if ctx.device.type == "cpu" and shutil.which(os.environ.get("CXX", "g++")) is None:
        raise CompilerMissingError(
            "compile: true needs a C++ compiler (g++) on the target for torch's inductor "
            "backend on the CPU; none is installed"
        )
    sync = synchronizer(ctx.device)
    started = time.perf_counter()
    function = torch.compile(setup.model)
    first_step(function)
    sync()
    setup.metrics["startup.compile_s"] = metric(time.perf_counter() - started, "s")
    return function


Measure = Callable[[Context, "Setup", StagedAssets], Outcome]


def run(ctx: Context, measure: Measure) -> Outcome:
    """A model kind's run: stage the assets, build the model (from the checkpoint when there
    is one), ``measure``, then add what preparing the model cost and the assets as read."""
    with assets.stage(ctx.spec.assets) as place:
        setup = build(ctx, place.paths.get("checkpoint"))
        return finish(measure(ctx, setup, place), setup, place)


def finish(outcome: Outcome, setup: Setup, place: StagedAssets) -> Outcome:
    """Add what preparing the model cost, and the assets as read here, to a kind's outcome."""
    outcome.metrics.update(setup.metrics)
    outcome.absent.update(setup.absent)
    outcome.info.update(setup.info)
    outcome.info["assets"] = place.report()
    return outcome
