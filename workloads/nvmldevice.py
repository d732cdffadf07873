"""The GPU a command's samplers watch, found through NVML alone.

The torch kinds ask torch which GPU they compute on. A command is an arbitrary program and the
worker must not import torch for it, so the GPU watched is the one CUDA numbers first for the
command: the first entry of the command's ``CUDA_VISIBLE_DEVICES`` (an index, or a ``GPU-`` or
``MIG-`` UUID), else NVML's device 0. One GPU is sampled, as for the other kinds; a command that
uses several is measured on the first it sees.

``device: auto`` samples that GPU when there is one and otherwise records why not; ``device:
cuda`` fails the cell instead, so that a GPU benchmark is never reported without its GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from workloads.common import DeviceUnavailableError
from workloads.gpu import GpuMonitor, NvmlSampler

VISIBLE = "CUDA_VISIBLE_DEVICES"


@dataclass
class Choice:
    """The device a command is reported on and the monitor that watches it."""

    label: str  # "cuda:0" (the command's first CUDA device) or "cpu"
    monitor: GpuMonitor
    name: str | None = None


class NoGpu(Exception):
    """Why no GPU can be watched (the reason an ``auto`` cell records)."""


def _import_nvml() -> ModuleType:
    try:
        import pynvml
    except ImportError:
        raise NoGpu("nvidia-ml-py (pynvml) is not installed") from None
    return pynvml


def first_visible(env: Mapping[str, str]) -> str | None:
    """The command's first CUDA device as ``CUDA_VISIBLE_DEVICES`` names it: None when the
    variable is unset (every GPU visible), "" when it hides them all."""
    if VISIBLE not in env:
        return None
    return env[VISIBLE].split(",")[0].strip()


def _handle(nvml: ModuleType, entry: str | None) -> Any:
    try:
        if entry is None or entry.isdigit():
            return nvml.nvmlDeviceGetHandleByIndex(int(entry or 0))
        return nvml.nvmlDeviceGetHandleByUUID(entry)
    except Exception as exc:  # NVML raises a family of its own error types
        raise NoGpu(f"NVML found no GPU {entry or 0!r}: {exc}") from None


def _name(nvml: ModuleType, handle: Any) -> str | None:
    try:
        name = nvml.nvmlDeviceGetName(handle)
    except Exception:  # the name is informative only
        return None
    return name.decode() if isinstance(name, bytes) else str(name)


def _open(nvml: ModuleType, env: Mapping[str, str], interval_s: float) -> Choice:
    entry = first_visible(env)
    if entry == "":
        raise NoGpu(f"{VISIBLE} hides every GPU from the command")
    try:
        nvml.nvmlInit()
    except Exception as exc:
        raise NoGpu(f"NVML init failed: {exc}") from None
    try:
        handle = _handle(nvml, entry)
        sampler = NvmlSampler(nvml, handle, interval_s)
    except Exception:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
        raise
    return Choice("cuda:0", GpuMonitor(sampler, ""), _name(nvml, handle))


def choose(
    requested: str,
    env: Mapping[str, str],
    nvml: ModuleType | None = None,
    interval_s: float = 0.1,
) -> Choice:
    """The GPU to watch for a command run with ``env``, as ``device: requested`` asks.

    ``nvml`` may be given so that a test double can stand in for pynvml where no GPU is.
    """
    if requested == "cpu":
        return Choice("cpu", GpuMonitor(None, "workload ran on cpu"))
    try:
        return _open(nvml or _import_nvml(), env, interval_s)
    except NoGpu as exc:
        if requested == "cuda":
            raise DeviceUnavailableError(f"device: cuda was requested but {exc}") from None
        return Choice("cpu", GpuMonitor(None, f"no GPU to watch: {exc}"))
