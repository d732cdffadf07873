"""Memory of a process tree as the host sees it, sampled in the background.

The worker reports its own peak RSS from inside; this probe measures what the *host* pays for
the whole deployment (the worker plus its DataLoader processes, later a QEMU process or a
container's shim): resident memory summed over the process tree, so pages that forked
processes share are counted in each of them (an upper bound, like ``ps`` and ``top`` show).
"""

from __future__ import annotations

import os

from bench.probes.sampler import PeriodicSampler
from workloads.memory import resident_bytes, tree_resident_bytes

PAGE = os.sysconf("SC_PAGE_SIZE")


def process_bytes(pid: int) -> int | None:
    """Resident memory of one process, or None if it is gone.

    RSS from ``statm`` costs microseconds whatever the process size; PSS from ``smaps_rollup``
    walks every page table and costs milliseconds for a torch process, which at 10 Hz would
    steal measurable CPU from the workload being measured. The reading is the worker's own
    (``workloads.memory``), so host and worker measure the same quantity the same way.
    """
    return resident_bytes(pid, PAGE)


def tree_bytes(pid: int) -> int | None:
    """Memory of the whole tree rooted at ``pid``; None when the root is gone."""
    return tree_resident_bytes(pid)


class TreeMemorySampler(PeriodicSampler):
    """Samples ``tree_bytes`` every ``interval`` seconds and keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(interval, "tree-memory")
        self.pid = pid
        self.peak: int | None = None
        self.samples = 0

    def start(self) -> TreeMemorySampler:
        """Begin sampling in a daemon thread."""
        self._begin()
        return self

    def _sample(self) -> None:
        size = tree_bytes(self.pid)
        if size is not None:
            self.samples += 1
            self.peak = size if self.peak is None else max(self.peak, size)
            self._record(size)


def pss_bytes(pid: int) -> int | None:
    """Proportional set size of one process (shared pages split among their users), or None
    if it is gone. Used for a QEMU process: its guest RAM is private, its libraries are not."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


class PssSampler(PeriodicSampler):
    """Samples one process's PSS every ``interval`` seconds and keeps the peak.

    Reading PSS walks the page tables (milliseconds for a guest with gigabytes of RAM), so the
    default rate is 2 Hz: a guest's resident memory only grows while it runs, because QEMU
    keeps guest pages once touched, so the peak is not missed between samples.
    """

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(interval, "pss")
        self.pid = pid
        self.peak: int | None = None

    def start(self) -> PssSampler:
        """Begin sampling in a daemon thread."""
        self._begin()
        return self

    def sample_now(self) -> None:
        """One more sample (before the process is torn down)."""
        self._sample()

    def _sample(self) -> None:
        size = pss_bytes(self.pid)
        if size is not None:
            self.peak = size if self.peak is None else max(self.peak, size)
            self._record(size)
