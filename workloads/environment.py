"""Checks of the machine state that make benchmark numbers noisy, each with the fix.

Like ``pyperf system show``: frequency scaling, turbo, ASLR, load, swap and memory pressure,
steal time, other busy processes, GPU persistence mode and clocks. Each check is a small best-effort
function; a check that cannot be made on this machine (no cpufreq in a VM, no NVIDIA driver)
reports ``status: "n/a"`` with the reason instead of a guess. It lives in the worker package
(standard library, plus NVML when installed) so that every target kind can report its own
state in its fingerprint, and the controller checks its own host with the same code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from glob import glob
from typing import Any

from workloads.cpustate import steal_ticks

OK, WARN, INFO, NA = "ok", "warn", "info", "n/a"
BUSY_SHARE = 0.25  # another process using a quarter of a core or more is worth naming
SAMPLE_S = 0.3


def _check(name: str, status: str, value: Any, fix: str | None = None) -> dict[str, Any]:
    return {"check": name, "status": status, "value": value, "fix": fix}


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


def governor() -> dict[str, Any]:
    """Frequency governors other than ``performance`` change clocks under the workload."""
    paths = sorted(glob("/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"))
    if not paths:
        return _check("cpu governor", NA, "no cpufreq (a VM or a fixed-frequency CPU)")
    found = sorted({_read(p) for p in paths})
    if found == ["performance"]:
        return _check("cpu governor", OK, "performance")
    fix = "cpupower frequency-set -g performance"
    return _check("cpu governor", WARN, ",".join(found), fix)


def turbo() -> dict[str, Any]:
    """Turbo/boost makes clocks depend on temperature and on how many cores are busy."""
    if os.path.exists("/sys/devices/system/cpu/intel_pstate/no_turbo"):
        on = _read("/sys/devices/system/cpu/intel_pstate/no_turbo") == "0"
        fix = "echo 1 > /sys/devices/system/cpu/intel_pstate/no_turbo"
    elif os.path.exists("/sys/devices/system/cpu/cpufreq/boost"):
        on = _read("/sys/devices/system/cpu/cpufreq/boost") == "1"
        fix = "echo 0 > /sys/devices/system/cpu/cpufreq/boost"
    else:
        return _check("turbo/boost", NA, "not exposed by this kernel")
    return _check("turbo/boost", WARN if on else OK, "on" if on else "off", fix if on else None)


def aslr() -> dict[str, Any]:
    """Address randomisation varies memory layout (and so cache behaviour) between runs."""
    try:
        level = int(_read("/proc/sys/kernel/randomize_va_space"))
    except (OSError, ValueError):
        return _check("ASLR", NA, "unknown")
    names = {0: "off", 1: "conservative", 2: "full"}
    if level == 0:
        return _check("ASLR", OK, "off")
    fix = "sysctl kernel.randomize_va_space=0 (less secure; only on a benchmark machine)"
    return _check("ASLR", INFO, names.get(level, str(level)), fix)


def load() -> dict[str, Any]:
    """Load left by other work competes with the workload for CPUs."""
    one, _, _ = os.getloadavg()
    cores = len(os.sched_getaffinity(0))
    value = f"{one:.2f} (1 min) on {cores} CPUs"
    if one < 0.5 * cores:
        return _check("load average", OK, value)
    return _check("load average", WARN, value, "wait for other jobs to finish, or stop them")


def _meminfo() -> dict[str, int]:
    out = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0]) * 1024
    return out


def swap() -> dict[str, Any]:
    """Pages swapped out can be paged back in the middle of a measurement."""
    info = _meminfo()
    used = info.get("SwapTotal", 0) - info.get("SwapFree", 0)
    if used <= 0:
        return _check("swap in use", OK, "none")
    fix = "free memory, or swapoff -a && swapon -a to bring pages back"
    return _check("swap in use", WARN, f"{used / 2**20:.0f} MiB", fix)


def memory_pressure() -> dict[str, Any]:
    """Reclaim stalls (PSI) or little available memory slow a workload down unevenly."""
    info = _meminfo()
    available = info.get("MemAvailable", 0) / max(info.get("MemTotal", 1), 1)
    stalled = None
    try:
        some = _read("/proc/pressure/memory").splitlines()[0]
        stalled = float(some.split("avg10=")[1].split()[0])
    except (OSError, IndexError, ValueError):
        pass
    value = f"{available:.0%} available" + (f", {stalled:.1f}% stalled" if stalled else "")
    if available < 0.10 or (stalled or 0) > 1.0:
        return _check("memory pressure", WARN, value, "stop memory-hungry processes")
    return _check("memory pressure", OK, value)


def _cpu_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (name, user+system clock ticks) of every process visible now."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = _read(f"/proc/{entry.name}/stat")
        except OSError:
            continue
        name, _, rest = stat.partition(" (")[2].rpartition(") ")
        fields = rest.split()
        out[int(entry.name)] = (name, int(fields[11]) + int(fields[12]))
    return out


def busy_processes(interval: float = SAMPLE_S) -> dict[str, Any]:
    """Other processes burning CPU right now (sampled over ``interval``; this process and its
    children excluded)."""
    before = _cpu_ticks()
    time.sleep(interval)
    after = _cpu_ticks()
    ticks = os.sysconf("SC_CLK_TCK")
    mine = {os.getpid(), os.getppid()}
    busy = []
    for pid, (name, used) in after.items():
        if pid in mine or pid not in before:
            continue
        share = (used - before[pid][1]) / ticks / interval
        if share >= BUSY_SHARE:
            busy.append((share, f"{name} (pid {pid}, {share:.0%})"))
    if not busy:
        return _check("other busy processes", OK, "none")
    names = ", ".join(text for _, text in sorted(busy, reverse=True)[:3])
    return _check("other busy processes", WARN, names, "stop them before measuring")


STEAL_SHARE = 0.01


def steal() -> dict[str, Any]:
    """CPU time the hypervisor gave to other guests since boot: a shared, oversubscribed host
    slows the workload in bursts that no setting inside this machine can stop."""
    ticks = steal_ticks()
    if ticks is None:
        return _check("steal time", NA, "/proc/stat has no steal column")
    share = ticks[0] / max(ticks[1], 1)
    value = f"{share:.1%} of CPU time since boot"
    if share > STEAL_SHARE:
        return _check("steal time", WARN, value, "use dedicated vCPUs or a less loaded host")
    return _check("steal time", OK, value)


def gpus() -> dict[str, Any]:
    """Persistence mode keeps the driver loaded (no re-initialisation per process); clocks
    below their maximum at idle are normal, but locked application clocks are recorded."""
    try:
        import pynvml
    except ImportError:
        return _check("GPU persistence and clocks", NA, "nvidia-ml-py not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return _check("GPU persistence and clocks", NA, f"no NVIDIA driver ({exc})")
    try:
        parts, off = [], []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            persistent = pynvml.nvmlDeviceGetPersistenceMode(handle) == 1
            sm = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
            top = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)
            parts.append(
                f"GPU{index} persistence {'on' if persistent else 'off'}, SM {sm}/{top} MHz"
            )
            if not persistent:
                off.append(index)
    finally:
        pynvml.nvmlShutdown()
    if off:
        return _check("GPU persistence and clocks", WARN, "; ".join(parts), "nvidia-smi -pm 1")
    return _check("GPU persistence and clocks", OK, "; ".join(parts) or "no GPUs")


CHECKS: tuple[Callable[[], dict[str, Any]], ...] = (
    governor, turbo, aslr, load, swap, memory_pressure, steal, busy_processes, gpus,
)  # fmt: skip


def check_all() -> list[dict[str, Any]]:
    """Every check; one that fails unexpectedly reports n/a with the error, never raises."""
    out = []
    for check in CHECKS:
        try:
            out.append(check())
        except Exception as exc:  # a broken check must not cost the others
            out.append(_check(check.__name__, NA, f"check failed: {exc}"))
    return out
