"""What the host spends on a running Docker container, sampled from the host's /proc and cgroups.

One sample is the sum of three parts:

- ``processes``: resident memory (``statm`` field 2) summed over every process in the
  container's memory cgroup. This is the same quantity the worker reports from inside
  (``mem.rss_peak_bytes`` sums statm RSS over its process tree), so "host − worker" compares
  like with like.
- ``kernel``: the cgroup's kernel memory (v1 ``memory.kmem.usage_in_bytes``; v2 ``memory.stat``
  ``kernel``, or its parts where the kernel is too old to sum them): page tables, slab, stacks
  and sockets the kernel allocates for the container's processes and namespaces.
- ``shim``: resident memory of the process that supervises the container: Docker's
  ``containerd-shim`` or Podman's ``conmon``. It lives outside the container's cgroup, but
  exists only because the container does.
- ``sandbox``: resident memory of the runtime's own processes inside the cgroup. gVisor's
  ``runsc`` keeps its user-space kernel (the sentry, ``runsc-sandbox``) and its file proxy
  (``runsc-gofer``) there, beside the processes that hold the workload's address spaces.

So ``host − worker`` is shim + kernel memory + sandbox + any extra process inside the container
(an init, a shell wrapper): what the isolation really costs the host.

Why not the cgroup's own usage counter: page-cache pages are charged to whichever cgroup touched
them first. When the second repetition's container maps libtorch, its pages are still charged to
the first, already deleted, container, so "usage" and even "usage − cache" swing between
repetitions and do not match the RSS the worker measures inside. RSS counts mapped pages
wherever they are charged, so it is stable across repetitions.

The controller must run on the engine's host (it reads ``/proc/<pid>`` of the container's init
process); this is only used for local Docker engines.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.probes.process import process_bytes
from bench.probes.sampler import PeriodicSampler

PROC = Path("/proc")
SHIM_PREFIX = "containerd-shim"
SUPERVISORS = (SHIM_PREFIX, "conmon")
SANDBOX_PREFIX = "runsc-"  # gVisor names its sentry and gofer processes runsc-sandbox/-gofer
V2_KERNEL_PARTS = ("kernel_stack", "pagetables", "percpu", "sock", "slab")


class Unmeasurable(Exception):
    """The container's memory cannot be read; the message says why, for the absent reason."""


@dataclass(frozen=True)
class Location:
    """Where a container's memory is read, resolved once so each sample stays cheap.

    Caching the cgroup directory also guards against pid reuse: once the container is gone,
    its cgroup directory is removed and sampling stops, even if its init pid is recycled.
    """

    pid: int
    cgroup: Path
    version: int
    shim_pid: int | None


@dataclass(frozen=True)
class HostMemory:
    """One sample, with its parts so reports can say where the overhead goes."""

    processes: int
    pids: int
    kernel: int | None
    shim: int | None
    notes: tuple[str, ...] = field(default=())
    sandbox: int = 0

    @property
    def total(self) -> int:
        return self.processes + self.sandbox + (self.kernel or 0) + (self.shim or 0)


