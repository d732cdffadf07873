"""Run one validated spec and assemble its ``result`` event.

Both entry points, the ``python -m workloads run`` worker and the in-process
``run_workload`` API, end up in ``execute``, so the measured loop is the
same code whichever way a workload is launched.
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
from collections.abc import Mapping
from typing import Any

from workloads.common import (
    apply_threads,
    metric,
    process_age_s,
    seed_everything,
    select_device,
)
from workloads.context import Context
from workloads.gpu import GpuMonitor, open_monitor, unavailable
from workloads.memory import TreePeakSampler
from workloads.protocol import Emit, Event, discard, make_event, start_event
from workloads.spec import KINDS, Spec, validate

OFF = "samplers switched off in the spec"


TORCHLESS = frozenset(name for name, kind in KINDS.items() if not kind.torch)
"""Kinds whose worker must not import torch: a program of the user's runs in its place. Their
module provides ``context(spec, emit, started)`` as well as ``run(ctx)``."""
NO_TORCH = "this kind runs without torch"

IMPORTED_BEFORE = "torch was already imported in this process (an in-process run)"
NO_PROC = "the process start time is not readable here (no /proc)"


def _import_torch() -> tuple[dict[str, Any], dict[str, str]]:
    """Import torch; ``startup.import_s`` is the time from the interpreter's start to here."""
    already = "torch" in sys.modules
    import torch  # noqa: F401

    age = process_age_s()
    if already:
        return {}, {"startup.import_s": IMPORTED_BEFORE}
    if age is None:
        return {}, {"startup.import_s": NO_PROC}
    return {"startup.import_s": metric(age, "s")}, {}


def _context(spec: Spec, emit: Emit, started: float) -> Context:
    """Import torch, seed, pick device and threads: the shared set-up."""
    import torch

    device = select_device(spec.workload["device"])
    threads = apply_threads(spec.workload["threads"])
    seed_everything(spec.seed)
    gpu = open_monitor(device.type, device.index) if spec.samplers else GpuMonitor(None, OFF)
    gpu.start()
    return Context(spec, emit, device, threads, torch.__version__, started, gpu=gpu)


def _base_info(spec: Spec, ctx: Context) -> dict[str, Any]:
    import numpy
    import torch

    info: dict[str, Any] = {
        "name": spec.workload["name"],
        "kind": spec.kind,
        "device": str(ctx.device),
        "threads": ctx.threads,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "dtype": spec.workload["dtype"],
        "seed": spec.seed,
        "setup_s": ctx.setup_s,
        "workload": dict(spec.workload),
    }
    if ctx.device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(ctx.device)
        info["cuda_max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated(ctx.device)
    return info


def _plain_info(spec: Spec, ctx: Context) -> dict[str, Any]:
    """``_base_info`` of a kind that runs without torch: no torch, numpy, dtype or threads."""
    return {
        "name": spec.workload["name"],
        "kind": spec.kind,
        "device": str(ctx.device),
        "python": platform.python_version(),
        "seed": spec.seed,
        "setup_s": ctx.setup_s,
        "workload": dict(spec.workload),
    }


def _tree_peak(memory: TreePeakSampler, reported: dict[str, Any] | None) -> int | None:
    """The sampled peak of the process tree, floored by a peak the kind read from the kernel
    (a child's high-water mark, exact where a child shorter than the interval is missed)."""
    known = [v for v in (memory.peak, reported and int(reported["value"])) if v is not None]
    return max(known) if known else None


def execute(spec: Spec, emit: Emit) -> Event:
    """Run ``spec``, emit its events after ``start``, and return ``result``.

    Memory is sampled from before set-up until the kind returns, the span the host-side
    probes watch too, so ``mem.rss_peak_bytes`` and ``mem.host_bytes`` cover the same work.
    """
    started = time.perf_counter()
    memory = TreePeakSampler()
    if spec.samplers:
        memory.start()
    ctx: Context | None = None
    plain = spec.kind in TORCHLESS
    try:
        if plain:
            imported, not_imported = {}, {"startup.import_s": NO_TORCH}
        else:  # before the kind's module, which imports torch: the import is timed here
            imported, not_imported = _import_torch()
        kind = importlib.import_module(f"workloads.{spec.kind}")  # one per spec.KINDS
        ctx = kind.context(spec, emit, started) if plain else _context(spec, emit, started)
        outcome = kind.run(ctx)
    finally:
        memory.stop()
        gpu = ctx.gpu.stop() if ctx is not None else None
    assert gpu is not None and ctx is not None
    if ctx.ran_on != str(ctx.device):  # the kind measured on another device (data loading)
        gpu = unavailable(f"workload ran on {ctx.ran_on}")
    metrics = {**imported, **outcome.metrics, **outcome.loop.common_metrics(), **gpu.metrics}
    absent = {**not_imported, **outcome.absent, **gpu.absent}
    peak = _tree_peak(memory, outcome.metrics.get("mem.rss_peak_bytes"))
    if peak is None:
        absent["mem.rss_peak_bytes"] = memory.reason or "not measured"
    else:
        metrics["mem.rss_peak_bytes"] = metric(peak, "bytes")
    base = _plain_info(spec, ctx) if plain else _base_info(spec, ctx)
    info = {**base, "measured_window_s": outcome.loop.window_s}
    info.update(outcome.loop.info())
    info.update(gpu.info)
    info.update(outcome.info)
    raw = {**outcome.raw, **gpu.raw}
    result = make_event("result", metrics=metrics, absent=absent, raw=raw, info=info)
    if outcome.files:
        result["files"] = outcome.files
    emit(result)
    return result


def run_workload(spec: Mapping[str, Any], emit: Emit | None = None) -> Event:
    """Validate and run ``spec`` in this process; return the result event.

    Events, ``start`` included, go through ``emit``. Failures are raised
    (``SpecError`` for an invalid spec) rather than reported as events.
    Note that the run seeds the global RNGs and may change torch's thread
    count, as the worker process would.
    """
    emit = emit or discard
    emit(start_event())
    return execute(validate(spec), emit)
