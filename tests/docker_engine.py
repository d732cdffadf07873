"""The real Docker engine the container tests talk to, started by the tests when it is down.

``bootstrap.sh`` normally starts it; starting it here too keeps ``pytest`` on its own usable
on a machine where nothing is running yet.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import docker
import docker.errors

SOCKET = "unix:///var/run/docker.sock"


def answering(url: str = SOCKET) -> docker.DockerClient | None:
    """A client of the engine at ``url`` when it answers a ping, else None."""
    try:
        client = docker.DockerClient(base_url=url, version="auto", timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException:
        return None


def ensure_engine(timeout: float = 60) -> docker.DockerClient:
    """A client of the local engine, starting ``dockerd`` if it does not answer."""
    client = answering()
    if client is not None:
        return client
    dockerd = shutil.which("dockerd")
    assert dockerd, "dockerd is not installed: run ./bootstrap.sh test (installs docker.io)"
    # Through a shell that exits at once: the engine must outlive the tests and must not be a
    # child of the test process (tests check that workloads leave no child processes).
    launch = f"setsid {dockerd} >>/var/log/bench-dockerd.log 2>&1 </dev/null &"
    subprocess.run(["sh", "-c", launch], check=True)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        client = answering()
        if client is not None:
            return client
        time.sleep(0.5)
    raise AssertionError("dockerd did not start; see /var/log/bench-dockerd.log")


def labelled(client: docker.DockerClient, run_id: str) -> list[str]:
    """Ids of every container (running or not) that carries ``run_id``'s label."""
    found = client.containers.list(all=True, filters={"label": f"bench.run_id={run_id}"})
    return [c.id for c in found]
