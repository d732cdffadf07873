"""The metric vocabulary as data: every metric bench records, its unit, which way is better,
and where it is shown. Adding a metric means adding one line here.

The worker (``workloads/``, standard library only) and the host-side probes produce the values
and state their units; this table is what the controller knows about them. A comparison judges
a metric only in its ``better`` direction, summaries and nightly exports lead with the ``key``
metrics, and a report's headline adds the ``headline`` ones. A metric that is not listed here
(``user.<name>``, or one a newer worker adds) is still stored, summarised and shown, but never
judged: no direction is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.units import fmt

LOWER: Literal["lower"] = "lower"
HIGHER: Literal["higher"] = "higher"
Better = Literal["lower", "higher"] | None


@dataclass(frozen=True)
class Metric:
    """One metric of the vocabulary.

    ``better``: which way is an improvement; None for metrics with no good direction
    (utilisation, power and clocks: higher GPU utilisation can mean more work or a slower
    kernel), which are shown and never judged. ``key``: in the run summary's overhead table,
    the report's headline and the nightly exports. ``headline``: in the report's headline
    table too. ``ratio``: a ratio to the baseline means something (not for percentages).
    """

    name: str
    unit: str
    better: Better
    meaning: str
    key: bool = False
    headline: bool = False
    ratio: bool = False

    def format(self, value: float) -> str:
        """``value`` in this metric's unit, scaled to read at a glance."""
        return fmt(value, self.unit)


def _key(name: str, unit: str, better: Better, meaning: str) -> Metric:
    """A key metric: in every summary, headline and export, with a ratio to the baseline."""
    return Metric(name, unit, better, meaning, key=True, headline=True, ratio=True)


def _startup(phase: str, meaning: str, key: bool = False) -> Metric:
    return Metric(f"startup.{phase}_s", "s", LOWER, meaning, key, key, key)


VOCABULARY: tuple[Metric, ...] = (
    _startup("provision", "deploy request until the process, session, container or VM is up"),
    _startup("kernel_boot", "a VM guest's kernel start until it answers"),
    _startup("create", "container create request until the container exists"),
    _startup("start", "container start request until it runs"),
    _startup("pull", "image pull or build on the engine"),
    _startup("ready", "after provision: until the worker has imported torch, built its model"),
    _startup("first_step", "after ready: until the first iteration is done (CUDA init too)"),
    _startup("total", "deploy request until the first iteration is done (the sum)", key=True),
    _startup(
        "stage", "copying the workload's checkpoint and dataset onto the target (in provision)"
    ),
    _startup("import", "the worker's interpreter start until torch is imported"),
    _startup("load_weights", "reading the checkpoint from the target's filesystem and loading it"),
    _startup("compile", "torch.compile plus the first step through the compiled model"),
    _key("train.throughput", "samples/s", HIGHER, "training samples per second"),
    _key("train.step_time_s", "s", LOWER, "median training step time"),
    Metric("train.data_wait_s", "s", LOWER, "median time a step waits for its batch", False, True),
    _key("gen.ttft_s", "s", LOWER, "median time to the first generated token"),
    _key("gen.tpot_s", "s", LOWER, "median time per output token after the first"),
    _key("gen.tokens_per_s", "tokens/s", HIGHER, "generated tokens per second"),
    _key("infer.throughput", "samples/s", HIGHER, "inference samples per second (LoadGen's)"),
    _key("infer.latency_p50_s", "s", LOWER, "median query latency (LoadGen's)"),
    Metric("infer.latency_p90_s", "s", LOWER, "90th percentile query latency"),
    _key("infer.latency_p99_s", "s", LOWER, "99th percentile query latency"),
    Metric("infer.latency_p999_s", "s", LOWER, "99.9th percentile query latency"),
    _key("data.throughput", "samples/s", HIGHER, "samples read per second"),
    Metric("data.bandwidth", "bytes/s", HIGHER, "dataset bytes read per second"),
    Metric("data.loader_startup_s", "s", LOWER, "DataLoader iter() until its first batch"),
    _key("python.iteration_s", "s", LOWER, "median time of a kind: python entry's timed iteration"),
    _key("python.throughput", "items/s", HIGHER, "items per second of a python entry, its unit"),
    _key("command.wall_s", "s", LOWER, "a command's wall time, from its launch to its exit"),
    Metric("mem.rss_peak_bytes", "bytes", LOWER, "peak resident memory inside the target"),
    _key("mem.host_bytes", "bytes", LOWER, "what the host spends on the deployment"),
    Metric(
        "mem.overhead_bytes", "bytes", LOWER, "host memory beyond the worker's", False, True, True
    ),
    Metric("gpu.mem_peak_bytes", "bytes", LOWER, "peak GPU memory", False, True, True),
    Metric("gpu.startup_mem_peak_bytes", "bytes", LOWER, "peak GPU memory during start-up"),
    Metric("cpu.util_pct", "%", None, "CPU time over wall time, all cores (100 % = one core)"),
    Metric("cpu.user_pct", "%", None, "user CPU time over wall time"),
    Metric("cpu.sys_pct", "%", None, "system CPU time over wall time"),
    Metric("cpu.throttled_s", "s", LOWER, "time a container's CPU quota held it back"),
    Metric("gpu.util_mean_pct", "%", None, "mean GPU utilisation", False, True),
    Metric("gpu.util_max_pct", "%", None, "highest GPU utilisation sampled"),
    Metric("gpu.power_mean_w", "W", None, "mean GPU power draw"),
    Metric("gpu.sm_clock_mean_mhz", "MHz", None, "mean SM clock"),
    Metric("gpu.startup_util_mean_pct", "%", None, "mean GPU utilisation during start-up"),
    Metric("gpu.startup_power_mean_w", "W", None, "mean GPU power draw during start-up"),
)

METRICS: dict[str, Metric] = {metric.name: metric for metric in VOCABULARY}
KEY_METRICS: tuple[str, ...] = tuple(m.name for m in VOCABULARY if m.key)
HEADLINE_METRICS: tuple[str, ...] = tuple(m.name for m in VOCABULARY if m.key or m.headline)
OVERHEAD_METRICS: tuple[str, ...] = tuple(m.name for m in VOCABULARY if m.key or m.ratio)


def direction(name: str) -> Better:
    """'lower' or 'higher' (which way is better), or None: informational or not in the
    vocabulary (never judged blindly)."""
    metric = METRICS.get(name)
    return metric.better if metric else None


def known(name: str) -> bool:
    """Whether ``name`` is in the vocabulary."""
    return name in METRICS
