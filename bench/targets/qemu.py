"""One QEMU guest process: started from a pristine overlay, waited on until it answers SSH,
and always torn down (QEMU terminated and reaped, overlay and runtime files deleted).

Each guest gets a directory under the harness's state directory holding its copy-on-write
overlay, serial console log, known_hosts and an ``owner.json`` naming the invocation that
started it (its owner token). A controller killed outright cannot clean up; ``bench gc`` reads
those files to find QEMU processes whose owner is gone and removes them with their
directories.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paramiko

from bench import interrupts, metadata, owner, state
from bench.errors import TargetError
from bench.state import state_dir
from bench.targets.sshconn import Endpoint, Unreachable, connect_once

OWNER_FILE = "owner.json"
CONSOLE_FILE = "console.log"
GUEST_PORT = 22
INIT_MARK = re.compile(rb"bench-guest: init ([0-9.]+)")
SSHD_MARK = b"bench-guest: sshd"
POLL_S = 0.05
BLIND_RETRY_S = 2.0


def vms_dir() -> Path:
    """Where running guests keep their overlay and runtime files."""
    return state_dir() / "vms"


@dataclass(frozen=True)
class Machine:
    """Everything QEMU is started with, resolved from the suite and the built guest."""

    binary: str
    accel: str
    cpu: str
    vcpus: int
    memory_mib: int
    disk_cache: str
    kernel: Path
    initrd: Path
    disk: Path
    package_disk: Path
    extra_args: tuple[str, ...] = ()
    pin: tuple[int, ...] = ()
    asset_disk: Path | None = None  # location volume: the assets' ext4 image, read-only

    def _asset_drive(self) -> list[str]:
        """The third virtio disk (``/dev/vdc`` in the guest) when the cell reads a volume."""
        if self.asset_disk is None:
            return []
        disk = opt_value(str(self.asset_disk))
        return ["-drive", f"file={disk},format=raw,if=virtio,readonly=on,cache={self.disk_cache}"]

    def command(self, directory: Path, port: int, name: str) -> list[str]:
        """The QEMU command line: direct kernel boot, virtio disk and net, console to a file.

        Values inside QEMU's ``key=value,...`` options are escaped (``opt_value``); the values
        of ``-kernel``, ``-initrd``, ``-append`` and ``-serial file:`` are taken verbatim.
        """
        append = "root=/dev/vda rw console=ttyS0 panic=-1 init=/sbin/bench-init quiet"
        overlay = opt_value(str(directory / "overlay.qcow2"))
        package = opt_value(str(self.package_disk))
        return [
            self.binary,
            "-name", f"{opt_value(name)},debug-threads=on",
            "-accel", self.accel,
            "-cpu", self.cpu,
            "-smp", str(self.vcpus),
            "-m", f"{self.memory_mib}M",
            "-nodefaults", "-display", "none", "-no-reboot",
            "-serial", f"file:{directory / CONSOLE_FILE}",
            "-kernel", str(self.kernel),
            "-initrd", str(self.initrd),
            "-append", append,
            "-drive", f"file={overlay},format=qcow2,if=virtio,cache={self.disk_cache}",
            "-drive", f"file={package},format=raw,if=virtio,readonly=on",
            *self._asset_drive(),
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_PORT}",
            "-device", "virtio-net-pci,netdev=net0",
            *self.extra_args,
        ]  # fmt: skip


def opt_value(text: str) -> str:
    """``text`` as one value of a QEMU ``key=value,...`` option: a comma is doubled, else it
    would end the value (a path with a comma would name another file plus a bogus option)."""
    return text.replace(",", ",,")


def free_port() -> int:
    """A loopback port nothing listens on now (QEMU binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Guest:
    """A QEMU process and its directory; ``destroy`` is idempotent and always safe."""

    machine: Machine
    run_id: str
    target: str
    label: str
    directory: Path = field(init=False)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _console_seen: bytes = b""

    def __post_init__(self) -> None:
        self.directory = vms_dir() / f"{self.run_id}-{uuid.uuid4().hex[:8]}"

    @property
    def console(self) -> Path:
        return self.directory / CONSOLE_FILE

    def start(self) -> None:
        """Owner file, overlay on the pristine disk, then QEMU (not waited for). The owner
        file comes first so that no directory of a live guest is ever without one."""
        self.directory.mkdir(parents=True)
        self._write_owner()
        overlay = self.directory / "overlay.qcow2"
        _qemu_img(self.machine.binary, self.machine.disk, overlay)
        self.port = free_port()
        self.console.touch()
        name = f"bench-{self.run_id}-{self.target}"
        command = self.machine.command(self.directory, self.port, name)
        log = (self.directory / "qemu.log").open("wb")
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        except OSError as exc:
            raise TargetError(f"{self.label}: cannot start {self.machine.binary}: {exc}") from None
        finally:
            log.close()
        self._write_owner(self.process.pid)
        if self.machine.pin:
            pin_vcpus(self.process.pid, self.machine.pin, self.label)

    def _write_owner(self, pid: int | None = None) -> None:
        record = {
            "owner": owner.token(),
            "controller": metadata.controller_label(),
            "qemu_pid": pid,
            "run_id": self.run_id,
            "target": self.target,
            "port": self.port,
        }
        state.write_private(self.directory / OWNER_FILE, json.dumps(record) + "\n")

    def wait_for_ssh(self, endpoint: Endpoint, deadline: float) -> paramiko.SSHClient:
        """Poll until the guest's sshd completes a login; the boot timeout and an exiting
        QEMU are errors that quote the console.

        Connections go out when the guest's init reports sshd starting (read from the serial
        console) and, blind and with a short timeout, every two seconds otherwise: QEMU's user
        network accepts on the host port long before the guest listens, so an early attempt
        given a long timeout would sit in a retransmit timer and distort the measured boot
        time. No attempt outlives the boot deadline.

        A cancelled run (Ctrl-C with ``--parallel-hosts``) kills QEMU, which also ends an SSH
        attempt in progress at once, and raises ``KeyboardInterrupt`` like Ctrl-C would.
        """
        with interrupts.on_cancel(self._kill):
            try:
                return self._poll_ssh(endpoint, deadline)
            except TargetError:
                interrupts.check()  # QEMU gone because the run was cancelled: say that
                raise

    def _kill(self) -> None:
        """SIGKILL QEMU (from the thread that cancels the run); ``destroy`` still reaps it."""
        if self.process is not None:
            with suppress(OSError):
                self.process.kill()

    def _poll_ssh(self, endpoint: Endpoint, deadline: float) -> paramiko.SSHClient:
        last_try = time.monotonic()
        while True:
            self._check_alive()
            now = time.monotonic()
            if now >= deadline:
                raise TargetError(
                    f"{self.label}: boot timeout: the guest did not answer SSH on port "
                    f"{self.port} in time; console: {self.console_tail()}",
                    hint="raise boot_timeout_s (software emulation boots slowly) or check "
                    "extra_args",
                )
            marked = SSHD_MARK in self._read_console()
            if marked or now - last_try >= BLIND_RETRY_S:
                last_try = now
                limit = endpoint.timeout_s if marked else BLIND_RETRY_S
                attempt = replace(endpoint, timeout_s=max(0.1, min(limit, deadline - now)))
                try:
                    return connect_once(attempt)
                except Unreachable:
                    pass
            interrupts.sleep(POLL_S)

    def _check_alive(self) -> None:
        assert self.process is not None
        status = self.process.poll()
        if status is not None:
            raise TargetError(
                f"{self.label}: QEMU exited with status {status}: {self.failure_detail()}"
            )

    def running(self) -> bool:
        """Whether the QEMU process is still there."""
        return self.process is not None and self.process.poll() is None

    def exit_status(self, within_s: float) -> int | None:
        """QEMU's exit status if it exits within ``within_s`` (a killed QEMU drops its
        sockets before the kernel has finished tearing down its memory), else None."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=within_s)
        except subprocess.TimeoutExpired:
            return None

    def failure_detail(self) -> str:
        """The last line QEMU printed, else the console's tail."""
        log = self.directory / "qemu.log"
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        return lines[-1] if lines else f"console: {self.console_tail()}"

    def _read_console(self) -> bytes:
        with self.console.open("rb") as handle:
            handle.seek(len(self._console_seen))
            self._console_seen += handle.read()
        return self._console_seen

    def console_tail(self, lines: int = 2) -> str:
        """The last console lines, for error messages ('(no output)' when silent)."""
        text = self._read_console().decode(errors="replace")
        kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(kept) if kept else "(no output)"

    def kernel_boot_s(self) -> float | None:
        """Guest uptime when its init started (kernel + initramfs), read from the console."""
        match = INIT_MARK.search(self._read_console())
        return float(match.group(1)) if match else None

    def destroy(self) -> None:
        """Terminate QEMU (the guest and its overlay are discarded, so nothing inside needs
        an orderly shutdown), reap it and delete the directory; safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            terminate(self.process.pid)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def terminate(pid: int, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; returns once the signal(s) were sent."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        if not _alive(pid):
            return
        time.sleep(0.05)
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie QEMU has released everything but its pid)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def _qemu_img(binary: str, disk: Path, overlay: Path) -> None:
    """A qcow2 overlay whose backing file is the pristine disk (never written to)."""
    tool = shutil.which("qemu-img") or str(Path(binary).with_name("qemu-img"))
    command = [tool, "create", "-q", "-f", "qcow2", "-b", str(disk), "-F", "raw", str(overlay)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise TargetError(f"cannot create the guest overlay: {exc}", hint=QEMU_HINT) from None
    if done.returncode != 0:
        raise TargetError(f"cannot create the guest overlay: {done.stderr.strip()}")


QEMU_HINT = "install QEMU (apt-get install qemu-system-x86 qemu-utils)"


def vcpu_threads(pid: int) -> dict[int, int]:
    """vCPU index -> thread id, from the names QEMU gives them with ``debug-threads=on``."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        match = re.fullmatch(r"CPU (\d+)/\w+", name)
        if match:
            out[int(match.group(1))] = int(task.name)
    return out


def pin_vcpus(pid: int, cpus: tuple[int, ...], label: str, timeout_s: float = 10.0) -> None:
    """Bind vCPU ``i`` to host CPU ``cpus[i]`` (QEMU names its vCPU threads at machine init,
    before the guest runs, so this waits at most a moment)."""
    end = time.monotonic() + timeout_s
    threads = vcpu_threads(pid)
    while len(threads) < len(cpus) and time.monotonic() < end:
        time.sleep(0.01)
        threads = vcpu_threads(pid)
    if len(threads) < len(cpus):
        raise TargetError(f"{label}: cannot pin vCPUs: QEMU shows {len(threads)} vCPU threads")
    for index, cpu in enumerate(cpus):
        try:
            os.sched_setaffinity(threads[index], {cpu})
        except OSError as exc:
            raise TargetError(f"{label}: cannot pin vCPU {index} to CPU {cpu}: {exc}") from None


def owners() -> list[tuple[Path, dict[str, Any]]]:
    """Every guest directory with its owner record (unreadable records count as empty)."""
    root = vms_dir()
    if not root.is_dir():
        return []
    out = []
    for directory in sorted(root.iterdir()):
        try:
            out.append((directory, json.loads((directory / OWNER_FILE).read_text())))
        except (OSError, ValueError):
            out.append((directory, {}))
    return out


def remove_guest(directory: Path, record: dict[str, Any]) -> None:
    """Kill the guest's QEMU and delete its files. The QEMU is the process whose command line
    names ``directory`` (its recorded pid may be missing, or reused by another process)."""
    for pid in _running_from(directory):
        terminate(pid)
    shutil.rmtree(directory, ignore_errors=True)


def _running_from(directory: Path) -> list[int]:
    """Live QEMU processes of the guest in ``directory``: those with its console argument
    (``-serial file:<directory>/console.log``; each guest's directory is unique)."""
    argument = f"file:{directory / CONSOLE_FILE}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument in arguments and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found
