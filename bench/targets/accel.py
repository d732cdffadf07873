"""Choosing between KVM and TCG by trying, not by looking for ``/dev/kvm``.

``/dev/kvm`` can exist and still be useless: nested or paravirtual KVM may make QEMU abort on
an MSR it cannot set, or run a guest that hangs before its first console line. So ``accel:
auto`` boots the guest's own kernel under KVM with no root filesystem and waits, bounded, for
the kernel's first line on the serial console; anything else falls back to TCG with the reason
recorded. The verdict is cached per host boot (``/proc/sys/kernel/random/boot_id``), QEMU
binary, kernel and CPU model, so the probe's seconds are paid once per boot, not per run.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench import bootcache

KVM_DEVICE = Path("/dev/kvm")
FIRST_LINE = b"Linux version"
PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Accel:
    """The accelerator a VM target uses and why."""

    name: str  # "kvm" | "tcg"
    reason: str

    @property
    def label(self) -> str:
        """How tables and plots name it: TCG numbers say nothing about KVM."""
        return "KVM" if self.name == "kvm" else "TCG (software emulation)"


def choose(requested: str, binary: str, kernel: Path, cpu: str) -> Accel:
    """The accelerator for ``requested`` (auto | kvm | tcg)."""
    if requested == "tcg":
        return Accel("tcg", "requested in the suite")
    if requested == "kvm":
        return Accel("kvm", "requested in the suite")
    problem = kvm_problem(binary, kernel, cpu)
    if problem is None:
        return Accel("kvm", "auto: a probe guest booted under KVM")
    return Accel("tcg", f"auto: KVM unusable ({problem})")


def kvm_problem(binary: str, kernel: Path, cpu: str) -> str | None:
    """Why KVM cannot run a guest here, or None when it can (cached per host boot)."""
    if not KVM_DEVICE.exists():
        return f"{KVM_DEVICE} does not exist"
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return f"no read/write access to {KVM_DEVICE}"
    parts = (binary, str(kernel), cpu)
    problem, _ = bootcache.remembered("kvm-probe", parts, lambda: probe(binary, kernel, cpu))
    return problem


def probe(binary: str, kernel: Path, cpu: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Boot ``kernel`` under KVM until its first console line; None on success."""
    command = [
        binary, "-accel", "kvm", "-cpu", cpu, "-m", "128", "-nodefaults", "-display", "none",
        "-no-reboot", "-serial", "stdio", "-kernel", str(kernel),
        "-append", "console=ttyS0 panic=-1 init=/nonexistent",
    ]  # fmt: skip
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    except OSError as exc:
        return f"cannot start {binary}: {exc.strerror}"
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    output, end = b"", time.monotonic() + timeout_s
    try:
        while time.monotonic() < end:
            output += process.stdout.read() or b""
            if FIRST_LINE in output:
                return None
            if process.poll() is not None:
                output += process.stdout.read() or b""
                return _exit_problem(process.returncode, output)
            time.sleep(0.05)
        return f"no console output from a KVM guest within {timeout_s:g} s"
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def _exit_problem(status: int, output: bytes) -> str | None:
    if FIRST_LINE in output:
        return None
    lines = output.decode(errors="replace").strip().splitlines()
    return f"QEMU exited with status {status}: {lines[0] if lines else 'no output'}"
