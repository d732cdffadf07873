"""A real Podman engine serving its Docker-compatible API on a test socket, started by the
tests when it is not answering and stopped when they end.

Podman gives each container ``nofile`` and ``nproc`` limits above the ones a root without
CAP_SYS_RESOURCE (some sandboxed machines) may set, and crun then refuses to start it
("setrlimit RLIMIT_NOFILE: Operation not permitted"); the service is therefore given a
``containers.conf`` whose default limits are this process's own hard limits (and, for
processes, the kernel's pid_max, to which Podman lowers its own).
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

from tests.docker_engine import answering

SOCKET = Path("/run/bench-test-podman/podman.sock")
URL = f"unix://{SOCKET}"


def _conf(directory: Path) -> Path:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    path = directory / "containers.conf"
    path.write_text(
        f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
    )
    return path


@contextmanager
def podman_engine(work: Path, timeout: float = 60) -> Iterator[docker.DockerClient]:
    """A client of the test Podman service; one this context started is stopped after."""
    client = answering(URL)
    if client is not None:
        yield client
        return
    podman = shutil.which("podman")
    assert podman, "podman is not installed: run ./bootstrap.sh test (installs podman)"
    SOCKET.parent.mkdir(parents=True, exist_ok=True)
    env = {"CONTAINERS_CONF": str(_conf(work)), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    log = (work / "podman.log").open("w")
    service = subprocess.Popen(
        [podman, "system", "service", "--time=0", URL],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        end = time.monotonic() + timeout
        while client is None and time.monotonic() < end and service.poll() is None:
            time.sleep(0.3)
            client = answering(URL)
        assert client is not None, f"podman system service did not start; see {work}/podman.log"
        yield client
    finally:
        if client is not None:
            client.close()
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
        log.close()
