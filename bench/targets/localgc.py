"""``bench gc`` for ``kind: local``: worker directories in a temp dir whose owner is gone, with
the worker processes working in them.

A process counts as a bench worker of directory D only when its working directory is inside
D *and* its environment has ``TMPDIR`` inside D (bench starts every worker so): a shell that
someone opened in D is never killed. The system temp dir is searched on every pass, and each
temp dir a dead run recorded (a worker's ``TMPDIR`` may have pointed elsewhere).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from bench.errors import TargetError
from bench.leftovers import WORKERS, Sweep
from bench.targets.local import workdir_owner

KILL_WAIT_S = 5.0
HEADING = "local worker(s)"


class Workers:
    """The worker directories (and their processes) of dead runs; each temp dir once."""

    stage = WORKERS
    headings = (HEADING,)
    records = ("local_tmp",)

    def __init__(self) -> None:
        self.scanned: set[str] = set()

    def recorded(self, item: dict[str, Any], sweep: Sweep) -> bool:
        return self._workdirs(str(item.get("root")), sweep)

    def unrecorded(self, sweep: Sweep) -> None:
        self._workdirs(tempfile.gettempdir(), sweep)

    def _workdirs(self, root: str, sweep: Sweep) -> bool:
        """Remove the marked worker directories in ``root`` whose owner is gone, with the
        worker processes in them; whether all went."""
        if root in self.scanned:
            return True
        self.scanned.add(root)
        clean = True
        for workdir, token in marked_workdirs(Path(root)):
            if sweep.spares(token):
                continue
            if not sweep.take(HEADING, lambda w=workdir: local_worker(w, sweep.dry_run)):
                clean = False
        return clean and not sweep.dry_run


def marked_workdirs(root: Path) -> list[tuple[Path, str]]:
    """Worker directories in the temp dir ``root`` with the owner token each is marked with."""
    out = []
    for path in root.glob("bench-*"):
        if path.is_symlink() or not path.is_dir():
            continue
        token = workdir_owner(str(path))
        if token:
            out.append((path, token))
    return out


def local_worker(workdir: Path, dry_run: bool) -> str:
    """Kill the worker processes of a worker directory and remove it; what was removed."""
    pids = workers_in(workdir)
    line = str(workdir) + (f" and {len(pids)} worker process(es)" if pids else "")
    if not dry_run:
        kill(pids)
        shutil.rmtree(workdir, ignore_errors=True)
        if workdir.exists():
            raise TargetError(f"gc: cannot remove {workdir}")
    return line


def workers_in(workdir: Path) -> list[int]:
    """Processes working in ``workdir`` with their TMPDIR there: its bench workers."""
    root = str(workdir)
    inside = lambda p: p == root or p.startswith(root + "/")  # noqa: E731
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        tmp = [e[7:].decode(errors="replace") for e in env if e.startswith(b"TMPDIR=")]
        if inside(cwd) and tmp and inside(tmp[0]):
            found.append(int(entry.name))
    return found


def kill(pids: list[int]) -> None:
    """SIGKILL the workers, and the process group of each that leads one (a worker runs in a
    session of its own: its group holds whatever it started), and wait until they are gone."""
    for pid in pids:
        with suppress(OSError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
        with suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + KILL_WAIT_S
    while any(_running(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rsplit(")", 1)[-1].split()[:1] != ["Z"]
