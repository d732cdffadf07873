"""The context a ``kind: python`` workload's entry receives: ``run(ctx, **params)``.

The user's function builds what it needs (model, data, DataLoader), says when start-up is
over, and lets bench time the iterations it asks for; everything else bench measures around
it as for its own kinds (start-up phases, memory, CPU and GPU sampling, the verdict)::

    def run(ctx, batch_size=32, steps=50):
        model = build_model().to(ctx.device)
        loader = make_loader(batch_size, seed=ctx.seed)
        ctx.ready()                                   # start-up ends here
        batches = iter(loader)
        for _ in ctx.iterations(steps, warmup=5, items_per_iteration=batch_size,
                                unit="images"):
            train_step(model, next(batches))          # each iteration timed
        ctx.record("accuracy", evaluate(model))       # stored as user.accuracy

``ctx.device``
    The ``torch.device`` the suite's ``device`` option resolved to (``auto``: CUDA when
    available). An explicit ``cuda`` on a host without one fails before the entry is called.
``ctx.seed``
    The repetition's seed (the suite's seed plus the repetition number). torch, numpy and
    ``random`` are already seeded with it; seed your own generators from it.
``ctx.params``
    A copy of the workload's ``params`` (the same values the function receives as keywords).
``ctx.dtype``
    The ``torch.dtype`` of the suite's ``dtype`` option (float32 unless set).
``ctx.ready()``
    Ends start-up: ``startup.ready_s`` is the time from the deploy request to this call.
    Called for you at the first iteration (or when the function returns) if you do not; a
    second call does nothing.
``ctx.iterations(n, warmup=0, items_per_iteration=None, unit=None)``
    Yields ``warmup + n`` indices (0, 1, ...): the loop body is one iteration. The first
    ``warmup`` are untimed in the statistics; each of the ``n`` others is timed from the
    moment the index is handed out until the next one is asked for, after a device
    synchronize on CUDA so queued GPU work is counted. Gives ``python.iteration_s`` (median
    seconds per measured iteration), the raw series ``iteration_s`` and, with
    ``items_per_iteration``, ``python.throughput`` in ``<unit>/s`` (``items/s`` by default).
    Call it once per run; leaving the loop early keeps the iterations that completed.
``ctx.record(name, value, unit="")``
    One value of your own metric, stored as ``user.<name>`` with the other metrics of the
    repetition (summaries, reports and comparisons show it). ``name``: 1 to 64 of
    ``A-Z a-z 0-9 _ . -``; ``value``: a finite number (a 1-element tensor is accepted);
    each name once per run.
``ctx.absent(name, reason)``
    Says that ``user.<name>`` could not be measured in this run, and why: bench records a
    metric it cannot measure as absent with its reason, never as zero.

Without ``ctx.iterations`` the function is still run and timed as a whole (CPU use covers the
call), ``python.iteration_s`` is absent with the reason, and the verdict does not count
iterations: the ``user.*`` metrics are then the measurements.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workloads.common import metric, synchronizer, torch_dtype
from workloads.context import Context
from workloads.cpustate import CpuState
from workloads.loop import LoopResult, injected_slowdown, stretch

if TYPE_CHECKING:
    import torch

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_UNIT = 32


@dataclass(frozen=True)
class LoopPlan:
    """What the entry asked ``ctx.iterations`` for."""

    n: int
    warmup: int
    items_per_iteration: float | None
    unit: str | None


@dataclass
class Collected:
    """What the entry's calls left behind, for ``workloads.python`` to turn into metrics."""

    ready: str | None = None  # how start-up ended: "ctx.ready()", "first iteration", "return"
    plan: LoopPlan | None = None
    loop: LoopResult | None = None  # None until a measured iteration began
    warmup_times: list[float] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    generator: Generator[int, None, None] | None = None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _count(name: str, value: Any, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"ctx.iterations: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def _finite(what: str, value: Any) -> float:
    """``value`` as a float: any real number, a numpy scalar or a 1-element tensor."""
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"{what} must be a finite number, got {_short(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{what} must be a finite number, got {_short(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {number}")
    return number


def _unit(what: str, unit: Any) -> str:
    if not isinstance(unit, str) or len(unit) > MAX_UNIT or not unit.isprintable():
        raise ValueError(f"{what} must be a printable string of at most {MAX_UNIT} characters")
    return unit


def _metric_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"{what}: name must be 1 to 64 of A-Z a-z 0-9 _ . -, got {name!r}")
    return name


