"""Finding what a crashed or killed run left behind, by the marks every run puts on it.

A controller that dies from SIGKILL or a power cut cannot clean up; its containers carry the
run id and the controller's host and pid as labels, and its VM guests have an owner file with
the same facts, so a later ``bench gc`` can tell them from those of a run still in progress and
remove only the orphans.
"""

from __future__ import annotations

import os
import socket
from contextlib import suppress

import docker
import docker.errors

from bench.targets import qemu
from bench.targets.docker import LABEL_CONTROLLER, LABEL_RUN, LABEL_TARGET
from bench.targets.dockerclient import connect, translated


def controller_alive(label: str) -> bool:
    """Whether ``host:pid`` names a process still running on this host (another host's
    controller is assumed alive: we cannot see it)."""
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


def containers(client: docker.DockerClient, everything: bool, dry_run: bool) -> list[str]:
    """Remove bench's orphaned containers; one description per container removed."""
    with translated("gc: cannot list containers"):
        found = client.containers.list(all=True, filters={"label": LABEL_RUN})
    removed = []
    for container in found:
        labels = container.labels
        if not everything and controller_alive(labels.get(LABEL_CONTROLLER, "")):
            continue
        removed.append(
            f"{container.short_id} (run {labels.get(LABEL_RUN)}, target {labels.get(LABEL_TARGET)})"
        )
        if not dry_run:
            with suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
    return removed


def engine_containers(docker_host: str | None, everything: bool, dry_run: bool) -> list[str]:
    """``containers`` on the engine at ``docker_host`` (default: the usual resolution)."""
    engine = connect(docker_host)
    try:
        return containers(engine.control, everything=everything, dry_run=dry_run)
    finally:
        engine.close()


def guests(everything: bool, dry_run: bool) -> list[str]:
    """Kill orphaned QEMU guests and delete their overlays; one description per guest."""
    removed = []
    for directory, owner in qemu.owners():
        if not everything and owner and controller_alive(str(owner.get("controller", ""))):
            continue
        pid = owner.get("qemu_pid", "?")
        removed.append(
            f"{directory.name} (run {owner.get('run_id')}, target {owner.get('target')}, "
            f"QEMU pid {pid})"
        )
        if not dry_run:
            qemu.remove_guest(directory, owner)
    return removed
