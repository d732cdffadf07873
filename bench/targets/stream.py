"""Reading a worker's JSON-lines protocol, whatever carries the bytes.

Every target kind ends up with two byte streams (the worker's stdout and stderr): a pipe, an
SSH channel, a container attach. This module turns them into parsed events with a deadline and
into ``WorkerError``s that carry the tail of stderr, so failure handling is written once.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from bench.errors import WorkerError

_EOF = object()
STDERR_TAIL_LINES = 20


class EventStream:
    """Collects stdout lines into a queue and keeps the last lines of stderr."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._lines: queue.Queue[Any] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._threads: list[threading.Thread] = []

    def attach(self, stdout: Iterable[bytes], stderr: Iterable[bytes] | None) -> None:
        """Start daemon threads that drain both streams (so the worker never blocks on a pipe)."""
        self._spawn(self._pump_stdout, stdout)
        if stderr is not None:
            self._spawn(self._pump_stderr, stderr)

    def attach_frames(self, frames: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Drain a demultiplexed stream of (stdout, stderr) chunks, as a container attach gives.

        Chunks are not lines: they are split here, and a partial line waits for its end.
        """
        self._spawn(self._pump_frames, frames)  # type: ignore[arg-type]

    def _spawn(self, fn: Callable[[Iterable[bytes]], None], stream: Iterable[bytes]) -> None:
        thread = threading.Thread(target=fn, args=(stream,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _pump_stdout(self, stream: Iterable[bytes]) -> None:
        try:
            for raw in stream:
                self._lines.put(raw if isinstance(raw, bytes) else raw.encode())
        except (OSError, ValueError):
            pass  # the stream was closed under us during teardown
        finally:
            self._lines.put(_EOF)

    def _pump_frames(self, frames: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        pending = {1: b"", 2: b""}
        try:
            for pair in frames:
                for fd, chunk in zip((1, 2), pair, strict=True):
                    if chunk:
                        *lines, pending[fd] = (pending[fd] + chunk).split(b"\n")
                        self._emit_lines(fd, lines)
        except Exception:  # a closed stream ends the output, whatever the library raised
            pass
        finally:
            self._emit_lines(1, [pending[1]] if pending[1] else [])
            self._emit_lines(2, [pending[2]] if pending[2] else [])
            self._lines.put(_EOF)

    def _emit_lines(self, fd: int, lines: list[bytes]) -> None:
        for line in lines:
            if fd == 1:
                self._lines.put(line + b"\n")
            else:
                self._stderr.append(line.decode(errors="replace").rstrip())

    def _pump_stderr(self, stream: Iterable[bytes]) -> None:
        try:
            for raw in stream:
                self._stderr.append(raw.decode(errors="replace").rstrip())
        except (OSError, ValueError):
            pass

    def stderr_tail(self) -> str:
        """The last lines the worker wrote to stderr."""
        return "\n".join(self._stderr)

    def join(self, timeout: float = 2.0) -> None:
        """Wait briefly for the pump threads after the streams are closed."""
        for thread in self._threads:
            thread.join(timeout)

    def events(
        self,
        deadline: float,
        exit_status: Callable[[], int | None],
        cancel: threading.Event | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield events until ``result``; raise ``WorkerError`` on error, exit or timeout.

        ``cancel`` lets another thread stop the wait (Ctrl-C while cells run in parallel): it
        raises ``KeyboardInterrupt`` here, so the deployment tears down as it would in the
        main thread.
        """
        while True:
            if cancel is not None and cancel.is_set():
                raise KeyboardInterrupt
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerError(f"{self.label}: worker timed out", stderr_tail=self.stderr_tail())
            try:
                raw = self._lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if raw is _EOF:
                self.join()
                raise self._early_exit(exit_status())
            event = _parse(raw)
            if event is None:
                continue
            if event.get("event") == "error":
                raise self._reported(event)
            yield event
            if event.get("event") == "result":
                return

    def _early_exit(self, status: int | None) -> WorkerError:
        code = "unknown status" if status is None else f"status {status}"
        if status is not None and status < 0:
            code = f"signal {-status}"
        tail = self.stderr_tail()
        last = tail.splitlines()[-1] if tail else "no stderr output"
        return WorkerError(
            f"{self.label}: worker exited ({code}) before reporting a result: {last}",
            stderr_tail=tail,
        )

    def _reported(self, event: dict[str, Any]) -> WorkerError:
        kind = event.get("error", "Error")
        message = event.get("message", "")
        hint = None
        if kind == "ModuleNotFoundError" and "torch" in message:
            hint = "torch is missing on the target: install torch into the target's python"
        return WorkerError(
            f"{self.label}: {kind}: {message}", stderr_tail=self.stderr_tail(), hint=hint
        )


def _parse(raw: bytes) -> dict[str, Any] | None:
    """One protocol line, or None for anything else a library printed to stdout."""
    line = raw.strip()
    if not line.startswith(b"{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "event" in value else None
