"""Making teardown and result writes finish even when Ctrl-C arrives in the middle.

Ctrl-C raises ``KeyboardInterrupt`` wherever the main thread happens to be. If that is inside
the code that kills a worker, removes its directory or writes a cell, the interrupt would
leave a process or a file behind. Inside ``deferred()`` a SIGINT or SIGTERM is only noted;
it is raised as ``KeyboardInterrupt`` when the block ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block is done (a no-op outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt
