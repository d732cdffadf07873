"""QEMU's command line: a path with a comma inside a ``key=value,...`` option reaches QEMU as
one value (QEMU's own syntax doubles the comma), checked by QEMU itself, paused before boot."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.targets.qemu import Machine, free_port, terminate

QEMU = "qemu-system-x86_64"
pytestmark = pytest.mark.skipif(
    shutil.which(QEMU) is None or shutil.which("qemu-img") is None, reason="QEMU missing"
)


@contextmanager
def devices_set_up(argv: list[str], tmp_path: Path) -> Iterator[subprocess.CompletedProcess[str]]:
    """Start QEMU from ``argv`` without booting a guest, paused: it returns once its devices
    are set up (``-daemonize``), so its status says whether it accepted them. Stopped after."""
    pidfile = tmp_path / "qemu.pid"
    done = subprocess.run(
        [*without_boot(argv), "-S", "-daemonize", "-pidfile", str(pidfile)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        yield done
    finally:
        if pidfile.exists():
            terminate(int(pidfile.read_text()))


def without_boot(argv: list[str]) -> list[str]:
    """``argv`` without the kernel, initrd and command line (no guest is booted here)."""
    out: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in ("-kernel", "-initrd", "-append"):
            skip = True
        else:
            out.append(word)
    return out


def test_paths_with_commas_reach_qemu_intact(tmp_path: Path) -> None:
    guest = tmp_path / "run,1-guest"
    guest.mkdir()
    package = tmp_path / "pkg,1.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(package), "1M"], check=True)
    overlay = guest / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(overlay), "1M"], check=True)
    nowhere = tmp_path / "absent"
    machine = Machine(QEMU, "tcg", "max", 1, 64, "writeback", nowhere, nowhere, nowhere, package)
    argv = machine.command(guest, free_port(), "bench-r1-t")

    drives = [argv[i + 1] for i, word in enumerate(argv) if word == "-drive"]
    assert drives[0].startswith(f"file={str(overlay).replace(',', ',,')},format=qcow2,")
    assert drives[1].startswith(f"file={str(package).replace(',', ',,')},format=raw,")
    assert ",," in drives[0] and ",," in drives[1]

    with devices_set_up(argv, tmp_path) as done:
        assert done.returncode == 0, done.stderr  # before: "Invalid parameter '1-guest/...'"
        assert (guest / "console.log").exists()  # -serial file: takes its path verbatim
