"""Locations a target cannot offer, refused when the suite is validated (before any cell).

``location: volume`` means a host directory mounted into the worker's filesystem (a bind mount,
a second virtio disk): a remote Docker engine cannot mount the controller's directory, and a
VM that exists already has no disk bench could attach. ``tmpfs`` on Docker is that bind mount
plus a RAM filesystem, so a remote engine cannot offer it either. Loads no SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bench.dockerhost import is_local, resolve_url


def refusal(target: Any, location: str | None) -> tuple[str, str] | None:
    """(why ``target`` cannot offer ``location``, what to use instead), or None when it can."""
    if location is None:
        return None
    kind = getattr(target, "kind", None)
    if kind == "docker" and location in ("volume", "tmpfs"):
        url = resolve_url(getattr(target, "docker_host", None))
        if not is_local(url):
            why = (
                f"location: {location} mounts a directory of this host, which the remote "
                f"Docker engine at {url} cannot reach"
            )
            return why, "use location: image (the assets become a layer of a derived image)"
    if kind == "vm" and getattr(target, "provisioner", None) == "static" and location == "volume":
        why = "location: volume attaches a second disk, and a static VM has none bench can attach"
        return why, "use location: image (copied into the run's directory) or tmpfs"
    return None


def problems(targets: list[Any], workloads: list[Any]) -> Iterator[tuple[int, str, str]]:
    """(workload index, message naming target and workload, hint) for each refused pair."""
    for index, workload in enumerate(workloads):
        location = getattr(workload, "location", None)
        for target in targets:
            found = refusal(target, location)
            if found is not None:
                why, hint = found
                yield index, f"target {target.name!r}, workload {workload.name!r}: {why}", hint
