"""Faults of a ``kind: docker`` run against the real engine: a container killed by the kernel
at its memory limit, one killed from outside, and the engine itself restarted mid-cell."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.docker_engine import ensure_engine
from tests.faults import runs
from tests.faults.leftovers import Scope, assert_nothing_left

pytestmark = [pytest.mark.fault, pytest.mark.slow]

CTR = {"name": "ctr", "kind": "docker", "build": True}
DOCKERD_PID = Path("/var/run/docker.pid")
# Command cells: the faults are the target's, so the worker needs no torch start-up. ``long``
# runs until it is stopped (its worker, ``python -m workloads run``, is the sleep's parent).
CMD = {"name": "cmd", "kind": "command", "argv": ["sleep", "0.05"]}
LONG = {"name": "long", "kind": "command", "argv": ["sleep", "300"], "timeout_s": 300}


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return ensure_engine()


@pytest.fixture
def scope(tmp_path: Path, client: docker.DockerClient) -> Iterator[Scope]:
    found = Scope(tmp_path, docker=True)
    yield found
    for container in client.containers.list(
        all=True, filters={"label": f"bench.run_id={found.run_id}"}
    ):  # a failed test must not leave its containers to the next one
        container.remove(force=True)


def long_container(client: docker.DockerClient, run_id: str) -> object:
    """The running container of the ``long`` cell, once it exists."""
    for container in client.containers.list(filters={"label": f"bench.run_id={run_id}"}):
        if '"long"' in " ".join(container.attrs["Config"]["Cmd"]):
            return container
    return None


def test_container_oom_killed(scope: Scope) -> None:
    """The unlimited target goes first: its fingerprint reads the image's files into the page
    cache, so the small container is charged for its own allocations only and is killed at
    once (paying for torch's pages as well, it can thrash at the limit for minutes)."""
    small = {**CTR, "name": "small", "memory": "40m"}
    path = runs.suite(scope, [CTR, small], [{**runs.TRAIN, "timeout_s": 120}])
    done = runs.run(scope, path)
    assert done.returncode == 1, done.stderr
    runs.one_line(done.stderr, "cell failed: train on small #1", "out of memory", "(40 MiB)")
    runs.cells_kept(scope, ok=["train@ctr"], failed=["train@small"])
    assert_nothing_left(scope)


def test_container_killed_from_outside(scope: Scope, client: docker.DockerClient) -> None:
    proc = runs.start(scope, runs.suite(scope, [CTR], [CMD, LONG]))
    container = runs.wait_for(
        lambda: long_container(client, scope.run_id), proc, 300, "the long cell's container"
    )
    container.kill()
    status, _, stderr = runs.finish(proc)
    assert status == 1, stderr
    runs.one_line(stderr, "cell failed: long on ctr #1", "worker exited (status 137)")
    runs.cells_kept(scope, ok=["cmd@ctr"], failed=["long@ctr"])
    assert_nothing_left(scope)


def restart_engine(timeout: float = 120) -> None:
    """SIGTERM the engine, wait until it has exited, start it again the way the tests do."""
    pid = int(DOCKERD_PID.read_text())
    os.kill(pid, signal.SIGTERM)
    runs.wait_for(lambda: not Path(f"/proc/{pid}").exists(), None, timeout, "dockerd to exit")
    ensure_engine()


def test_engine_restarted_mid_cell(scope: Scope, client: docker.DockerClient) -> None:
    proc = runs.start(scope, runs.suite(scope, [CTR], [CMD, LONG]))
    try:
        runs.wait_for(
            lambda: long_container(client, scope.run_id), proc, 300, "the long cell's container"
        )
        restart_engine()
    finally:
        ensure_engine()  # the engine is shared: it is back whatever happened
    status, _, stderr = runs.finish(proc)
    assert status == 1, stderr
    runs.one_line(stderr, "cell failed: long on ctr #1", "Docker engine", "stopped answering")
    runs.cells_kept(scope, ok=["cmd@ctr"], failed=["long@ctr"])
    assert_nothing_left(scope, timeout_s=30)
