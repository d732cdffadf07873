"""One MLPerf LoadGen test in this process: its settings, the system under test, the run.

LoadGen decides when each query is issued (one after another, Poisson arrivals at a target
rate, or everything at once) and times every sample itself; the system under test here only
queues what it is given and answers it. One worker thread runs the model on up to
``max_batch`` queued samples per forward, so a server that cannot keep up builds a queue and
its latencies grow, as a real one's would. Every clock involved is this process's: nothing
measured here is ever compared with another machine's time.

``mlperf_loadgen`` is imported when a test runs, so the rest of the worker does not need it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workloads.loop import stretch

SCENARIOS = {
    "single_stream": "SingleStream",
    "multi_stream": "MultiStream",
    "server": "Server",
    "offline": "Offline",
}
MS = 1000
NS = 1_000_000_000

Forward = Callable[[Sequence[int]], None]
"""Runs the model on the loaded samples at these indices and returns when the result is
ready (device work synchronised)."""


@dataclass(frozen=True)
class Plan:
    """What LoadGen is asked to do, in the suite's units (seconds), before it is converted to
    LoadGen's own (milliseconds, nanoseconds)."""

    scenario: str
    min_query_count: int
    seed: int
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    target_qps: float | None = None
    target_latency_s: float | None = None
    samples_per_query: int | None = None
    expected_latency_s: float | None = None

    def record(self) -> dict[str, Any]:
        """The settings as given to LoadGen, for the cell's info."""
        return {k: v for k, v in self.__dict__.items() if v is not None and k != "scenario"}


def test_settings(lg: Any, plan: Plan) -> Any:
    """LoadGen's ``TestSettings`` for ``plan``, performance mode.

    The expected latency (single and multi stream) is what the warmup measured: LoadGen
    generates twice the queries that latency predicts for ``min_duration_s``, and a guess far
    off would end the test early (INVALID) or generate far too many queries.
    """
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, SCENARIOS[plan.scenario])
    settings.mode = lg.TestMode.PerformanceOnly
    settings.min_query_count = plan.min_query_count
    settings.min_duration_ms = round((plan.min_duration_s or 0.0) * MS)
    settings.max_duration_ms = round((plan.max_duration_s or 0.0) * MS)  # 0: no bound
    settings.qsl_rng_seed = settings.sample_index_rng_seed = plan.seed
    settings.schedule_rng_seed = plan.seed
    expected = max(plan.expected_latency_s or 0.0, 1e-6) * NS
    if plan.scenario == "single_stream" and plan.expected_latency_s:
        settings.single_stream_expected_latency_ns = round(expected)
    if plan.scenario == "multi_stream":
        settings.multi_stream_samples_per_query = plan.samples_per_query or 1
        if plan.expected_latency_s:
            settings.multi_stream_expected_latency_ns = round(expected)
    if plan.scenario == "server":
        settings.server_target_qps = float(plan.target_qps or 1.0)
        settings.server_target_latency_ns = round((plan.target_latency_s or 0.0) * NS)
    if plan.scenario == "offline" and plan.target_qps:
        settings.offline_expected_qps = float(plan.target_qps)
    return settings


def log_settings(lg: Any, outdir: Path, trace: bool) -> Any:
    """Logs to ``outdir``, nothing on stdout (the worker's stdout carries its events)."""
    settings = lg.LogSettings()
    settings.log_output.outdir = str(outdir)
    settings.log_output.copy_summary_to_stdout = False
    settings.log_output.copy_detail_to_stdout = False
    settings.enable_trace = trace
    return settings


@dataclass
class QueueSut:
    """The system under test: ``issue`` queues samples (LoadGen's thread), one worker thread
    answers them in order, up to ``max_batch`` per forward.

    A forward that raises stops the model; every sample still queued or issued later is
    answered at once so LoadGen finishes, and the error is raised when the test returns.
    """

    lg: Any
    forward: Forward
    max_batch: int
    scope: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    on_forward: Callable[[], None] = lambda: None
    slowdown: float = 0.0
    forward_times: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._queue: deque[Any] = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="loadgen-sut", daemon=True)

    def issue(self, samples: list[Any]) -> None:
        with self._ready:
            self._queue.extend(samples)
            self._ready.notify()

    def flush(self) -> None:
        """LoadGen's "no more queries": nothing to do, the queue drains on its own."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join()

    def _take(self) -> list[Any] | None:
        with self._ready:
            while not self._queue and not self._stopping:
                self._ready.wait()
            if not self._queue:
                return None
            count = min(self.max_batch, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _serve(self) -> None:
        with self.scope():
            while (batch := self._take()) is not None:
                if self.error is None:
                    self._run(batch)
                self.lg.QuerySamplesComplete(
                    [self.lg.QuerySampleResponse(s.id, 0, 0) for s in batch]
                )

    def _run(self, batch: list[Any]) -> None:
        clock = time.perf_counter
        started = clock()
        try:
            self.forward([s.index for s in batch])
        except BaseException as exc:  # raised again in the main thread, after the test
            self.error = exc
            return
        if self.slowdown:
            stretch(started, self.slowdown)
        self.forward_times.append(clock() - started)
        self.batch_sizes.append(len(batch))
        self.on_forward()


@dataclass
class Finished:
    """What one test left: the log directory (removed by the caller) and the SUT's timings."""

    outdir: Path
    forward_times: list[float]
    batch_sizes: list[int]
    window_s: float


def run(
    plan: Plan,
    samples: int,
    sut: Callable[[Any], QueueSut],
    trace: bool,
    between: Callable[[str], None] = lambda _: None,
) -> Finished:
    """Run LoadGen's performance test of ``plan`` over ``samples`` loaded inputs.

    ``sut`` builds the system under test given the ``mlperf_loadgen`` module; ``between``
    is called with "start" right before LoadGen starts and "end" right after it returns (the
    CPU and GPU readings that bound the measured phase). The log directory is returned and
    must be removed by the caller (``cleanup``).
    """
    import mlperf_loadgen as lg

    outdir = Path(tempfile.mkdtemp(prefix="bench-loadgen-"))
    try:
        system = sut(lg)
        window = _start(lg, system, plan, samples, log_settings(lg, outdir, trace), between)
        if system.error is not None:
            raise system.error
    except BaseException:
        shutil.rmtree(outdir, ignore_errors=True)
        raise
    return Finished(outdir, system.forward_times, system.batch_sizes, window)


def _start(
    lg: Any,
    system: QueueSut,
    plan: Plan,
    samples: int,
    logs: Any,
    between: Callable[[str], None],
) -> float:
    """Run the test with ``system`` answering; the seconds LoadGen's test took."""
    handle = lg.ConstructSUT(system.issue, system.flush)
    qsl = lg.ConstructQSL(samples, samples, lambda _: None, lambda _: None)
    system.start()
    try:
        between("start")
        started = time.perf_counter()
        lg.StartTestWithLogSettings(handle, qsl, test_settings(lg, plan), logs, "")
        window = time.perf_counter() - started
        between("end")
    finally:
        system.stop()
        lg.DestroyQSL(qsl)
        lg.DestroySUT(handle)
    return window


def cleanup(finished: Finished) -> None:
    shutil.rmtree(finished.outdir, ignore_errors=True)
