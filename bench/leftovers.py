"""What a killed run left behind: the protocol between ``bench gc`` and the target kinds.

A controller that dies from SIGKILL or a power cut cannot clean up. Everything it created
names its owner (``bench.owner``), by a mark of its own (a container label, a QEMU guest's
owner file, a worker directory's marker file) or in the invocation's record (``bench.state``).
Each target kind that leaves something behind offers a ``Collector`` (``Kind.collector``):
it removes the record items of its own kinds and finds its marked artefacts. ``bench.gc``
only orchestrates: it skips the records of live runs, hands each item to its collector in
teardown order, rewrites the records, and lets every collector sweep once.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench import owner
from bench.errors import BenchError

# Teardown stages, in the order gc runs them: worker processes first, then the run directories
# they worked in, then the machines holding those directories (a stopped VM's disk is out of
# reach), then the engines' containers.
WORKERS, DIRECTORIES, MACHINES, ENGINES = range(4)


@dataclass
class Report:
    """What gc removed (or would remove), under each collector's headings, and what it could
    not remove."""

    removed: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # the default engine, when absent


@dataclass
class Sweep:
    """One ``bench gc`` pass: its options, and the report every collector adds to."""

    everything: bool  # --all: also what live runs own
    dry_run: bool
    docker_host: str | None  # --docker-host: the engine to check besides the recorded ones
    report: Report

    def spares(self, token: str | None, label: str | None = None) -> bool:
        """Whether an artefact stays because its owner still runs (never with ``--all``)."""
        return not self.everything and owned_by_live(token, label)

    def take(self, heading: str, remove: Callable[[], str]) -> bool:
        """Run one removal, which returns what it removed (or would); a failure is reported
        as a problem. Whether it succeeded."""
        try:
            self.report.removed[heading].append(remove())
        except BenchError as exc:
            self.report.problems.append(exc.one_line())
            return False
        return True


class Collector(Protocol):
    """How ``bench gc`` cleans up after one target kind; a fresh one per pass."""

    stage: int  # WORKERS, DIRECTORIES, MACHINES or ENGINES
    headings: tuple[str, ...]  # what gc counts, in its output order: "container(s)"
    records: tuple[str, ...]  # the kinds of record items it removes: "docker_engine"

    def recorded(self, item: dict[str, Any], sweep: Sweep) -> bool:
        """Remove one record item of a dead run; whether it is gone (False keeps it
        recorded for the next gc; a dry run removes nothing, so nothing is gone)."""
        ...

    def unrecorded(self, sweep: Sweep) -> None:
        """Find and remove the kind's marked artefacts wherever gc looks by default."""
        ...


def controller_alive(label: str) -> bool:
    """Whether ``host:pid`` (the label of artefacts made before owner tokens) names a process
    still running on this host; another host's controller is assumed alive."""
    host, _, pid = label.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def owned_by_live(token: str | None, label: str | None) -> bool:
    """Whether the owner token (or, for older artefacts, the controller label) is alive."""
    if token:
        return owner.alive(token)
    return controller_alive(label or "")
