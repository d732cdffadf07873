"""A description of the host a benchmark ran on.

Results are only comparable when the environment that produced them is
known, so every run is stored with this fingerprint. Each probe is
best-effort, in the manner of pyperf's metadata: a probe that fails yields
null instead of failing the run, because a missing detail is better than a
missing result.

Nothing heavy is imported at module level: the controller fingerprints its
own host with ``collect(include_torch=False)`` where torch may not be
installed at all.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from workloads import environment


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def _key_values(text: str, separator: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        key, found, value = line.partition(separator)
        if found:
            pairs.append((key.strip(), value.strip()))
    return pairs


def cpu_model() -> str | None:
    """Model name from /proc/cpuinfo; ARM kernels call the field differently."""
    wanted = ("model name", "Model", "Hardware", "Processor", "cpu model")
    for key, value in _key_values(_read("/proc/cpuinfo"), ":"):
        if key in wanted and value:
            return value
    return platform.processor() or None


def _physical_cores() -> int | None:
    pairs = _key_values(_read("/proc/cpuinfo"), ":")
    cores, package = set(), None
    for key, value in pairs:
        if key == "physical id":
            package = value
        elif key == "core id":
            cores.add((package, value))
    return len(cores) or None


def cores() -> dict[str, int | None]:
    """Logical CPUs, those this process may use, and physical cores.

    Containers and taskset often allow fewer CPUs than the host has, which
    caps parallel throughput; both numbers are kept for that reason.
    """
    usable = None
    if hasattr(os, "sched_getaffinity"):
        usable = len(os.sched_getaffinity(0))
    physical = None
    with contextlib.suppress(OSError):
        physical = _physical_cores()
    return {"logical": os.cpu_count(), "usable": usable, "physical": physical}


def memory_bytes() -> int | None:
    for key, value in _key_values(_read("/proc/meminfo"), ":"):
        if key == "MemTotal":
            return int(value.split()[0]) * 1024
    return None


def os_name() -> str | None:
    for key, value in _key_values(_read("/etc/os-release"), "="):
        if key == "PRETTY_NAME":
            return value.strip('"')
    return None


def python() -> dict[str, str]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }


def cpu_governor() -> str | None:
    """Frequency governor; "powersave" can make timings noisy."""
    try:
        return _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").strip()
    except OSError:
        return None


def _detect_virt() -> str | None:
    tool = shutil.which("systemd-detect-virt")
    if tool is None:
        return None
    done = subprocess.run([tool], capture_output=True, text=True, timeout=2, check=False)
    return done.stdout.strip() or None


def _dmi(field: str) -> str | None:
    try:
        return _read(f"/sys/class/dmi/id/{field}").strip() or None
    except OSError:
        return None


def virtualization() -> dict[str, Any]:
    """Cheap hints at VMs and containers, which share or emulate hardware."""
    try:
        detected = _detect_virt()
    except (OSError, subprocess.SubprocessError):
        detected = None
    return {
        "systemd_detect_virt": detected,
        "product_name": _dmi("product_name"),
        "sys_vendor": _dmi("sys_vendor"),
        "container_marker": any(os.path.exists(p) for p in ("/.dockerenv", "/run/.containerenv")),
    }


UNLIMITED_V1 = 1 << 62  # cgroup v1 writes "no limit" as a huge page-aligned number


def _cgroup_file(controller: str, name: str) -> str | None:
    """Contents of a cgroup file of this process (v2, else v1 ``controller``), or None.

    Inside a container the cgroup is mounted as the root, so the process's own path from
    /proc/self/cgroup does not exist there; the mount root is then this process's cgroup.
    """
    paths: list[str] = []
    with contextlib.suppress(OSError):
        for line in _read("/proc/self/cgroup").splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                paths += [f"/sys/fs/cgroup{path}/{name}", f"/sys/fs/cgroup/{name}"]
            elif controller in controllers.split(","):
                base = f"/sys/fs/cgroup/{controller}"
                paths += [f"{base}{path}/{name}", f"{base}/{name}"]
    for path in paths:
        with contextlib.suppress(OSError):
            return _read(path).strip()
    return None


def cgroup_limits() -> dict[str, Any]:
    """CPU and memory limits as the worker sees them (what a container's limits really are)."""
    cpus = None
    v2 = _cgroup_file("cpu", "cpu.max")
    if v2 is not None and " " in v2:
        quota, period = v2.split()[:2]
        cpus = None if quota == "max" else int(quota) / int(period)
    else:
        quota = _cgroup_file("cpu", "cpu.cfs_quota_us")
        period = _cgroup_file("cpu", "cpu.cfs_period_us")
        if quota and period and int(quota) > 0:
            cpus = int(quota) / int(period)
    memory = _cgroup_file("memory", "memory.max")
    if memory is None or " " in memory:
        memory = _cgroup_file("memory", "memory.limit_in_bytes")
    limit = None if memory in (None, "max") else int(memory)
    return {"cpus": cpus, "memory_bytes": None if limit and limit >= UNLIMITED_V1 else limit}


def numpy_version() -> str:
    import numpy

    return numpy.__version__


TORCH_KEYS = ("torch", "torch_cuda", "cuda_available", "gpu_count", "gpu_names")


def torch_info() -> dict[str, Any]:
    """torch's version and the GPUs it can use, as top-level keys."""
    import torch

    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    return {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": available,
        "gpu_count": count,
        "gpu_names": [torch.cuda.get_device_name(i) for i in range(count)],
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml() -> dict[str, Any]:
    """Driver version and GPUs as NVML sees them, independent of torch."""
    try:
        import pynvml
    except ImportError:
        return {"available": False, "reason": "nvidia-ml-py (pynvml) is not installed"}
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        return {"available": False, "reason": f"NVML init failed: {exc}"}
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpus.append(
                {
                    "name": _text(pynvml.nvmlDeviceGetName(handle)),
                    "memory_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                }
            )
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        return {"available": True, "driver_version": driver, "gpus": gpus}
    finally:
        pynvml.nvmlShutdown()


BASE_PROBES: dict[str, Callable[[], Any]] = {
    "cpu_model": cpu_model,
    "cores": cores,
    "memory_bytes": memory_bytes,
    "kernel": platform.release,
    "machine": platform.machine,
    "os": os_name,
    "python": python,
    "hostname": socket.gethostname,
    "cpu_governor": cpu_governor,
    "virtualization": virtualization,
    "cgroup_limits": cgroup_limits,
    "environment": environment.check_all,
}

TORCH_PROBES: dict[str, Callable[[], Any]] = {
    "nvml": nvml,
    "numpy": numpy_version,
}


def _probe(function: Callable[[], Any]) -> Any:
    try:
        return function()
    except Exception:  # a failed probe must not cost the whole fingerprint
        return None


def collect(include_torch: bool = True) -> dict[str, Any]:
    """Run every probe; failed probes report null."""
    data = {key: _probe(function) for key, function in BASE_PROBES.items()}
    if include_torch:
        data.update(_probe(torch_info) or dict.fromkeys(TORCH_KEYS))
        data.update({key: _probe(function) for key, function in TORCH_PROBES.items()})
    return data
