"""The controller killed with SIGKILL mid-cell, then ``bench gc``: nothing is left.

For each target kind the controller is killed once the cell's deployment exists (the worker
process, the container, the remote cell directory, the QEMU guest), and ``bench gc`` run with
the same state directory must remove every leftover: worker processes and their temp dirs,
containers, remote run directories, static VMs the run booted, QEMU guests, and the
invocation's record itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.conftest import REPO, bench_cli
from tests.docker_engine import ensure_engine, labelled
from tests.faults import runs
from tests.procfs import working_in
from tests.sshd import SSHD, SshServer

pytestmark = [pytest.mark.fault, pytest.mark.slow]

needs_sshd = pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server missing")
LONG = {"name": "long", "kind": "command", "argv": ["sleep", "300"]}
"""A cell that outlives the test: the worker, and the program it runs as its child."""


@pytest.fixture
def state(tmp_path: Path) -> dict[str, str]:
    """A private state directory: what the killed run recorded, and what gc reads."""
    return {"BENCH_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}


def start(tmp_path: Path, targets: list[dict], workload: dict, env: dict[str, str]):
    """``bench run`` of one repetition in the background; (process, run id)."""
    run_id = f"k{uuid.uuid4().hex[:8]}"
    suite = tmp_path / f"suite-{run_id}.yaml"
    body = {"name": "killed", "repetitions": 1, "targets": targets, "workloads": [workload]}
    suite.write_text(json.dumps(body))  # JSON is YAML
    args = ["run", str(suite), "--results-dir", str(tmp_path / "r"), "--run-id", run_id]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, run_id


def wait_for(condition: Callable[[], object], proc: subprocess.Popen, timeout: float = 120):
    """``condition()`` once it is true; the controller must still run meanwhile."""
    end = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "timed out waiting for the cell to be deployed"
        time.sleep(0.05)


def kill_controller(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def gc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = bench_cli("gc", *args, env=env, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def no_records(env: dict[str, str]) -> bool:
    owners = Path(env["BENCH_STATE_DIR"]) / "owners"
    return not owners.exists() or not list(owners.iterdir())


def workers_in(root: str, prefix: str) -> list[int]:
    """Processes whose working directory is under ``root`` in an entry named ``prefix*``."""
    return [p.pid for p in working_in(os.path.join(root, prefix))]


def running(root: str, prefix: str) -> Callable[[], list[int]]:
    """A condition for ``wait_for``: the processes working under ``root`` in ``prefix*`` once
    the cell's program runs there (the worker and its ``sleep``, which works in the cell's
    directory too); none before, so that no process joins those found."""

    def found() -> list[int]:
        pids = workers_in(root, prefix)
        return pids if any(b"sleep" in cmdline(pid) for pid in pids) else []

    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def stop(pids: list[int]) -> list[int]:
    """SIGSTOP the worker and its program: like a worker deep in a long step, they cannot
    notice that the controller is gone (a running one may exit on its closed pipe), so gc must
    kill them."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return pids


def test_local_worker_and_temp_dir(tmp_path: Path, state) -> None:
    target = {"name": "bare", "kind": "local"}
    proc, run_id = start(tmp_path, [target], LONG, state)
    tmp = tempfile.gettempdir()
    try:
        stopped = stop(wait_for(running(tmp, f"bench-{run_id}-"), proc))
        kill_controller(proc)
        assert workers_in(tmp, f"bench-{run_id}-") == stopped
        done = gc(state)
        assert done.returncode == 0, done.stderr
        assert not workers_in(tmp, f"bench-{run_id}-")
        assert not list(Path(tmp).glob(f"bench-{run_id}-*"))
        # Its own directory and the stopped worker with its program (a directory another
        # killed run left on this machine is gc's to remove as well, so the count may be higher).
        mine = [line for line in done.stdout.splitlines() if f"/bench-{run_id}-" in line]
        assert len(mine) == 1 and mine[0].endswith(" and 2 worker process(es)"), done.stdout
        assert no_records(state)
    finally:
        for pid in workers_in(tmp, f"bench-{run_id}-"):
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient:
    return ensure_engine()


@pytest.fixture(scope="module")
def image(engine, tmp_path_factory) -> str:
    """The matched image (built, or found in the cache, by ``bench build``)."""
    suite = tmp_path_factory.mktemp("build") / "suite.yaml"
    body = {"name": "b", "targets": [{"name": "c", "kind": "docker", "build": True}]}
    suite.write_text(json.dumps({**body, "workloads": [LONG]}))
    done = bench_cli("build", str(suite), timeout=1800)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("image ", 1)[1].split()[0]


def cell_containers(client: docker.DockerClient, run_id: str) -> list[str]:
    """Running containers of ``run_id`` that run a cell (not the fingerprint)."""
    found = client.containers.list(filters={"label": f"bench.run_id={run_id}"})
    return [c.id for c in found if "run" in c.attrs["Config"]["Cmd"]]


