"""``kind: python``: the user's own function, from their own directory, measured like a kind.

The directory arrives as the workload's ``code`` asset (staged by the controller like a
checkpoint at ``location: image``, and hashed again here after the run); an in-process run
without assets reads ``path`` itself. It goes first on ``sys.path``, the entry's module is
imported (part of start-up) and ``run(ctx, **params)`` is called with a
``workloads.userapi.RunContext``. The measured phase is the entry's ``ctx.iterations`` loop;
without one, the whole call.

Bytecode is not written while the user's code is imported: a local target would otherwise
keep a warm ``__pycache__`` in the cached directory that a fresh container or guest never
has, and start-up would differ for a reason that is not isolation.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from typing import Any

from workloads import assets, userentry
from workloads.assetid import CODE_DIR
from workloads.assets import StagedAssets
from workloads.common import median, metric
from workloads.context import Context, Outcome
from workloads.cpustate import CpuState
from workloads.loop import LoopResult
from workloads.userapi import Collected, RunContext, collected

NOT_CALLED = "the entry did not call ctx.iterations()"
NONE_DONE = "no measured iteration completed (the loop ended during its warmup)"
NO_ITEMS = "ctx.iterations() was not given items_per_iteration"


def source(ctx: Context, place: StagedAssets) -> str:
    """The directory to import from: the staged copy's files, or ``path`` itself."""
    staged = place.paths.get("code")
    if staged is not None:
        return os.path.join(staged, CODE_DIR)
    return os.path.abspath(str(ctx.workload["path"]))


def run(ctx: Context) -> Outcome:
    cfg = ctx.workload
    params = dict(cfg["params"] or {})
    with assets.stage(ctx.spec.assets) as place:
        directory = source(ctx, place)
        writes = sys.dont_write_bytecode
        sys.dont_write_bytecode = True
        try:
            outcome = _call(ctx, directory, params)
        finally:
            sys.dont_write_bytecode = writes
            if directory in sys.path:
                sys.path.remove(directory)
        outcome.info["assets"] = place.report()
    return outcome


def _call(ctx: Context, directory: str, params: dict[str, Any]) -> Outcome:
    """Import the entry, call it, and turn what it collected into the kind's outcome."""
    started = time.perf_counter()
    function = userentry.load(directory, ctx.workload["entry"])
    import_s = time.perf_counter() - started
    user = RunContext(ctx, params)
    before, began = CpuState.now(), time.perf_counter()
    try:
        function(user, **params)
    except BaseException:
        collected(user)  # the loop closed: its CPU and GPU marks are not left open
        raise
    ended, after = time.perf_counter(), CpuState.now()
    found = collected(user, returned=True)
    whole = LoopResult(found.warmup_times, [], [], ended - began, before, after)
    outcome = _outcome(found, whole)
    outcome.info["python"] = {
        "entry": ctx.workload["entry"],
        "directory": directory,
        "import_s": import_s,
        "ready": found.ready,
        "loop": None if found.plan is None else asdict(found.plan),
    }
    return outcome


def _outcome(found: Collected, whole: LoopResult) -> Outcome:
    """Metrics of the measured phase (the loop, else the whole call) and the user's own."""
    loop = found.loop
    metrics: dict[str, dict[str, Any]] = {}
    absent: dict[str, str] = {}
    info: dict[str, Any] = {}
    if loop is None or not loop.measured_times:
        reason = NOT_CALLED if found.plan is None else NONE_DONE
        absent["python.iteration_s"] = absent["python.throughput"] = reason
        if found.plan is None:
            info["measured_iterations"] = None  # the verdict's count does not apply
        loop, raw = whole, {"warmup_iteration_s": whole.warmup_times}
    else:
        assert found.plan is not None
        times = loop.measured_times
        metrics["python.iteration_s"] = metric(median(times), "s")
        items = found.plan.items_per_iteration
        if items is None:
            absent["python.throughput"] = NO_ITEMS
        else:
            unit = f"{found.plan.unit or 'items'}/s"
            metrics["python.throughput"] = metric(items * len(times) / sum(times), unit)
        raw = {"iteration_s": times, "warmup_iteration_s": loop.warmup_times}
    metrics.update(found.metrics)  # the user's own, after the kind's
    absent.update(found.absent)
    return Outcome(loop=loop, metrics=metrics, raw=raw, info=info, absent=absent)
