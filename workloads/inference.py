"""Inference under MLPerf LoadGen's four scenarios.

``single_stream`` issues one sample per query and the next when it returns: the latency an
interactive caller sees. ``multi_stream`` does the same with ``samples_per_query`` samples per
query (a camera rig's frames). ``server`` issues single samples at Poisson-distributed times
averaging ``target_qps`` and judges the p99 latency against ``target_latency_s``: what an
online service sees under load, queueing included. ``offline`` issues every sample at once
and measures throughput only.

The inputs are made before the clock starts (a query sample library of
``performance_sample_count`` inputs on the device); LoadGen picks among them, times every
sample and rules the run VALID or INVALID. This module turns its logs into the cell's metrics,
raw latencies and info, and hands its summary and detail logs to the controller.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from workloads import loadgen, models, modelsetup
from workloads import loadgen_log as logs
from workloads.assets import StagedAssets
from workloads.common import median, metric, synchronizer, torch_dtype
from workloads.context import Context, Outcome
from workloads.cpustate import CpuState
from workloads.gpu import GpuMonitor
from workloads.loop import LoopResult, injected_slowdown

PERFORMANCE_SAMPLES = 64
"""Inputs made before the test (LoadGen's performance sample count): enough that samples are
not all the same input, few enough to fit beside a large model."""
MULTI_STREAM_SAMPLES = 8  # LoadGen's default samples per multi_stream query
OFFLINE_SLACK = 1.1  # LoadGen generates this much more than min_duration_s x target_qps
OFFLINE_REASON = (
    "offline: LoadGen issues every sample as one query, so there is no per-query latency"
)
THROUGHPUT_KEYS = {
    "single_stream": "result_qps_with_loadgen_overhead",
    "server": "result_scheduled_samples_per_sec",
    "offline": "result_samples_per_second",
}
"""The detail-log figure each scenario reports as its throughput (multi_stream has none)."""


def run(ctx: Context) -> Outcome:
    return modelsetup.run(ctx, _measure)


def samples_per_query(cfg: dict[str, Any]) -> int:
    if cfg["scenario"] == "multi_stream":
        return cfg["samples_per_query"] or MULTI_STREAM_SAMPLES
    return 1


def max_batch(cfg: dict[str, Any]) -> int:
    """Samples per forward: one query's in the streams, up to ``batch_size`` queued ones in
    server and offline."""
    if cfg["scenario"] in ("server", "offline"):
        return int(cfg["batch_size"])
    return samples_per_query(cfg)


def expected_forwards(cfg: dict[str, Any]) -> int:
    """Forwards LoadGen's test should take, for progress (server batches make it fewer)."""
    if cfg["scenario"] != "offline":
        return int(cfg["min_query_count"])
    generated = OFFLINE_SLACK * (cfg["min_duration_s"] or 0.0) * (cfg["target_qps"] or 1.0)
    return math.ceil(max(cfg["min_query_count"], int(generated)) / cfg["batch_size"])


def plan_of(cfg: dict[str, Any], seed: int, expected_s: float | None) -> loadgen.Plan:
    return loadgen.Plan(
        scenario=cfg["scenario"],
        min_query_count=cfg["min_query_count"],
        seed=seed,
        min_duration_s=cfg["min_duration_s"],
        max_duration_s=cfg["max_duration_s"],
        target_qps=cfg["target_qps"],
        target_latency_s=cfg["target_latency_s"],
        samples_per_query=samples_per_query(cfg) if cfg["scenario"] == "multi_stream" else None,
        expected_latency_s=expected_s if cfg["scenario"].endswith("_stream") else None,
    )


def make_forward(
    model: Callable[..., Any], pool: torch.Tensor, sync: Callable[[], None]
) -> Callable[[Sequence[int]], None]:
    def forward(indices: Sequence[int]) -> None:
        model(pool[list(indices)])
        sync()

    return forward


def _warmup(
    forward: Callable[[Sequence[int]], None], unit: int, count: int, pool_size: int, done: Any
) -> list[float]:
    """``count`` forwards of one query's (or one batch's) samples before LoadGen starts: their
    times go to the raw data, and their median tells LoadGen what latency to expect."""
    times = []
    for i in range(count):
        started = time.perf_counter()
        forward([(i * unit + j) % pool_size for j in range(unit)])
        times.append(time.perf_counter() - started)
        done()
    return times


def _measure(ctx: Context, setup: modelsetup.Setup, _: StagedAssets) -> Outcome:
    cfg = ctx.workload
    unit = max_batch(cfg)
    pool_size = max(PERFORMANCE_SAMPLES, unit)
    dtype, shape = torch_dtype(cfg["dtype"]), models.options(cfg)
    setup.model.eval()
    pool, _ = models.make_batch(cfg["model"], pool_size, dtype, ctx.device, **shape)

    def scope() -> contextlib.AbstractContextManager[Any]:  # per thread: both are thread-local
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(setup.autocast())
        return stack

    with scope():
        model = modelsetup.compiled(setup, cfg["compile"], lambda f: f(pool[:unit]), ctx)
        forward = make_forward(model, pool, synchronizer(ctx.device))
        ctx.ready(str(ctx.device))
        reporter = ctx.reporter(cfg["warmup_queries"] + expected_forwards(cfg))
        warmup = _warmup(forward, unit, cfg["warmup_queries"], pool_size, reporter.iteration_done)
    plan = plan_of(cfg, ctx.spec.seed, median(warmup) if warmup else None)
    slowdown = injected_slowdown()

    def sut(lg: Any) -> loadgen.QueueSut:
        return loadgen.QueueSut(lg, forward, unit, scope, reporter.iteration_done, slowdown)

    marks = _Marks(ctx.monitor(ctx.device))
    finished = loadgen.run(plan, pool_size, sut, cfg["scenario"] != "offline", marks)
    try:
        loop = LoopResult(
            warmup, finished.forward_times, [], finished.window_s, marks.cpu["start"],
            marks.cpu["end"], slowdown,
        )  # fmt: skip
        return _outcome(cfg, plan, loop, finished, pool_size)
    finally:
        loadgen.cleanup(finished)


class _Marks:
    """The bounds of the measured phase, right around LoadGen's test: CPU readings, and marks
    on the GPU monitor's timeline."""

    def __init__(self, monitor: GpuMonitor) -> None:
        self.monitor = monitor
        self.cpu: dict[str, CpuState] = {}

    def __call__(self, moment: str) -> None:
        if moment == "start":
            self.monitor.mark("measured_start")
        self.cpu[moment] = CpuState.now()
        if moment == "end":
            self.monitor.mark("measured_end")


def _outcome(
    cfg: dict[str, Any],
    plan: loadgen.Plan,
    loop: LoopResult,
    finished: loadgen.Finished,
    pool_size: int,
) -> Outcome:
    """Metrics, raw latencies and info from LoadGen's logs."""
    scenario = cfg["scenario"]
    detail, errors = logs.read_detail(finished.outdir / logs.DETAIL_FILE)
    raw: dict[str, list[float]] = {"warmup_latency_s": loop.warmup_times}
    latencies: list[float] = []
    scheduled: list[float] = []
    if scenario == "offline":
        raw["batch_time_s"] = finished.forward_times
    else:
        trace = finished.outdir / logs.TRACE_FILE
        latencies, scheduled = logs.trace_latencies(trace, scenario == "multi_stream")
        raw["latency_s"] = latencies
    metrics, absent = _metrics(scenario, detail, scheduled, samples_per_query(cfg))
    return Outcome(
        loop=loop,
        metrics=metrics,
        absent=absent,
        raw=raw,
        info={
            "model": cfg["model"],
            "input_shape": models.input_shape(cfg["model"], 1, **models.options(cfg)),
            "batch_size": cfg["batch_size"],
            "scenario": scenario,
            "loadgen": _info(plan, detail, errors, loop, finished, pool_size, len(latencies)),
        },
        files=_files(finished.outdir),
    )


def _metrics(
    scenario: str, detail: dict[str, Any], scheduled: list[float], per_query: int
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    metrics: dict[str, dict[str, Any]] = {}
    absent: dict[str, str] = {}
    rate = _throughput(scenario, detail, scheduled, per_query)
    if rate is None:
        absent["infer.throughput"] = f"LoadGen's detail log has no throughput for {scenario}"
    else:
        metrics["infer.throughput"] = metric(rate, "samples/s")
    for name, fraction in logs.PERCENTILES.items():
        value = detail.get(logs.percentile_key(fraction, scenario == "multi_stream"))
        if scenario == "offline":
            absent[name] = OFFLINE_REASON
        elif value is None:
            absent[name] = "LoadGen's detail log has no such percentile"
        else:
            metrics[name] = metric(value * logs.NS, "s")
    return metrics, absent


def _throughput(
    scenario: str, detail: dict[str, Any], scheduled: list[float], per_query: int
) -> float | None:
    """Samples per second as LoadGen reports it; for multi_stream, which reports none, its
    single_stream formula: samples after the first query over the time to the last query."""
    if scenario != "multi_stream":
        value = detail.get(THROUGHPUT_KEYS[scenario])
        return float(value) if value is not None else None
    if len(scheduled) < 2 or scheduled[-1] <= 0:
        return None
    return per_query * (len(scheduled) - 1) / scheduled[-1]


def _info(
    plan: loadgen.Plan,
    detail: dict[str, Any],
    errors: list[str],
    loop: LoopResult,
    finished: loadgen.Finished,
    pool_size: int,
    measured: int,
) -> dict[str, Any]:
    """LoadGen's verdict and what it rests on, for the controller's verdict and warnings."""
    valid = detail.get("result_validity")
    reasons = [logs.one_line(detail.get("result_invalid_reason"))]
    if detail.get("early_stopping_met") is False:
        reasons.append(f"early stopping: {logs.one_line(detail.get('early_stopping_result'))}")
    queries = int(detail.get("result_query_count") or 0)
    out = {
        "scenario": plan.scenario,
        "settings": {**plan.record(), "performance_sample_count": pool_size},
        "validity": valid or "UNKNOWN",
        "reasons": [r for r in reasons if r] if valid != "VALID" else [],
        "early_stopping": logs.one_line(detail.get("early_stopping_result")),
        "errors": errors,
        "query_count": queries,
        "samples_per_query": int(detail.get("generated_samples_per_query") or 1),
        "latencies_traced": measured,
        "forwards": len(finished.forward_times),
        "mean_batch": sum(finished.batch_sizes) / max(len(finished.batch_sizes), 1),
        "queries_needed": {} if plan.scenario == "offline" else logs.needed_per_percentile(),
        "loadgen_version": detail.get("loadgen_version"),
    }
    completed = detail.get("result_completed_samples_per_sec")  # server: beside the offered
    return out if completed is None else {**out, "completed_samples_per_s": completed}


def _files(outdir: Path) -> dict[str, str]:
    """LoadGen's summary and detail logs, stored by the controller beside the cell's raw file."""
    out = {}
    for name in logs.KEPT_FILES:
        path = outdir / name
        if path.is_file():
            out[f"loadgen/{name}"] = path.read_text(encoding="utf-8", errors="replace")
    return out
