"""Host-side memory of a real Docker container: its processes, kernel memory and shim.

The image is made offline from the host's static busybox (there is no registry here), which
``bootstrap.sh`` installs with the ``busybox-static`` package.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from bench.probes.container import (
    SHIM_PREFIX,
    ContainerMemorySampler,
    HostMemory,
    cgroup_mounts,
    host_bytes,
    locate,
)
from bench.probes.process import process_bytes, tree_bytes

BUSYBOX = Path("/bin/busybox")
IMAGE = "bench-test-tiny:container-probe"
LABELS = {"bench.test": "1"}
HELD = 50_000_000
# busybox sh keeps the 50 MB string in a variable; the trailing echo stops sh from exec'ing
# sleep in its place, which would free the variable.
HOLD_MEMORY = f'x=$(head -c {HELD} /dev/zero | tr "\\0" a); sleep 30; echo ${{#x}}'


def busybox_rootfs() -> bytes:
    """A tar of a root file system holding only a static busybox and its applet links."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in ("sh", "sleep", "head", "tr", "echo", "true"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    if not BUSYBOX.exists():
        pytest.fail(f"{BUSYBOX} is missing: apt-get install busybox-static (bootstrap.sh does)")
    engine = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    repository, tag = IMAGE.split(":")
    engine.api.import_image_from_data(busybox_rootfs(), repository=repository, tag=tag)
    try:
        yield engine
    finally:
        engine.images.remove(IMAGE, force=True)
        engine.close()


@contextmanager
def container(client: docker.DockerClient, script: str) -> Iterator[Container]:
    """A running container of the test image; always removed, even when the test fails."""
    started = client.containers.run(IMAGE, ["sh", "-c", script], detach=True, labels=LABELS)
    try:
        started.reload()
        yield started
    finally:
        started.remove(force=True)


def wait_for(pid: int, least: int, timeout: float = 30.0) -> HostMemory:
    """Poll until the container's processes hold ``least`` bytes (the shell fills slowly)."""
    deadline = time.monotonic() + timeout
    while True:
        sample = host_bytes(pid)
        if sample.processes >= least or time.monotonic() > deadline:
            return sample
        time.sleep(0.1)


def until(done: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``done`` until it holds: the sampler's thread can be starved on a busy machine, so
    the test waits for samples rather than for a fixed time."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for the sampler"
        time.sleep(0.05)


def test_sampler_counts_processes_kernel_and_shim(client: docker.DockerClient) -> None:
    with container(client, HOLD_MEMORY) as box:
        pid = box.attrs["State"]["Pid"]
        assert wait_for(pid, HELD).processes >= HELD
        sampler = ContainerMemorySampler(pid).start()
        until(lambda: sampler.samples >= 3)
        tree = tree_bytes(pid)
        until(lambda: sampler.samples >= 6)  # at least one sample after ``tree`` was read
        sample = host_bytes(pid)
        sampler.stop()

    assert tree is not None and tree >= HELD
    assert sampler.samples >= 5
    assert sampler.peak is not None and sampler.reason is None
    assert sampler.peak >= HELD and sampler.peak >= tree
    assert sampler.peak_sample is not None and sampler.peak_sample.total == sampler.peak
    assert sample.pids >= 2  # the shell and its sleep
    assert sample.kernel is not None and sample.kernel >= 0
    assert sample.shim is not None and sample.shim > 0
    assert sample.total == sample.processes + sample.kernel + sample.shim
    assert sample.notes == ()


def test_shim_is_the_containerd_shim_ancestor(client: docker.DockerClient) -> None:
    with container(client, "sleep 30; true") as box:
        location = locate(box.attrs["State"]["Pid"])
        assert location.shim_pid is not None
        comm = Path(f"/proc/{location.shim_pid}/comm").read_text()
        assert comm.startswith(SHIM_PREFIX)
        assert (process_bytes(location.shim_pid) or 0) > 0
        assert (location.cgroup / "cgroup.procs").exists()
        assert location.version in (1, 2)


def test_stop_after_the_container_exits(client: docker.DockerClient) -> None:
    with container(client, "sleep 60; true") as box:
        sampler = ContainerMemorySampler(box.attrs["State"]["Pid"], interval=0.05).start()
        until(lambda: sampler.samples >= 1)
        box.kill()
        box.wait(timeout=30)
        time.sleep(0.3)  # the sampler keeps trying on a gone container without failing
        sampler.stop()
        sampler.stop()
    assert sampler.samples >= 1 and sampler.peak is not None


def test_missing_pid_is_absent_with_a_reason() -> None:
    beyond = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    sampler = ContainerMemorySampler(beyond).start()
    sampler.stop()
    assert sampler.peak is None and sampler.samples == 0
    assert sampler.reason is not None and str(beyond) in sampler.reason


def test_process_outside_a_container_has_no_shim() -> None:
    """The breakdown says when no shim was found instead of silently counting zero."""
    sample = host_bytes(os.getpid())
    assert sample.shim is None and sample.processes > 0
    assert any(SHIM_PREFIX in note for note in sample.notes)


def test_mount_points_are_read_from_mountinfo_on_a_hybrid_host() -> None:
    mountinfo = (
        "31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
        "36 31 0:33 /sub /mnt/cg\\040x rw - cgroup cgroup rw,cpu,cpuacct\n"
    )
    mounts = cgroup_mounts(mountinfo)
    assert [(t, str(p)) for t, _, p, _ in mounts] == [
        ("cgroup2", "/sys/fs/cgroup/unified"),
        ("cgroup", "/sys/fs/cgroup/memory"),
        ("cgroup", "/mnt/cg x"),
    ]
    assert "memory" in mounts[1][3] and mounts[2][1] == "/sub"