def test_container_on_the_suites_engine(tmp_path: Path, state, engine, image) -> None:
    """The suite names its engine; gc, whose default engine is another (absent) one, still
    finds the container through the dead run's record."""
    target = {
        "name": "ctr",
        "kind": "docker",
        "image": image,
        "python": "/opt/bench/venv/bin/python",
        "docker_host": "unix:///var/run/docker.sock",
    }
    proc, run_id = start(tmp_path, [target], LONG, state)
    try:
        wait_for(lambda: cell_containers(engine, run_id), proc)
        kill_controller(proc)
        assert labelled(engine, run_id)
        elsewhere = {**state, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
        done = gc(elsewhere)
        assert done.returncode == 0, done.stderr
        assert not labelled(engine, run_id), done.stdout + done.stderr
        assert "removed 1 container(s)" in done.stdout, done.stdout
        assert no_records(state)
    finally:
        for found in engine.containers.list(all=True, filters={"label": f"bench.run_id={run_id}"}):
            with suppress(docker.errors.NotFound):
                found.remove(force=True)


@needs_sshd
def test_remote_run_directory(server, remote_dir: Path, tmp_path: Path, state) -> None:
    proc, _ = start(tmp_path, [runs.ssh_target(server, remote_dir)], LONG, state)
    try:
        stopped = stop(wait_for(running(str(remote_dir), "bench-"), proc))
        kill_controller(proc)
        assert workers_in(str(remote_dir), "bench-") == stopped
        owners = Path(state["BENCH_STATE_DIR"]) / "owners"
        for path in [owners, *owners.glob("*")] if owners.exists() else []:  # private
            assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path
        done = gc(state)
        assert done.returncode == 0, done.stderr
        assert not workers_in(str(remote_dir), "bench-")
        assert list(remote_dir.iterdir()) == []
        assert "removed 1 remote run dir(s)" in done.stdout, done.stdout
        assert no_records(state)
    finally:
        for pid in workers_in(str(remote_dir), "bench-"):
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_password_target_is_named_not_reached(tmp_path: Path, state) -> None:
    """A dead run's directory on a host it logged in to with a password: gc has no password
    (none is ever stored), says what to remove by hand, and keeps the record."""
    owners = Path(state["BENCH_STATE_DIR"]) / "owners"
    owners.mkdir(parents=True)
    item = {
        "kind": "remote_dir",
        "host": "127.0.0.1",
        "port": 22,
        "user": "bench",
        "password": True,
        "path": "/tmp/bench-x-0000",
    }
    dead = f"{socket.gethostname()}:999999999:1:-:0000"
    record = owners / "1-dead.json"
    record.write_text(json.dumps({"version": 1, "owner": dead, "items": {"r": item}}))
    done = gc(state)
    assert done.returncode == 1, done.stdout
    lines = [line for line in done.stderr.splitlines() if line.startswith("not removed: ")]
    assert len(lines) == 1 and "uses a password" in lines[0], done.stderr
    assert "remove /tmp/bench-x-0000 there by hand" in lines[0]
    assert json.loads(record.read_text())["items"] == {"r": item}


@needs_sshd
def test_a_recorded_directory_replaced_by_a_symlink_is_left_alone(
    server, remote_dir: Path, tmp_path: Path, state
) -> None:
    """A dead run recorded its remote directory before making it; if a symlink stands there
    instead, gc neither follows it nor deletes what it points at, and says so."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("precious")
    planted = remote_dir / "bench-x-0000"
    planted.symlink_to(victim)
    owners = Path(state["BENCH_STATE_DIR"]) / "owners"
    owners.mkdir(parents=True)
    item = {
        "kind": "remote_dir",
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "key": str(server.client_key),
        "known_hosts": str(server.known_hosts),
        "python": sys.executable,
        "path": str(planted),
    }
    dead = f"{socket.gethostname()}:999999999:1:-:0000"
    (owners / "1-dead.json").write_text(
        json.dumps({"version": 1, "owner": dead, "items": {"r": item}})
    )
    done = gc(state)
    assert done.returncode == 1, done.stdout
    assert "left alone" in done.stderr, done.stderr
    assert (victim / "keep").read_text() == "precious"
    assert planted.is_symlink()


START = """\
#!/bin/sh
sleep 0.2
exec {sshd} -f {config}
"""
STOP = """\
kill "$(cat {pidfile})" || exit 1
i=0
while [ -e {pidfile} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
"""


@needs_sshd
def test_static_vm_booted_by_the_run(remote_dir: Path, tmp_path: Path, state) -> None:
    """A static VM (an sshd its start command launches) is stopped by gc, after gc removed
    the run directory in it."""
    vm = SshServer(tmp_path / "vm").setup()
    pidfile = vm.dir / "sshd.pid"
    start_script = tmp_path / "start.sh"
    start_script.write_text(START.format(sshd=SSHD, config=vm.dir / "sshd_config"))
    target = {
        "name": "vm",
        "kind": "vm",
        "provisioner": "static",
        "host": vm.host,
        "port": vm.port,
        "key": str(vm.client_key),
        "known_hosts": str(vm.known_hosts),
        "python": sys.executable,
        "workdir": str(remote_dir),
        "start": ["sh", str(start_script)],
        "stop": ["sh", "-c", STOP.format(pidfile=pidfile)],
        "boot_timeout_s": 30,
    }
    proc, _ = start(tmp_path, [target], LONG, state)
    try:
        workers = wait_for(running(str(remote_dir), "bench-"), proc)
        assert gc(state).returncode == 0  # the run still owns all of it: nothing goes
        assert workers_in(str(remote_dir), "bench-") == workers and pidfile.exists()
        assert proc.poll() is None
        kill_controller(proc)
        assert pidfile.exists() and list(remote_dir.iterdir())
        done = gc(state)
        assert done.returncode == 0, done.stderr
        assert not pidfile.exists() and not listening(vm)
        assert not workers_in(str(remote_dir), "bench-")
        assert list(remote_dir.iterdir()) == []
        assert "removed 1 static VM(s)" in done.stdout, done.stdout
        assert no_records(state)
    finally:
        if pidfile.exists():
            with suppress(OSError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)


def listening(server: SshServer) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((server.host, server.port)) == 0


def test_gc_tells_a_reused_pid_from_its_owner(tmp_path: Path, state, engine, image) -> None:
    """An artefact whose owner's pid now belongs to another process (this one: alive, but
    started at another time) is an orphan; one owned by a live process is kept."""
    host, pid = socket.gethostname(), os.getpid()
    start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    me = f"{host}:{pid}:{start_ticks}:{boot}:0000"  # this process: alive
    reused = f"{host}:{pid}:{start_ticks - 1}:{boot}:0000"  # an earlier process with its pid
    run_id = f"r{uuid.uuid4().hex[:8]}"
    sleep = ["/opt/bench/venv/bin/python", "-c", "import time; time.sleep(120)"]
    made = []
    vms = Path(state["BENCH_STATE_DIR"]) / "vms"
    try:
        for name, token in (("orphan", reused), ("live", me)):
            labels = {
                "bench.run_id": run_id,
                "bench.target": name,
                "bench.controller": f"{host}:{pid}",
                "bench.owner": token,
            }
            made.append(engine.containers.run(image, sleep, detach=True, labels=labels))
            guest = vms / f"{run_id}{name}-0000"
            guest.mkdir(parents=True)
            record = {"owner": token, "controller": f"{host}:{pid}", "run_id": run_id}
            (guest / "owner.json").write_text(json.dumps(record))
        done = gc(state)
        assert done.returncode == 0, done.stderr
        assert labelled(engine, run_id) == [made[1].id]
        assert [d.name for d in vms.iterdir()] == [f"{run_id}live-0000"]
    finally:
        for container in made:
            with suppress(docker.errors.NotFound):
                container.remove(force=True)


GUEST_CONTROLLER = """
import sys
from bench.build.builder import Builder
from bench.suite import parse_suite
from bench.targets.vmqemu import QemuVmTarget
suite = parse_suite(sys.argv[1])
target = QemuVmTarget(suite.targets[0])
target.prepare(Builder(suite.build))
spec = {"workload": suite.workloads[0].model_dump(mode="json"), "seed": 0}
with target.deploy(spec, sys.argv[2]):
    pass
"""


def qemu_processes(run_id: str) -> list[int]:
    """QEMU processes of ``run_id``'s guests (their -name carries it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"bench-{run_id}-".encode() in cmdline and b"qemu" in cmdline:
            found.append(int(entry.name))
    return found


def test_qemu_guest(tmp_path: Path, state) -> None:
    """A cell's deployment (a guest booting for it) outlives its killed controller."""
    vm = {"name": "vm", "kind": "vm", "vcpus": 1, "memory": "512m", "accel": "tcg"}
    body = json.dumps({"name": "g", "targets": [vm], "workloads": [LONG]})
    build = tmp_path / "build.yaml"
    build.write_text(body)
    assert bench_cli("build", str(build), timeout=1800).returncode == 0
    run_id = f"q{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [sys.executable, "-c", GUEST_CONTROLLER, body, run_id],
        cwd=REPO,
        env={**os.environ, **state},
        stderr=subprocess.PIPE,
        text=True,
    )
    guests = Path(state["BENCH_STATE_DIR"]) / "vms"

    def booting() -> bool:
        owners = [json.loads(p.read_text()) for p in guests.glob(f"{run_id}-*/owner.json")]
        return any(o.get("qemu_pid") for o in owners) and bool(qemu_processes(run_id))

    try:
        wait_for(booting, proc)
        kill_controller(proc)
        assert qemu_processes(run_id)
        done = gc(state)
        assert done.returncode == 0, done.stderr
        end = time.monotonic() + 15  # gc sent the signal; the kernel tears QEMU down
        while qemu_processes(run_id) and time.monotonic() < end:
            time.sleep(0.05)
        assert not qemu_processes(run_id)
        assert not list(guests.iterdir())
        assert "removed 1 VM guest(s)" in done.stdout, done.stdout
        assert no_records(state)
    finally:
        for pid in qemu_processes(run_id):
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)
