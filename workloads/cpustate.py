"""CPU time split into user and system, and the CPU's speed around the measured phase.

User vs system time separates the workload's own computation from what the kernel does for it
(page faults, I/O, a container's or a VM's extra syscalls), which is where isolation shows up.
Thermal throttling counters, the clock frequency and the machine's steal time are read at both
ends of the measured phase: a CPU that throttled or slowed down meanwhile, or a hypervisor that
took the CPU away, produced numbers that say more about the room's temperature or the
neighbours than about the target, and the controller marks such a cell INVALID.

Standard library only: this runs on the target, and the host side reads it too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workloads.memory import task_children

SYS_CPU = Path("/sys/devices/system/cpu")
PROC = Path("/proc")
THROTTLE_FILES = ("core_throttle_count", "package_throttle_count")


@dataclass(frozen=True)
class CpuTimes:
    """User and system seconds of this process and its children so far."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)


def _proc_times(pid: int) -> tuple[float, float]:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0.0, 0.0
    fields = stat.rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_times() -> CpuTimes:
    """User and system CPU time of this process and its children so far.

    The process's own time comes from ``getrusage``: its total is the scheduler's exact run
    time, so short phases do not round to zero, though the kernel splits that total into user
    and system by sampling ticks, so one side of a phase of a few ticks may read as zero.
    Children are only accounted by the kernel once reaped, but DataLoader workers live through
    the whole measured phase, so their time so far is read from /proc. A child reaped between
    two readings moves from the live term to the reaped term, so differences stay correct.
    """
    try:
        import resource
    except ImportError:
        t = os.times()
        return CpuTimes(t.user + t.children_user, t.system + t.children_system)
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    live = [_proc_times(pid) for pid in task_children(os.getpid()) or []]
    user = own.ru_utime + reaped.ru_utime + sum(u for u, _ in live)
    system = own.ru_stime + reaped.ru_stime + sum(s for _, s in live)
    return CpuTimes(user, system)


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def throttle_count(root: Path = SYS_CPU) -> int | None:
    """Thermal throttling events so far on the CPUs this process may use; None where the
    kernel does not expose them (virtual machines, non-Intel CPUs)."""
    total, found = 0, False
    for cpu in _cpus():
        for name in THROTTLE_FILES:
            try:
                total += int((root / f"cpu{cpu}" / "thermal_throttle" / name).read_text())
                found = True
            except (OSError, ValueError):
                continue
    return total if found else None


def frequency_mhz(root: Path = SYS_CPU, proc: Path = PROC) -> float | None:
    """Mean current clock of the CPUs this process may use, from cpufreq, else /proc/cpuinfo."""
    cpus = _cpus()
    values = []
    for cpu in cpus:
        try:
            values.append(int((root / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq").read_text()))
        except (OSError, ValueError):
            continue
    if values:
        return sum(values) / len(values) / 1000.0
    try:
        lines = (proc / "cpuinfo").read_text().splitlines()
    except OSError:
        return None
    mhz = [float(line.split(":")[1]) for line in lines if line.startswith("cpu MHz")]
    mine = [mhz[c] for c in cpus if c < len(mhz)]
    return sum(mine) / len(mine) if mine else None


def steal_ticks(proc: Path = PROC) -> tuple[int, int] | None:
    """(steal, total) clock ticks of the whole machine from /proc/stat; None if unreadable.

    Steal is time the hypervisor ran something else while this guest's vCPU wanted to run: on
    a shared cloud instance it slows the workload without any trace in its own CPU time.
    """
    try:
        fields = (proc / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)


# Fewer clock ticks than this across the measured phase (0.5 s of two CPUs at the usual 100 Hz)
# make steal no share at all: a 10 ms phase spans two or three ticks, and one stolen tick
# would read as a third of the machine taken by the hypervisor.
MIN_STEAL_TICKS = 100


@dataclass(frozen=True)
class CpuState:
    """What is read at each end of the measured phase."""

    times: CpuTimes
    throttles: int | None
    mhz: float | None
    steal: tuple[int, int] | None = None

    @classmethod
    def now(cls) -> CpuState:
        return cls(cpu_times(), throttle_count(), frequency_mhz(), steal_ticks())


def change(before: CpuState, after: CpuState) -> dict[str, float | int | None]:
    """The CPU's throttling and clock across the measured phase, for the cell's verdict."""
    throttled = None
    if before.throttles is not None and after.throttles is not None:
        throttled = after.throttles - before.throttles
    steal, ticks = None, None
    if before.steal is not None and after.steal is not None:
        ticks = after.steal[1] - before.steal[1]
        if ticks >= MIN_STEAL_TICKS:
            steal = 100.0 * (after.steal[0] - before.steal[0]) / ticks
    return {
        "thermal_throttle_events": throttled,
        "mhz_start": before.mhz,
        "mhz_end": after.mhz,
        "steal_pct": steal,  # None: unreadable, or the phase too short to judge
        "steal_window_ticks": ticks,
    }