class RunContext:
    """``ctx``: what bench gives a ``kind: python`` entry (documented in the module)."""

    def __init__(self, ctx: Context, params: dict[str, Any]) -> None:
        self._ctx = ctx
        self._params = params
        self._collected = Collected()

    @property
    def device(self) -> torch.device:
        return self._ctx.device

    @property
    def seed(self) -> int:
        return self._ctx.spec.seed

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def dtype(self) -> torch.dtype:
        return torch_dtype(self._ctx.workload["dtype"])

    def ready(self) -> None:
        """End start-up now (see the module); later calls do nothing."""
        self._ready("ctx.ready()")

    def _ready(self, how: str) -> None:
        if self._collected.ready is None:
            self._collected.ready = how
            self._ctx.ready(str(self._ctx.device))

    def iterations(
        self,
        n: int,
        warmup: int = 0,
        items_per_iteration: float | None = None,
        unit: str | None = None,
    ) -> Iterator[int]:
        """The timed loop (see the module). Arguments are checked here, before any
        iteration, so a mistake fails at once rather than after the warmup."""
        _count("n", n, 1)
        _count("warmup", warmup, 0)
        items = None
        if items_per_iteration is not None:
            items = _finite("ctx.iterations: items_per_iteration", items_per_iteration)
            if items <= 0:
                raise ValueError("ctx.iterations: items_per_iteration must be positive")
        if unit is not None:
            if items is None:
                raise ValueError("ctx.iterations: unit names the items: give items_per_iteration")
            _unit("ctx.iterations: unit", unit)
        if self._collected.plan is not None:
            raise RuntimeError(
                "ctx.iterations() may be called once per run: its iterations are the "
                "measured phase that python.iteration_s and python.throughput describe"
            )
        self._collected.plan = LoopPlan(n, warmup, items, unit)
        self._collected.generator = self._loop(n, warmup)
        return self._collected.generator

    def _loop(self, n: int, warmup: int) -> Generator[int, None, None]:
        """Hand out indices, timing the body between two of them the way ``run_loop`` times
        a step: synchronize, stretch by any injected slowdown, then read the clock."""
        self._ready("first iteration")
        ctx, clock = self._ctx, time.perf_counter
        sync, slowdown = synchronizer(ctx.device), injected_slowdown()
        reporter, monitor = ctx.reporter(warmup + n), ctx.monitor(ctx.device)
        warm: list[float] = []
        measured: list[float] = []
        before: CpuState | None = None
        window_start = last_end = 0.0
        try:
            for index in range(warmup + n):
                if index == warmup:
                    monitor.mark("measured_start")
                    before = CpuState.now()
                    window_start = last_end = clock()
                started = clock()
                yield index
                sync()
                if slowdown:
                    stretch(started, slowdown)
                last_end = clock()
                (measured if index >= warmup else warm).append(last_end - started)
                reporter.iteration_done()
        finally:
            if before is not None:
                after = CpuState.now()
                monitor.mark("measured_end")
                window = last_end - window_start
                self._collected.loop = LoopResult(
                    warm, measured, [], window, before, after, slowdown
                )
            self._collected.warmup_times = warm

    def record(self, name: str, value: Any, unit: str = "") -> None:
        """Store ``value`` as ``user.<name>`` (see the module)."""
        key = "user." + _metric_name("ctx.record", name)
        number = _finite(f"ctx.record({name!r}): value", value)
        _unit(f"ctx.record({name!r}): unit", unit)
        self._claim(key, "ctx.record")
        self._collected.metrics[key] = metric(number, unit)

    def absent(self, name: str, reason: str) -> None:
        """Record that ``user.<name>`` was not measured, and why (see the module)."""
        key = "user." + _metric_name("ctx.absent", name)
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"ctx.absent({name!r}): reason must be a non-empty string")
        self._claim(key, "ctx.absent")
        self._collected.absent[key] = " ".join(reason.split())

    def _claim(self, key: str, how: str) -> None:
        if key in self._collected.metrics or key in self._collected.absent:
            raise ValueError(
                f"{how}: {key} was already recorded in this run; record each metric once "
                "(repetitions give it its spread)"
            )


def collected(ctx: RunContext, returned: bool = False) -> Collected:
    """What ``ctx`` collected, the timed loop closed first (an entry that kept the iterator
    past its loop, or left it early, has its completed iterations kept). ``returned``: the
    entry returned, which ends start-up if nothing did before."""
    found = ctx._collected
    if found.generator is not None:
        found.generator.close()
    if returned:
        ctx._ready("return")
    return found
