"""Worker-to-controller event protocol: one JSON object per stdout line.

The controller reads the worker's stdout line by line, so every event is a
single, flushed line of JSON. Each event carries ``event`` (its type) and
``t`` (the worker's ``time.monotonic()``); ``t`` is informative only, since
the controller's clock is the reference for anything it measures itself.

This module imports nothing heavy: the ``start`` event must be written before
torch is imported, so that the controller can tell process start-up cost
apart from library import cost.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

Event = dict[str, Any]
Emit = Callable[[Event], None]


def make_event(name: str, **fields: Any) -> Event:
    """Build an event dict with the fields every event must carry."""
    return {"event": name, "t": time.monotonic(), **fields}


def start_event() -> Event:
    """The first event of a run, sent before any heavy import."""
    return make_event("start", pid=os.getpid())


def error_event(exc: BaseException) -> Event:
    """Describe a failure so the controller can report it without stderr.

    ``message`` is forced onto one line because controllers show it in
    tables; the full traceback travels alongside for diagnosis.
    """
    message = " ".join(str(exc).split()) or type(exc).__name__
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return make_event("error", error=type(exc).__name__, message=message, traceback=trace)


def discard(event: Event) -> None:
    """An emitter that drops events, for in-process runs that need none."""


class Emitter:
    """Write events as JSON lines to a stream, flushing after each one.

    Flushing per event matters because the controller uses the arrival of
    ``ready`` and ``first_step`` to time the phases of the worker's life.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    @classmethod
    def claim_stdout(cls) -> Emitter:
        """Reserve the real stdout for events and send stray output to stderr.

        Libraries (or their C code) sometimes print to stdout; one such line
        would corrupt the protocol. The original stdout descriptor is kept
        privately for events, while descriptor 1 and ``sys.stdout`` are
        pointed at stderr.
        """
        sys.stdout.flush()
        private_fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        stream = os.fdopen(private_fd, "w", encoding="utf-8", closefd=True)
        return cls(stream)

    def __call__(self, event: Event) -> None:
        line = json.dumps(event, separators=(",", ":"), allow_nan=False)
        self._stream.write(line + "\n")
        self._stream.flush()
