"""What a container is created with: bench's labels, the target's limits as the engine's
HostConfig arguments, GPU device requests, and the worker package as a tar archive for an
image bench did not build.

Every container carries the run id, the target, the controller and the invocation's owner
token as labels: a run removes only its own, and ``bench gc`` finds what a killed one left.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

import docker.types

from bench import metadata, owner, workerpack
from bench.targets.docker import DockerTargetConfig

LABEL_RUN = "bench.run_id"
LABEL_TARGET = "bench.target"
LABEL_CONTROLLER = "bench.controller"
LABEL_OWNER = "bench.owner"


def labels(run_id: str, target: str) -> dict[str, str]:
    """The labels of a container of ``target`` in run ``run_id``, made by this invocation."""
    return {
        LABEL_RUN: run_id,
        LABEL_TARGET: target,
        LABEL_CONTROLLER: metadata.controller_label(),
        LABEL_OWNER: owner.token(),
    }


def host_config(c: DockerTargetConfig) -> dict[str, Any]:
    """The limits, runtime, devices and mounts, as arguments of the engine's HostConfig."""
    args: dict[str, Any] = {"network_mode": c.network, "binds": list(c.volumes)}
    if c.cpus is not None:
        args["nano_cpus"] = int(c.cpus * 1e9)
    if c.cpuset is not None:
        args["cpuset_cpus"] = c.cpuset
    if c.memory is not None:  # no swap: a limit that swaps measures the disk, not the job
        args["mem_limit"] = args["memswap_limit"] = c.memory
    if c.shm_size is not None:
        args["shm_size"] = c.shm_size
    if c.runtime is not None:
        args["runtime"] = c.runtime
    if c.gpus is not None:
        args["device_requests"] = [gpu_request(c.gpus)]
    return args


def gpu_request(gpus: str | int | list[str]) -> docker.types.DeviceRequest:
    """``all`` / a count / device ids, as the engine's device request."""
    if gpus == "all":
        return docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    if isinstance(gpus, int):
        return docker.types.DeviceRequest(count=gpus, capabilities=[["gpu"]])
    return docker.types.DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])


def worker_archive(root: str) -> bytes:
    """The worker package as a tar under ``root``/lib, for images bench did not build."""
    buffer = io.BytesIO()
    top = root.lstrip("/")
    made = {top}
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _dir(tar, top)
        with tarfile.open(fileobj=io.BytesIO(workerpack.build().archive), mode="r:gz") as pkg:
            for member in pkg.getmembers():
                member.name = f"{top}/lib/{member.name}"
                parts = member.name.split("/")
                for depth in range(2, len(parts)):
                    parent = "/".join(parts[:depth])
                    if parent not in made:
                        _dir(tar, parent)
                        made.add(parent)
                tar.addfile(member, pkg.extractfile(member))
    return buffer.getvalue()


def _dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)
