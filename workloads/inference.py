"""Inference latency and throughput, following MLPerf's two basic scenarios.

``single_stream`` sends one request (a batch of ``batch_size``) at a time and
reports latency percentiles: what an interactive caller sees. ``offline``
runs the same loop but is about how many samples per second big batches
reach, so it reports throughput only; its per-batch times are kept in the
raw data but are not request latencies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from workloads import models, modelsetup
from workloads.assets import StagedAssets
from workloads.common import metric, percentile, synchronizer, torch_dtype
from workloads.context import Context, Outcome
from workloads.loop import LoopResult, run_loop

LATENCY_METRICS = {
    "infer.latency_p50_s": 50.0,
    "infer.latency_p90_s": 90.0,
    "infer.latency_p99_s": 99.0,
}
OFFLINE_REASON = "offline scenario measures throughput, not per-request latency"


def make_step(model: Callable[..., Any], inputs: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model(inputs)

    return step


def _metrics(
    loop: LoopResult, batch_size: int, scenario: str
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    times = loop.measured_times
    metrics = {"infer.throughput": metric(batch_size * len(times) / sum(times), "queries/s")}
    if scenario == "offline":
        return metrics, dict.fromkeys(LATENCY_METRICS, OFFLINE_REASON)
    for name, q in LATENCY_METRICS.items():
        metrics[name] = metric(percentile(times, q), "s")
    return metrics, {}


def run(ctx: Context) -> Outcome:
    return modelsetup.run(ctx, _measure)


def _measure(ctx: Context, setup: modelsetup.Setup, _: StagedAssets) -> Outcome:
    cfg = ctx.workload
    dtype = torch_dtype(cfg["dtype"])
    shape = models.options(cfg)
    setup.model.eval()
    inputs, _ = models.make_batch(cfg["model"], cfg["batch_size"], dtype, ctx.device, **shape)
    warmup, requests = cfg["warmup_requests"], cfg["requests"]
    with torch.inference_mode(), setup.autocast():
        forward = modelsetup.compiled(setup, cfg["compile"], lambda f: f(inputs), ctx)
        monitor = ctx.monitor(ctx.device)
        ctx.ready(str(ctx.device))
        reporter = ctx.reporter(warmup + requests)
        loop = run_loop(
            make_step(forward, inputs),
            warmup,
            requests,
            synchronizer(ctx.device),
            reporter,
            monitor,
        )
    metrics, absent = _metrics(loop, cfg["batch_size"], cfg["scenario"])
    return Outcome(
        loop=loop,
        metrics=metrics,
        absent=absent,
        raw={"latency_s": loop.measured_times, "warmup_latency_s": loop.warmup_times},
        info={
            "model": cfg["model"],
            "input_shape": models.input_shape(cfg["model"], cfg["batch_size"], **shape),
            "batch_size": cfg["batch_size"],
            "scenario": cfg["scenario"],
            "measured_requests": len(loop.measured_times),
            "warmup_requests": len(loop.warmup_times),
        },
    )
