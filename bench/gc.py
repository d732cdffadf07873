"""Finding what a crashed or killed run left behind, by the labels every run puts on it.

A controller that dies from SIGKILL or a power cut cannot clean up; its containers carry the
run id and the controller's host and pid, so a later ``bench gc`` can tell them from those of a
run still in progress and remove only the orphans.
"""

from __future__ import annotations

import os
import socket
from contextlib import suppress

import docker
import docker.errors

from bench.targets.docker import LABEL_CONTROLLER, LABEL_RUN, LABEL_TARGET
from bench.targets.dockerclient import translated


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
