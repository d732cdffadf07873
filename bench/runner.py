"""Executes a plan cell by cell, writing each result as soon as the cell ends.

A cell that fails is recorded with its error and the run goes on; Ctrl-C tears down the
current deployment (the target's context manager does that in ``finally``), keeps every
finished cell, marks the run interrupted and re-raises.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench import exposure, interrupts, metadata, pagecache, preparing
from bench.assets.staging import Staging
from bench.build import groups
from bench.build.builder import Builder
from bench.errors import BenchError, Interrupted, ResultsWriteError, WorkerError
from bench.plan import Cell, build_plan
from bench.results import CellRecord, ResultStore, Sample
from bench.suite import Suite, WorkloadBase
from bench.targets import envvars, registry
from bench.targets.base import Measurement, StartupClock, Target
from bench.verdict import judge
from workloads.spec import KINDS

STARTUP_UNIT = "s"


class Observer(Protocol):
    """Receives progress; the CLI renders it, tests may ignore it."""

    def run_started(self, cells: list[Cell]) -> None: ...
    def cell_started(self, cell: Cell) -> None: ...
    def cell_phase(self, cell: Cell, phase: str) -> None: ...
    def cell_progress(self, cell: Cell, done: int, total: int) -> None: ...
    def cell_finished(self, cell: Cell, record: CellRecord) -> None: ...
    def note(self, message: str) -> None: ...


class NullObserver:
    """Discards progress."""

    def run_started(self, cells: list[Cell]) -> None:
        """Ignored."""

    def cell_started(self, cell: Cell) -> None:
        """Ignored."""

    def cell_phase(self, cell: Cell, phase: str) -> None:
        """Ignored."""

    def cell_progress(self, cell: Cell, done: int, total: int) -> None:
        """Ignored."""

    def cell_finished(self, cell: Cell, record: CellRecord) -> None:
        """Ignored."""

    def note(self, message: str) -> None:
        """Ignored."""


@dataclass
class Outcome:
    """What one deployment produced before it was torn down."""

    clock: StartupClock = field(default_factory=StartupClock)
    result: dict[str, Any] = field(default_factory=dict)
    host: list[Measurement] = field(default_factory=list)
    error: BenchError | None = None


@dataclass
class RunSummary:
    """The end state of a run, for the CLI's exit status."""

    path: str
    cells: int
    failed: int


