"""Interrupts: a signal inside a deferred block is raised only when the block is done, and
Ctrl-C ends the waits of cells running in other threads (``--parallel-hosts``) at once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from yaml import safe_load as yaml_load

from bench import interrupts
from bench.results import load_manifest
from bench.targets import qemu
from tests.conftest import REPO
from tests.sshd import SSHD, SshServer
from tests.test_vm_static import static_vm


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_is_held_until_the_block_ends(sig: signal.Signals) -> None:
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    finished = False
    try:
        with pytest.raises(KeyboardInterrupt), interrupts.deferred():
            os.kill(os.getpid(), sig)
            finished = True  # still running after the signal arrived
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_signal_no_interrupt() -> None:
    with interrupts.deferred():
        value = 1
    assert value == 1


# --- Ctrl-C with --parallel-hosts: cells run in other threads, which never see the signal ---
#
# Each run below gets past its fingerprint (the first start command / QEMU start fails at
# once on purpose) so that the wait interrupted is a cell's, in a lane thread. Then the start
# command sleeps for ten minutes, or QEMU starts paused (-S) and never boots: only a wait that
# watches the run's cancel flag ends before its own timeout.

EXIT_S = 5.0  # how soon bench must be gone after Ctrl-C (the waits are 60 s and more)

START_ONCE = """\
#!/bin/sh
# The first start (the fingerprint's) fails; every later one "boots" for ten minutes.
if [ ! -e {marker} ]; then touch {marker}; echo "not this time" >&2; exit 1; fi
sleep 600 &
echo $! > {pidfile}
wait
"""

QEMU_ONCE = """\
#!/bin/sh
# Real QEMU, except that the first guest (the fingerprint's) fails to start.
case "$1" in --version) exec qemu-system-x86_64 "$@";; esac
if [ ! -e {marker} ]; then touch {marker}; echo "not this time" >&2; exit 1; fi
exec qemu-system-x86_64 "$@"
"""

TRAIN = "{name: train, kind: train_step, batch_size: 8, steps: 4, warmup_steps: 1}"


def script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def start_bench(suite: Path, results: Path, run_id: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bench.cli", "run", str(suite), "--results-dir"]
    command += [str(results), "--run-id", run_id, "--parallel-hosts", "2", "--no-report"]
    return subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_until(condition, proc: subprocess.Popen[str], timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.05)


def interrupt(proc: subprocess.Popen[str]) -> tuple[float, str]:
    """Ctrl-C; seconds until bench exited (killed after EXIT_S * 4) and its stderr."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=EXIT_S * 4)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
    return time.monotonic() - sent, stderr


@pytest.mark.slow
@pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server missing")
def test_ctrl_c_ends_a_static_vm_start_command_in_another_thread(tmp_path: Path) -> None:
    vm = SshServer(tmp_path / "vm").setup()  # never started: the start command "boots" it
    pidfile = tmp_path / "sleep.pid"
    start = script(
        tmp_path / "start.sh", START_ONCE.format(marker=tmp_path / "tried", pidfile=pidfile)
    )
    target = static_vm(vm, tmp_path, start=[str(start)], stop=["true"], command_timeout_s=120)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        json.dumps({"name": "intr", "targets": [target], "workloads": [yaml_load(TRAIN)]})
    )
    run_id = f"s{uuid.uuid4().hex[:8]}"
    proc = start_bench(suite, tmp_path / "r", run_id)
    sleeper = 0
    try:
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), proc)
        sleeper = int(pidfile.read_text())
        took, stderr = interrupt(proc)
        assert proc.returncode == 130, stderr
        assert took < EXIT_S, f"bench took {took:.1f} s to stop"
        assert not alive(sleeper)  # the start command's whole process group is gone
        assert load_manifest(tmp_path / "r" / "intr" / run_id)["status"] == "interrupted"
    finally:
        if proc.poll() is None:
            proc.kill()
        if sleeper and alive(sleeper):
            os.kill(sleeper, signal.SIGKILL)


def guest_dirs(run_id: str) -> list[Path]:
    return [d for d, _ in qemu.owners() if d.name.startswith(f"{run_id}-")]


def qemu_processes(run_id: str) -> list[int]:
    """Real QEMU processes (not the wrapper script) started for ``run_id``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            comm = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if comm.startswith("qemu-system") and f"bench-{run_id}-".encode() in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="QEMU missing")
def test_ctrl_c_ends_a_guest_boot_in_another_thread(tmp_path: Path) -> None:
    wrapper = script(tmp_path / "qemu", QEMU_ONCE.format(marker=tmp_path / "tried"))
    target = {
        "name": "vm",
        "kind": "vm",
        "accel": "tcg",
        "memory": "512m",
        "qemu": str(wrapper),
        "extra_args": ["-S"],  # the guest's CPUs never start: the boot never completes
        "boot_timeout_s": 120,
    }
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        json.dumps({"name": "intr", "targets": [target], "workloads": [yaml_load(TRAIN)]})
    )
    run_id = f"q{uuid.uuid4().hex[:8]}"
    proc = start_bench(suite, tmp_path / "r", run_id)
    try:
        wait_until(lambda: qemu_processes(run_id), proc, timeout=1800)  # may build the guest
        took, stderr = interrupt(proc)
        assert proc.returncode == 130, stderr
        assert took < EXIT_S, f"bench took {took:.1f} s to stop"
        assert not qemu_processes(run_id)
        assert not guest_dirs(run_id)
        assert load_manifest(tmp_path / "r" / "intr" / run_id)["status"] == "interrupted"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in qemu_processes(run_id):
            os.kill(pid, signal.SIGKILL)
        for directory in guest_dirs(run_id):
            shutil.rmtree(directory)
