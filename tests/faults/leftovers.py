"""What a run can leave on this machine, looked up directly (never through bench's own records),
so that a fault test can say "nothing is left" and show what was when it is not.

A fault test gives its run a ``Scope``: the run id, and private directories the run is pointed
at through its environment (``TMPDIR`` for local workers' directories, ``BENCH_STATE_DIR`` for
guest overlays and ownership records) or its suite (an SSH target's ``workdir``). Everything
found is then the test's own, however many other runs share the machine:

- containers labelled ``bench.run_id=<run id>`` (running or not) on the local Docker engine;
- QEMU processes whose command line names the run or the state directory;
- worker processes (``python -m workloads …``) whose working directory or ``TMPDIR`` lies in
  one of the scope's directories;
- local worker directories ``<tmp>/bench-*``, guest directories ``<state>/vms/*``, ownership
  records ``<state>/owners/*.json`` and remote run directories ``<workdir>/bench-*``.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

DOCKER_SOCKET = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Scope:
    """Where one test's run may leave things: its run id and its private directories."""

    root: Path
    run_id: str = field(default_factory=lambda: f"f{uuid.uuid4().hex[:10]}")
    workdirs: tuple[Path, ...] = ()  # remote work directories of SSH targets
    docker: bool = False  # whether the run used the local Docker engine

    @property
    def tmp(self) -> Path:
        """The controller's ``TMPDIR``: local workers' directories are made here."""
        return self.root / "tmp"

    @property
    def state(self) -> Path:
        """The controller's ``BENCH_STATE_DIR``: guest overlays, ownership records."""
        return self.root / "state"

    def env(self) -> dict[str, str]:
        """The environment that points the run's leftovers into the scope."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        return {"TMPDIR": str(self.tmp), "BENCH_STATE_DIR": str(self.state), "COLUMNS": "200"}

    def roots(self) -> tuple[Path, ...]:
        return (self.tmp, self.state, *self.workdirs)


def _inside(path: str, roots: tuple[Path, ...]) -> bool:
    path = path.removesuffix(" (deleted)")
    return any(path == str(r) or path.startswith(f"{r}/") for r in roots)


def _processes() -> list[tuple[int, bytes, str, dict[str, str]]]:
    """(pid, command line, working directory, environment) of every live process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie holds nothing but its pid
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
            raw = (entry / "environ").read_bytes()
        except (OSError, IndexError):
            continue  # gone meanwhile, or a kernel thread
        env = dict(v.split("=", 1) for v in raw.decode(errors="replace").split("\0") if "=" in v)
        found.append((int(entry.name), cmdline, cwd, env))
    return found


def qemu_pids(scope: Scope) -> dict[int, list[str]]:
    """QEMU processes started for the run (``-name bench-<run id>-…``) or from its state dir,
    with their command lines."""
    marks = (f"bench-{scope.run_id}-".encode(), str(scope.state).encode())
    return {
        pid: cmdline.decode(errors="replace").split("\0")
        for pid, cmdline, _, _ in _processes()
        if b"qemu-system" in cmdline.split(b"\0")[0] and any(m in cmdline for m in marks)
    }


def qemu_processes(scope: Scope) -> list[str]:
    return [f"QEMU pid {pid}" for pid in qemu_pids(scope)]


def worker_pids(scope: Scope) -> list[int]:
    """Workers running from, or writing temporary files into, the scope's directories."""
    roots = scope.roots()
    return [
        pid
        for pid, cmdline, cwd, env in _processes()
        if b"\0-m\0workloads\0" in cmdline
        and (_inside(cwd, roots) or _inside(env.get("TMPDIR", ""), roots))
    ]


def worker_processes(scope: Scope) -> list[str]:
    return [f"worker pid {pid}" for pid in worker_pids(scope)]


def containers(scope: Scope) -> list[str]:
    """Containers of the run on the local engine, running or stopped."""
    if not scope.docker:
        return []
    try:
        client = docker.DockerClient(base_url=DOCKER_SOCKET, version="auto", timeout=60)
        try:
            found = client.containers.list(
                all=True, filters={"label": f"bench.run_id={scope.run_id}"}
            )
        finally:
            client.close()
    except docker.errors.DockerException as exc:
        return [f"the Docker engine could not be asked: {exc}"]
    return [f"container {c.short_id} ({c.status})" for c in found]


def files(scope: Scope) -> list[str]:
    """Worker and guest directories, ownership records and remote run directories."""
    patterns = [(scope.tmp, "bench-*"), (scope.state / "vms", "*"), (scope.state / "owners", "*")]
    patterns += [(workdir, "bench-*") for workdir in scope.workdirs]
    return [str(path) for directory, glob in patterns for path in sorted(directory.glob(glob))]


def inventory(scope: Scope) -> list[str]:
    """Everything the run left, one description each; empty when nothing is."""
    return containers(scope) + qemu_processes(scope) + worker_processes(scope) + files(scope)


def assert_nothing_left(scope: Scope, timeout_s: float = 10.0) -> None:
    """Wait until nothing is left (a killed process can take a moment to be reaped); fail
    with the list of what still is after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    left = inventory(scope)
    while left and time.monotonic() < end:
        time.sleep(0.2)
        left = inventory(scope)
    assert not left, f"left behind by run {scope.run_id}: {left}"