def _unescape(path: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` for a space)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def cgroup_mounts(mountinfo: str | None = None) -> list[tuple[str, str, Path, set[str]]]:
    """(fstype, root, mountpoint, super options) of every cgroup mount, from mountinfo.

    Mount points differ between hosts (v1, v2, hybrid with ``/sys/fs/cgroup/unified``, or a
    bind mount of part of the hierarchy), so they are read rather than assumed.
    """
    text = mountinfo if mountinfo is not None else (PROC / "self/mountinfo").read_text()
    mounts = []
    for line in text.splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = set(tail[2].split(","))
        mounts.append((tail[0], _unescape(fields[3]), Path(_unescape(fields[4])), options))
    return mounts


def _under(mountpoint: Path, root: str, path: str) -> Path | None:
    """The directory of cgroup ``path`` below a mount of hierarchy subtree ``root``."""
    relative = os.path.relpath(path, root)
    if relative == ".." or relative.startswith("../"):
        return None
    return mountpoint if relative == "." else mountpoint / relative


def memory_cgroup(pid: int, mountinfo: str | None = None) -> tuple[Path, int]:
    """The memory cgroup directory of ``pid`` and its cgroup version (1 or 2).

    A v1 ``memory`` line wins: on a hybrid host the unified hierarchy has no memory controller.
    """
    return controller_cgroup(pid, "memory", mountinfo)


def controller_cgroup(pid: int, controller: str, mountinfo: str | None = None) -> tuple[Path, int]:
    """The cgroup directory of ``pid`` for ``controller`` and its cgroup version (1 or 2)."""
    try:
        lines = (PROC / str(pid) / "cgroup").read_text().splitlines()
    except OSError as exc:
        raise Unmeasurable(f"process {pid} is gone ({exc.strerror})") from exc
    v1_path = v2_path = None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            v2_path = path
        elif controller in controllers.split(","):
            v1_path = path
    mounts = cgroup_mounts(mountinfo)
    candidates = []
    for fstype, root, mountpoint, options in mounts:
        if v1_path is not None and fstype == "cgroup" and controller in options:
            candidates.append((1, root, mountpoint, v1_path))
    for fstype, root, mountpoint, _ in mounts:
        if v2_path is not None and fstype == "cgroup2":
            candidates.append((2, root, mountpoint, v2_path))
    for version, root, mountpoint, path in candidates:
        directory = _under(mountpoint, root, path)
        if directory is not None and (directory / "cgroup.procs").exists():
            return directory, version
    raise Unmeasurable(
        f"no mounted {controller} cgroup for process {pid} "
        f"(v1 path {v1_path!r}, v2 path {v2_path!r}, {len(mounts)} cgroup mounts)"
    )


def _status(pid: int) -> dict[str, str]:
    text = (PROC / str(pid) / "status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _comm(pid: int) -> str | None:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return None


def _supervisor(comm: str | None) -> bool:
    return (comm or "").startswith(SUPERVISORS)


def find_shim(pid: int) -> int | None:
    """The supervising ancestor of ``pid`` (``containerd-shim*`` or Podman's ``conmon``), or
    None (another engine, or gone).

    The kernel truncates ``comm`` to 15 characters, so ``containerd-shim-runc-v2`` reads as
    ``containerd-shim``: a prefix match covers v1 and v2 shims alike.
    """
    current = pid
    while current > 1:
        try:
            parent = int(_status(current)["PPid"])
        except (OSError, KeyError, ValueError):
            return None
        if parent > 1 and _supervisor(_comm(parent)):
            return parent
        current = parent
    return None


def _sandboxed(pid: int) -> bool:
    """Whether ``pid`` is one of the runtime's own processes (gVisor's sentry or gofer): its
    ``comm`` is ``exe``, its argv[0] says what it is."""
    try:
        argv0 = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return argv0.startswith(SANDBOX_PREFIX.encode())


def locate(pid: int) -> Location:
    """Resolve the memory cgroup and shim of the container whose init process is ``pid``."""
    cgroup, version = memory_cgroup(pid)
    return Location(pid=pid, cgroup=cgroup, version=version, shim_pid=find_shim(pid))


def _cgroup_pids(cgroup: Path) -> list[int]:
    """Processes of the cgroup and of any cgroup nested in it (a container may create some)."""
    pids: list[int] = []
    for directory, _, _ in os.walk(cgroup):
        try:
            pids += [int(p) for p in Path(directory, "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            continue
    return pids


def _stat_lines(path: Path) -> Iterator[tuple[str, int]]:
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            yield key, int(value)


def kernel_bytes(location: Location) -> int | None:
    """Kernel memory charged to the cgroup, or None where the kernel does not account it."""
    try:
        if location.version == 1:
            return int((location.cgroup / "memory.kmem.usage_in_bytes").read_text())
        stat = dict(_stat_lines(location.cgroup / "memory.stat"))
    except (OSError, ValueError):
        return None
    if "kernel" in stat:
        return stat["kernel"]
    parts = [stat[key] for key in V2_KERNEL_PARTS if key in stat]
    return sum(parts) if parts else None


def oom_kills(location: Location) -> int | None:
    """Processes the kernel's OOM killer ended in the cgroup (v1 ``memory.oom_control``, v2
    ``memory.events``), or None where it does not say. A workload's child killed at the limit
    leaves the container running, so the engine's own ``OOMKilled`` flag stays false."""
    name = "memory.oom_control" if location.version == 1 else "memory.events"
    try:
        return dict(_stat_lines(location.cgroup / name)).get("oom_kill")
    except OSError:
        return None


def _shim_bytes(shim_pid: int | None) -> int | None:
    """The shim's RSS; the comm check stops a recycled pid from being counted as the shim."""
    if shim_pid is None or not _supervisor(_comm(shim_pid)):
        return None
    return process_bytes(shim_pid)


def measure(location: Location) -> HostMemory:
    """One sample at ``location``; raises ``Unmeasurable`` once the container has no processes."""
    workload, sandbox = [], []
    for pid in _cgroup_pids(location.cgroup):
        size = process_bytes(pid)
        if size is not None:
            (sandbox if _sandboxed(pid) else workload).append(size)
    if not workload and not sandbox:
        raise Unmeasurable(f"no live process in memory cgroup {location.cgroup}")
    kernel = kernel_bytes(location)
    shim = _shim_bytes(location.shim_pid)
    notes = []
    if kernel is None:
        notes.append(f"cgroup v{location.version} at {location.cgroup} exposes no kernel memory")
    if shim is None:
        notes.append(f"no {' or '.join(SUPERVISORS)} ancestor of pid {location.pid}: not counted")
    return HostMemory(
        processes=sum(workload),
        pids=len(workload) + len(sandbox),
        kernel=kernel,
        shim=shim,
        notes=tuple(notes),
        sandbox=sum(sandbox),
    )


def host_bytes(pid: int) -> HostMemory:
    """One sample for the container whose init process is ``pid`` on this host."""
    return measure(locate(pid))


class ContainerMemorySampler(PeriodicSampler):
    """Samples ``host_bytes`` every ``interval`` seconds and keeps the peak.

    ``peak_sample`` is the breakdown at the peak, so a report can say how much of the overhead
    is the shim and how much kernel memory.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(interval, "container-memory")
        self.pid = pid
        self.peak: int | None = None
        self.peak_sample: HostMemory | None = None
        self.samples = 0
        self._reason: str | None = None
        self._location: Location | None = None
        self._lock = threading.Lock()

    @property
    def reason(self) -> str | None:
        """Why nothing was measured, when ``peak`` is None."""
        if self.peak is not None:
            return None
        return self._reason or "no sample was taken"

    @property
    def location(self) -> Location | None:
        """The container's cgroup and shim, once resolved."""
        return self._location

    def start(self) -> ContainerMemorySampler:
        """Resolve the container's cgroup and shim, take a first sample, then sample on."""
        try:
            self._location = locate(self.pid)
        except Unmeasurable as exc:
            self._reason = str(exc)
            self._stop.set()
            return self
        self._begin()
        return self

    def _sample(self) -> None:
        assert self._location is not None
        try:
            sample = measure(self._location)
        except Unmeasurable as exc:
            self._reason = str(exc)
            return
        with self._lock:
            self.samples += 1
            self._record(sample.total)
            if self.peak is None or sample.total > self.peak:
                self.peak, self.peak_sample = sample.total, sample
