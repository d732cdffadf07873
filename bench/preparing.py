"""Running the targets' preparations side by side, with Ctrl-C still reaching the controller.

Preparation is mostly waiting (downloads, ``debootstrap``, an engine building an image, apt in
a chroot), so a suite with a container and a VM target prepares in about the time of the
slower one instead of the sum. Each preparation runs in a daemon thread and the main thread
waits in short joins: Ctrl-C raises there at once and the run ends as interrupted, and the
subprocesses in the terminal's process group (debootstrap, apt) get the same SIGINT. Partial
artefacts are never used: each is built in a ``.partial`` place and renamed when complete.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from bench.errors import BenchError
from bench.targets import envvars

if TYPE_CHECKING:
    from bench.build.builder import Builder
    from bench.targets.base import Target

T = TypeVar("T")

POLL_S = 0.2


class _Job(Generic[T]):
    def __init__(self, work: Callable[[], T]) -> None:
        self.work = work
        self.result: T | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="bench-prepare")

    def _run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # handed to the main thread, raised there
            self.error = exc


def concurrently(jobs: Mapping[str, Callable[[], T]]) -> dict[str, T]:
    """Each job's result by name, the jobs run at once (one alone runs in the caller's
    thread); the first job's error, in the given order, is raised once all have ended."""
    if len(jobs) <= 1:
        return {name: work() for name, work in jobs.items()}
    running = {name: _Job(work) for name, work in jobs.items()}
    for job in running.values():
        job.thread.start()
    for job in running.values():
        while job.thread.is_alive():
            job.thread.join(POLL_S)
    for job in running.values():
        if job.error is not None:
            raise job.error
    return {name: job.result for name, job in running.items()}  # type: ignore[misc]


def prepare(
    targets: Mapping[str, Target], builder: Builder, secrets: Iterable[str]
) -> tuple[dict[str, Any], dict[str, BenchError]]:
    """Each target's manifest entry (its artefacts, or why it could not be prepared, secrets
    redacted) and the errors of those that could not, all prepared at once."""
    failed: dict[str, BenchError] = {}

    def one(name: str, target: Target) -> Callable[[], dict[str, Any]]:
        def work() -> dict[str, Any]:
            entry: dict[str, Any] = {"kind": target.config.kind}
            try:
                entry["artefacts"] = target.prepare(builder)
            except BenchError as exc:
                failed[name] = exc
                entry["prepare_error"] = envvars.redact(exc.one_line(), secrets)
            return entry

        return work

    entries = concurrently({name: one(name, target) for name, target in targets.items()})
    return entries, failed
