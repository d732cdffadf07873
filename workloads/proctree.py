"""Keeping every process a command starts within the worker's reach, and ending them all.

A command may start processes of its own (a server it benchmarks against, a shell's background
job), and some leave its session (``setsid``, a daemon's double fork), out of reach of the
signal a target sends to the worker's process group on a timeout or Ctrl-C. So while a command
runs the worker is a child subreaper (Linux ``prctl``): an orphan anywhere below it is
re-parented to the worker instead of to init, stays in the worker's process tree, and is found
and ended when the command exits or the worker is stopped. Where ``prctl`` is missing, an
orphan that went to init is out of the worker's reach; a container or a guest still ends it
with the deployment.

Standard library only: this runs on the target, without torch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from types import TracebackType

from workloads.memory import PROC, task_children, tree_pids

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
REAP_WAIT_S = 5.0  # the longest the exits of killed processes are awaited
MAX_KILL_ROUNDS = 100  # a tree that keeps forking while it is killed still ends


def _prctl(option: int, value: int) -> int | None:
    """``prctl(option, value)``'s result (for a GET, the value read), None where unavailable."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        out = ctypes.c_int(value)
        arg = ctypes.byref(out) if option == PR_GET_CHILD_SUBREAPER else ctypes.c_ulong(value)
        if libc.prctl(option, arg, 0, 0, 0) != 0:
            return None
    except (OSError, AttributeError, ImportError):
        return None
    return out.value


def children(pid: int) -> list[int]:
    """Direct children of ``pid``, from the kernel's lists or, without them, every process's
    parent."""
    kids = task_children(pid)
    if kids is not None:
        return kids
    out = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and _parent(int(entry.name)) == pid:
            out.append(int(entry.name))
    return out


def _stat(pid: int) -> list[str] | None:
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _parent(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a zombie has exited; it only awaits a
    wait() from its parent)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class Reaper:
    """While inside, this process adopts orphans; ``end_all`` (and leaving) ends every process
    the command left, its own tree and the orphans re-parented here.

    Only processes that were not this process's children on entry are touched: an in-process
    run must never signal its caller's other children. The subreaper flag is restored on exit.
    """

    def __init__(self, grace_s: float = 1.0) -> None:
        self.grace_s = grace_s
        self.adopting = False
        self._before: set[int] = set()
        self._was: int | None = None

    def __enter__(self) -> Reaper:
        me = os.getpid()
        self._before = set(children(me))
        self._was = _prctl(PR_GET_CHILD_SUBREAPER, 0)
        self.adopting = _prctl(PR_SET_CHILD_SUBREAPER, 1) is not None
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            self.end_all()
        finally:
            if self.adopting and not self._was:
                _prctl(PR_SET_CHILD_SUBREAPER, 0)

    def stray(self) -> list[int]:
        """Every live process below this one that was started since entry."""
        roots = [p for p in children(os.getpid()) if p not in self._before]
        return [p for root in roots for p in tree_pids(root) if _alive(p)]

    def _reap(self) -> None:
        """Collect the exit status of this process's own new children that have exited, so
        that they stop being listed (zombies) and are not left behind."""
        for pid in self._new_children():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)

    def _new_children(self) -> list[int]:
        return [pid for pid in children(os.getpid()) if pid not in self._before]

    def _reap_all(self) -> None:
        """Reap until no new child is left: a killed process exits asynchronously (later on a
        loaded host), and one reaped too early stays a zombie child of an in-process caller."""
        deadline = time.monotonic() + REAP_WAIT_S
        self._reap()
        while self._new_children() and time.monotonic() < deadline:
            time.sleep(0.01)
            self._reap()

    def end_all(self) -> int:
        """SIGTERM every stray process, SIGKILL whatever is left after the grace period,
        until none is left; how many processes there were."""
        ended: set[int] = set()
        pids = self.stray()
        if pids:
            ended.update(pids)
            _signal(pids, signal.SIGTERM)
            deadline = time.monotonic() + self.grace_s
            while self.stray() and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.02)
        for _ in range(MAX_KILL_ROUNDS):
            pids = self.stray()
            if not pids:
                break
            ended.update(pids)
            _signal(pids, signal.SIGKILL)
            time.sleep(0.01)
            self._reap()
        self._reap_all()
        return len(ended)
