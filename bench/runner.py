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
from dataclasses import dataclass
from typing import Any, Protocol

from bench import exposure, interrupts, metadata, pagecache, preparing
from bench.assets.staging import Staging
from bench.build import groups
from bench.build.builder import Builder
from bench.errors import BenchError, Interrupted, ResultsWriteError
from bench.outcome import Outcome
from bench.phases import Phases
from bench.plan import Cell, build_plan, fit
from bench.results import CellRecord, ResultStore
from bench.suite import Suite, WorkloadBase
from bench.targets import envvars, registry
from bench.targets.base import Target
from bench.verdict import judge
from workloads.spec import KINDS


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
        phases = Phases()
        with phases.timed("prepare"):
            targets = self._prepare()
        self._fit_plan(targets)
        self.store.update_manifest(targets=targets, build=self.builder.record())
        with phases.timed("fingerprint"):
            self._fingerprints(targets)
        self.store.update_manifest(targets=targets, phases_s=phases.seconds)
        with phases.timed("stage"):
            assets = self.staging.prepare(self.builder, self._unprepared, self.store.run_id)
        self.store.update_manifest(assets=assets, build=self.builder.record())
        self.observer.run_started(self.plan)
        with phases.timed("cells"):
            if parallel_hosts > 1:
                failed = self._execute_parallel(parallel_hosts)
            else:
                failed = sum(self._run_cell(cell).status != "ok" for cell in self.plan)
        self.store.update_manifest(phases_s=phases.seconds)
        return failed

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
        """Build or pull what each target needs, before any clock starts, side by side
        (``preparing.prepare``); a target that cannot be prepared is recorded, its cells fail
        with that reason and the other targets still run."""
        entries, self._unprepared = preparing.prepare(self.targets, self.builder, self.secrets)
        return entries

    def _fit_plan(self, entries: dict[str, Any]) -> None:
        """Fewer repetitions for a target whose preparation asks for them (a VM under TCG
        with ``tcg_repetitions``), said and recorded in the manifest's plan."""
        fitted, notes = fit(self.plan, self.suite, entries)
        for note in notes:
            self.observer.note(note)
        if fitted != self.plan:
            self.plan = fitted
            self.store.update_manifest(plan=[c.to_dict() for c in self.plan])

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
        record = outcome.record(cell, target.config.kind, workload.kind, started_at, start)
        record.error = envvars.redact(record.error, self.secrets)  # a worker may print one
        record.stderr_tail = envvars.redact(record.stderr_tail, self.secrets)
        record.info = envvars.redact_all(record.info, self.secrets)
        if cache_state is not None:
            record.info["cache"] = cache_state
        verdict = judge(record.error, record.info, self.suite.min_iterations)
        record.verdict, record.reasons = verdict.label, verdict.reasons
        samples = outcome.samples(self.store.run_id, record)
        raw = {"cell": record.slug, **outcome.result.get("raw", {}), **outcome.host_raw()}
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