class Runner:
    """Runs one suite into one ``ResultStore``."""

    def __init__(
        self,
        suite: Suite,
        store: ResultStore,
        observer: Observer | None = None,
        make_target: Callable[[Any], Target] = registry.make_target,
    ) -> None:
        self.suite = suite
        self.secrets = envvars.check(suite.targets)  # a missing one stops the run before it starts
        self.store = store
        self.observer = observer or NullObserver()
        self.targets = {t.name: make_target(t) for t in suite.targets}
        self.plan = build_plan(suite)
        self.builder = Builder(
            suite.build,
            note=self.observer.note,
            groups=groups.needed(suite.workloads),
            extra=groups.requirements(suite.workloads),
        )
        self.staging = Staging(suite, self.targets, self.plan, note=self.observer.note)
        self.cancel = interrupts.Cancel()
        self._lock = threading.Lock()
        self._unprepared: dict[str, BenchError] = {}
        self._undroppable: set[str] = set()
        # whether any workload imports torch; if none does, neither does the fingerprint
        self._torch = any(KINDS[w.kind].torch for w in suite.workloads)

    def run(self, suite_path: str = "", parallel_hosts: int = 1) -> RunSummary:
        """Fingerprint, execute every cell, clean the targets up, and finalise the manifest.

        However the run ends (done, Ctrl-C, results that could not be written, a bug), the
        targets are cleaned up and the manifest says how it ended and why.
        """
        self.store.create(self._manifest(suite_path))
        ending: dict[str, Any] = {"status": "failed", "error": "the controller stopped"}
        try:
            failed = self._execute(parallel_hosts)
            ending = {"status": "complete" if failed == 0 else "failed"}
        except KeyboardInterrupt:
            ending = {"status": "interrupted"}
            raise Interrupted(
                f"interrupted; {len(self.store.cells)} finished cells kept in {self.store.path}"
            ) from None
        except BenchError as exc:  # results that cannot be written (disk full)
            ending = {"status": "failed", "error": exc.one_line()}
            raise
        except BaseException as exc:
            ending["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._finish(ending)
        return RunSummary(str(self.store.path), len(self.plan), failed)

    def _execute(self, parallel_hosts: int) -> int:
        """Prepare, fingerprint and run every cell; the number of cells that failed."""
        targets = self._prepare()
        self.store.update_manifest(targets=targets, build=self.builder.record())
        self._fingerprints(targets)
        self.store.update_manifest(targets=targets)
        assets = self.staging.prepare(self.builder, self._unprepared, self.store.run_id)
        self.store.update_manifest(assets=assets, build=self.builder.record())
        self.observer.run_started(self.plan)
        if parallel_hosts > 1:
            return self._execute_parallel(parallel_hosts)
        return sum(self._run_cell(cell).status != "ok" for cell in self.plan)

    def _finish(self, ending: dict[str, Any]) -> None:
        """Clean the targets up, then write the final manifest, Ctrl-C held meanwhile.

        When the run is already failing, a manifest that cannot be written is not the error
        to report (the one under way says more); after a good run it is.
        """
        with interrupts.deferred():
            problems = self._cleanup()
            fields = {**ending, "finished_at": metadata.now_iso()}
            if problems:
                fields["cleanup_errors"] = problems
            try:
                self.store.finish(**fields)
            except ResultsWriteError:
                if ending["status"] == "interrupted" or "error" in ending:
                    return
                raise

    def _execute_parallel(self, workers: int) -> int:
        """Cells on different hosts run concurrently; cells of one host stay serial, in order."""
        lanes: dict[str, list[Cell]] = {}
        for cell in self.plan:
            lanes.setdefault(self.targets[cell.target].host_id(), []).append(cell)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host") as pool:
            futures = [pool.submit(self._run_lane, cells) for cells in lanes.values()]
            try:
                while not all(f.done() for f in futures):
                    wait(futures, timeout=0.2)
            except KeyboardInterrupt:
                self.cancel.set()  # running deployments tear down; queued cells are skipped
                wait(futures)
                raise
        errors = [f.exception() for f in futures if f.exception() is not None]
        for exc in sorted(errors, key=lambda e: isinstance(e, KeyboardInterrupt)):
            raise exc  # the lane that failed first-hand, not one cancelled because of it
        return sum(f.result() for f in futures)

    def _run_lane(self, cells: list[Cell]) -> int:
        """One host's cells, one after another; the number that failed. A lane that stops on
        an error (results that cannot be written) cancels the others."""
        failed = 0
        try:
            with interrupts.cancellable(self.cancel):
                for cell in cells:
                    if self.cancel.is_set():
                        break
                    failed += self._run_cell(cell).status != "ok"
        except BaseException:
            self.cancel.set()
            raise
        return failed

    def _cleanup(self) -> dict[str, str]:
        """Each target removes what the run left on it; failures are returned, not raised."""
        problems = {}
        for name, target in self.targets.items():
            try:
                target.cleanup(self.store.run_id)
            except BenchError as exc:
                problems[name] = exc.one_line()
        return problems

    def _manifest(self, suite_path: str) -> dict[str, Any]:
        return {
            "status": "running",
            "created_at": metadata.now_iso(),
            "suite_path": suite_path,
            "suite": self.suite.model_dump(mode="json"),
            "matrix": self.suite.swept,
            "security_warnings": exposure.warnings(self.suite),
            "cache": self.suite.cache,
            "controller": metadata.controller(),
            "host": metadata.host_fingerprint(),
            "plan": [c.to_dict() for c in self.plan],
        }

    def _prepare(self) -> dict[str, Any]:
        """Build or pull what each target needs, before any clock starts.

        Targets are prepared side by side (``preparing.concurrently``): on a fresh machine the
        wheels download while the offline base is made, and the image and the guest disk build
        together. A target that cannot be prepared is recorded; its cells fail with that reason
        and the other targets still run.
        """
        entries = preparing.concurrently(
            {name: self._prepare_one(name, target) for name, target in self.targets.items()}
        )
        return dict(entries)

    def _prepare_one(self, name: str, target: Target) -> Callable[[], dict[str, Any]]:
        def prepare() -> dict[str, Any]:
            entry: dict[str, Any] = {"kind": target.config.kind}
            try:
                entry["artefacts"] = target.prepare(self.builder)
            except BenchError as exc:
                self._unprepared[name] = exc
                entry["prepare_error"] = envvars.redact(exc.one_line(), self.secrets)
            return entry

        return prepare

    def _fingerprints(self, entries: dict[str, Any]) -> None:
        """Each prepared target's environment; a failure is recorded, its cells still run."""
        for name, target in self.targets.items():
            if name in self._unprepared:
                continue
            try:
                entries[name]["fingerprint"] = target.fingerprint(self.store.run_id, self._torch)
            except BenchError as exc:
                entries[name]["fingerprint_error"] = envvars.redact(exc.one_line(), self.secrets)
                continue
            for check in entries[name]["fingerprint"].get("environment") or []:
                if check.get("status") == "warn":
                    self.observer.note(
                        f"{name}: {check['check']}: {check['value']} (fix: {check['fix']})"
                    )

    def _run_cell(self, cell: Cell) -> CellRecord:
        target = self.targets[cell.target]
        workload = self.suite.workload(cell.workload)
        started_at, start = metadata.now_iso("milliseconds"), time.monotonic()
        self.observer.cell_started(cell)
        cache_state = self._drop_caches(cell, target)
        outcome = self._deploy(cell, target, workload)
        record = _record(cell, target, workload.kind, outcome, started_at, start)
        record.error = envvars.redact(record.error, self.secrets)  # a worker may print one
        record.stderr_tail = envvars.redact(record.stderr_tail, self.secrets)
        record.info = envvars.redact_all(record.info, self.secrets)
        if cache_state is not None:
            record.info["cache"] = cache_state
        verdict = judge(record.error, record.info, self.suite.min_iterations)
        record.verdict, record.reasons = verdict.label, verdict.reasons
        samples = _samples(self.store.run_id, record, outcome)
        raw = {"cell": record.slug, **outcome.result.get("raw", {}), **_host_raw(outcome)}
        with self._lock, interrupts.deferred():
            self.store.add_cell(record, samples, raw, outcome.result.get("files"))
            self.observer.cell_finished(cell, record)
        return record

    def _drop_caches(self, cell: Cell, target: Target) -> dict[str, Any] | None:
        """With ``cache: cold``, drop the page cache before the deployment, off every clock."""
        if self.suite.cache != "cold" or cell.target in self._unprepared:
            return None
        self.observer.cell_phase(cell, "dropping caches")
        began = time.monotonic()
        reason = target.drop_caches()
        self.observer.cell_phase(cell, "provisioning")
        if reason is not None and cell.target not in self._undroppable:
            self._undroppable.add(cell.target)
            self.observer.note(f"{cell.target}: cache: cold: page cache not dropped: {reason}")
        return pagecache.record("cold", reason, time.monotonic() - began)

    def _deploy(self, cell: Cell, target: Target, workload: WorkloadBase) -> Outcome:
        outcome = Outcome()
        if cell.target in self._unprepared:
            outcome.error = self._unprepared[cell.target]
            return outcome
        try:
            spec = _spec(workload, self.suite.seed + cell.repetition)
            spec = self.staging.spec(spec, cell.target, cell.workload)
            with target.deploy(spec, self.store.run_id) as deployment:
                outcome.clock.mark("provision")
                self.observer.cell_phase(cell, "provisioned")
                deadline = time.monotonic() + workload.timeout_s
                for event in deployment.events(deadline, self.cancel):
                    self._on_event(cell, event, outcome)
                outcome.host = deployment.host_measurements()
        except BenchError as exc:
            outcome.error = exc
        return outcome

    def _on_event(self, cell: Cell, event: dict[str, Any], outcome: Outcome) -> None:
        kind = event.get("event")
        if kind in ("ready", "first_step"):
            outcome.clock.mark(kind)
            self.observer.cell_phase(cell, kind)
        elif kind == "progress":
            self.observer.cell_progress(cell, int(event["done"]), int(event["total"]))
        elif kind == "result":
            outcome.result = event


def _spec(workload: WorkloadBase, seed: int) -> dict[str, Any]:
    """What the worker is told: the workload's options (less the controller's timeout), a seed."""
    options = workload.model_dump(mode="json", exclude={"timeout_s"})
    return {"workload": options, "seed": seed, "progress_every_s": 0.5}


def _record(
    cell: Cell, target: Target, workload_kind: str, outcome: Outcome, started_at: str, start: float
) -> CellRecord:
    absent = dict(outcome.result.get("absent", {}))
    absent.update({m.metric: m.reason for m in outcome.host if m.value is None and m.reason})
    error = outcome.error
    return CellRecord(
        cell=cell.index,
        target=cell.target,
        kind=target.config.kind,
        workload=cell.workload,
        workload_kind=workload_kind,
        repetition=cell.repetition,
        status="failed" if error else "ok",
        started_at=started_at,
        finished_at=metadata.now_iso("milliseconds"),
        duration_s=time.monotonic() - start,
        error=error.one_line() if error else None,
        stderr_tail=error.stderr_tail if isinstance(error, WorkerError) else None,
        startup=outcome.clock.durations(),
        absent=absent,
        info=outcome.result.get("info", {}),
    )


def _host_raw(outcome: Outcome) -> dict[str, Any]:
    """The controller's own series: when each start-up phase ended and each probe's timeline,
    all in seconds since the deploy request, so they line up with each other."""
    origin = outcome.clock.started
    timelines = {
        m.metric: {
            "t_s": [round(t - origin, 4) for t, _ in m.timeline],
            "value": [v for _, v in m.timeline],
            "unit": m.unit,
        }
        for m in outcome.host
        if m.timeline
    }
    marks = {phase: round(t - origin, 4) for phase, t in outcome.clock.marks.items()}
    return {"startup_marks_s": marks, "host_timelines": timelines}


def _samples(run_id: str, record: CellRecord, outcome: Outcome) -> list[Sample]:
    """Measured values of a successful cell: start-up, worker metrics, host probes."""
    if record.status != "ok":
        return []
    values = [(f"startup.{k}_s", v, STARTUP_UNIT) for k, v in record.startup.items()]
    metrics = outcome.result.get("metrics", {})
    values += [(name, m["value"], m["unit"]) for name, m in metrics.items()]
    values += [(m.metric, m.value, m.unit) for m in outcome.host if m.value is not None]
    return [
        Sample(
            run_id=run_id,
            target=record.target,
            kind=record.kind,
            workload=record.workload,
            workload_kind=record.workload_kind,
            repetition=record.repetition,
            metric=name,
            value=float(value),
            unit=unit,
            cell=record.cell,
        )
        for name, value, unit in values
    ]
