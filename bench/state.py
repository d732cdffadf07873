"""What this invocation created outside its results, recorded where ``bench gc`` finds it.

Containers, QEMU guests and local worker directories carry their owner on themselves (a label,
an owner file, a marker file). Other leftovers cannot, or lie where gc would not look: a remote
run directory, a static VM that a start command booted, the Docker engine and the temp dir a
run used. Each is recorded here *before* it is created and forgotten once it is gone, in one
file per invocation (``<state dir>/owners/<pid>-<random>.json``, mode 0600, replaced
atomically). A run that ends normally leaves no file; after a SIGKILL the file tells
``bench gc`` what to clean and how to reach it. Passwords are never written: a target that logs
in with one is recorded as such, and gc says it cannot reach it.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

from bench import owner
from bench.errors import TargetError

OWNERS = "owners"
VERSION = 1


def state_dir() -> Path:
    """Where the harness keeps its own files (BENCH_STATE_DIR, else ~/.local/state/bench)."""
    configured = os.environ.get("BENCH_STATE_DIR")
    return Path(configured) if configured else Path.home() / ".local" / "state" / "bench"


def owners_dir() -> Path:
    """Where the invocations' records live."""
    return state_dir() / OWNERS


class Record:
    """One invocation's record: named items, each a JSON object with a ``kind``."""

    def __init__(self) -> None:
        self.token = owner.token()
        self.items: dict[str, dict[str, Any]] = {}
        self.path: Path | None = None
        self._lock = threading.Lock()

    def add(self, key: str, kind: str, /, **facts: Any) -> str:
        """Record (or update) item ``key``; on disk before this returns, so that nothing is
        created that a SIGKILL could leave unrecorded."""
        with self._lock:
            item = {**self.items.get(key, {}), **facts, "kind": kind}
            if self.items.get(key) == item:
                return key  # already on disk: nothing to write (nothing on a start-up clock)
            previous, self.items[key] = self.items.get(key), item
            try:
                self._write()
            except OSError as exc:
                self.items.pop(key)
                if previous is not None:
                    self.items[key] = previous
                raise TargetError(
                    f"cannot record {kind} in {owners_dir()}: {exc.strerror or exc}",
                    hint="set BENCH_STATE_DIR to a writable directory",
                ) from None
        return key

    def discard(self, key: str) -> None:
        """Forget item ``key`` (it is gone); the file goes with the last item. A failure to
        write only leaves gc an item that is already gone."""
        with self._lock:
            if self.items.pop(key, None) is not None:
                with suppress(OSError):
                    self._write()

    def _write(self) -> None:
        if not self.items:
            if self.path is not None:
                self.path.unlink(missing_ok=True)
                self.path = None  # the next item may go to another state dir (tests)
            return
        if self.path is None:
            directory = owners_dir()
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.path = directory / f"{os.getpid()}-{secrets.token_hex(4)}.json"
        body = {"version": VERSION, "owner": self.token, "items": self.items}
        write_private(self.path, json.dumps(body, indent=1) + "\n")


_current: Record | None = None
_current_lock = threading.Lock()


def current() -> Record:
    """This process's record (a forked child gets its own)."""
    global _current
    with _current_lock:
        if _current is None or _current.token != owner.token():
            _current = Record()
        return _current


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by its owner only from the start."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def records() -> list[tuple[Path, dict[str, Any]]]:
    """Every record on this machine with its contents (unreadable ones are skipped)."""
    directory = owners_dir()
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(body, dict) and isinstance(body.get("items"), dict):
            out.append((path, body))
    return out


def rewrite(path: Path, body: dict[str, Any], left: dict[str, dict[str, Any]]) -> None:
    """What gc could not clean stays recorded for the next gc; nothing left, no file."""
    if not left:
        path.unlink(missing_ok=True)
        return
    write_private(path, json.dumps({**body, "items": left}, indent=1) + "\n")
