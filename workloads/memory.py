"""Peak resident memory of the worker's whole process tree, measured inside the target.

``getrusage(RUSAGE_SELF).ru_maxrss`` only covers the worker itself, but a data_loading
workload forks DataLoader processes whose memory the host-side probes do count (they sum RSS
over the deployment's processes). Were the worker to report only its own peak, the children's
memory would show up in "host bytes − worker peak" as isolation overhead. So the worker reports
the same quantity the host measures: resident memory (``statm`` field 2) summed over itself and
every descendant, sampled at 10 Hz, with its own kernel high-water mark (``VmHWM``, else
``ru_maxrss``) as a floor because a spike shorter than the interval is missed by sampling but
never by the kernel.

Standard library only: this runs on the target, before and without torch.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

PROC = Path("/proc")


def self_peak_bytes() -> int | None:
    """Kernel high-water mark of this process's own RSS, or None where it cannot be read.

    ``VmHWM`` first: it belongs to the address space made at exec. ``ru_maxrss`` also carries
    the high-water mark of the process that spawned this one (the kernel folds the old
    address space's peak in at exec, vfork included), so a worker started by a large parent
    would report the parent's size. It is only the fallback where /proc is missing.
    """
    try:
        for line in (PROC / "self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def task_children(pid: int) -> list[int] | None:
    """Children of ``pid`` from every thread's ``children`` file; None if the kernel lacks them.

    Each thread lists only the children it forked itself, so all threads must be read: torch
    may start DataLoader workers from any thread.
    """
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return []
    out: list[int] = []
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            if task.exists():
                return None  # thread alive but no children file: CONFIG_PROC_CHILDREN is off
        except (OSError, ValueError):
            continue
    return out


def _parents() -> dict[int, list[int]]:
    """Parent → children map from every ``/proc/<pid>/stat``: the slow fallback."""
    tree: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all of its descendants, root first."""
    by_parent: dict[int, list[int]] | None = None
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        kids = None if by_parent is not None else task_children(current)
        if kids is None:
            by_parent = by_parent if by_parent is not None else _parents()
            kids = by_parent.get(current, [])
        stack += kids
    return pids


def resident_bytes(pid: int, page: int) -> int | None:
    """RSS of one process from ``statm`` (microseconds, unlike ``smaps``), None if it is gone."""
    try:
        return int((PROC / str(pid) / "statm").read_text().split()[1]) * page
    except (OSError, ValueError, IndexError):
        return None


def tree_resident_bytes(pid: int) -> int | None:
    """Summed RSS of ``pid`` and its descendants; None when ``pid`` itself cannot be read."""
    page = os.sysconf("SC_PAGE_SIZE")
    sizes = [resident_bytes(p, page) for p in tree_pids(pid)]
    if not sizes or sizes[0] is None:
        return None
    return sum(s for s in sizes if s is not None)


class TreePeakSampler:
    """Keeps the peak of ``tree_resident_bytes(os.getpid())`` while the spec runs.

    A sample is taken on ``start`` and on ``stop`` as well as every ``interval`` seconds, so
    even a run shorter than one interval has a tree measurement.
    """

    def __init__(self, interval: float = 0.1, pid: int | None = None) -> None:
        self.interval = interval
        self.pid = os.getpid() if pid is None else pid
        self.tree_peak: int | None = None
        self.samples = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="tree-peak", daemon=True)

    def start(self) -> TreePeakSampler:
        """Take a first sample and begin sampling in a daemon thread."""
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling after one last sample; safe to call twice."""
        if not self._stop.is_set():
            self._stop.set()
            if self._thread.is_alive():
                self._thread.join(2.0)
            self._sample()

    @property
    def peak(self) -> int | None:
        """Tree peak floored by this process's own high-water mark; None when neither is known."""
        known = [v for v in (self.tree_peak, self_peak_bytes()) if v is not None]
        return max(known) if known else None

    @property
    def reason(self) -> str | None:
        """Why ``peak`` is None, else None."""
        if self.peak is not None:
            return None
        return "neither /proc nor getrusage is available on this platform"

    def _sample(self) -> None:
        size = tree_resident_bytes(self.pid)
        if size is None:
            return
        with self._lock:
            self.samples += 1
            self.tree_peak = size if self.tree_peak is None else max(self.tree_peak, size)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()
