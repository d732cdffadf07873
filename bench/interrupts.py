"""Making teardown and result writes finish even when Ctrl-C arrives in the middle.

Ctrl-C raises ``KeyboardInterrupt`` wherever the main thread happens to be. If that is inside
the code that kills a worker, removes its directory or writes a cell, the interrupt would
leave a process or a file behind. Inside ``deferred()`` a SIGINT or SIGTERM is only noted;
it is raised as ``KeyboardInterrupt`` when the block ends.

Cells running in other threads (``--parallel-hosts``) never see a signal: the main thread sets
the run's ``Cancel`` flag, and the waits below (``sleep``, ``check``, ``on_cancel``) let a
thread's boot or start command end promptly and tear down like Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
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


class Cancel(threading.Event):
    """A run's cancel flag that also runs registered actions when set.

    With ``--parallel-hosts`` only the main thread receives Ctrl-C; it sets this flag and the
    cells running in other threads must stop. Waits that poll see the flag within a fraction
    of a second; a wait that blocks in a library call (an SSH handshake with a booting guest)
    is ended by an action that kills what it waits on.
    """

    def __init__(self) -> None:
        super().__init__()
        self._actions: list[Callable[[], None]] = []
        self._guard = threading.Lock()

    def set(self) -> None:
        """Set the flag, then run every registered action (errors in them are ignored)."""
        super().set()
        with self._guard:
            actions = list(self._actions)
        for action in actions:
            with suppress(Exception):
                action()

    @contextmanager
    def on_set(self, action: Callable[[], None]) -> Iterator[None]:
        """Run ``action`` if the flag is set while inside the block (at once if it is set)."""
        with self._guard:
            self._actions.append(action)
        try:
            if self.is_set():
                action()
            yield
        finally:
            with self._guard:
                self._actions.remove(action)


_scope = threading.local()


@contextmanager
def cancellable(cancel: Cancel) -> Iterator[None]:
    """Let the waits of this thread (guest boots, start commands) end when ``cancel`` is set.

    The flag is found through the thread rather than passed down every deploy call, so that
    each target kind's wait can honour it without a parameter on every interface between.
    """
    previous = getattr(_scope, "cancel", None)
    _scope.cancel = cancel
    try:
        yield
    finally:
        _scope.cancel = previous


def current() -> Cancel | None:
    """The cancel flag of the run this thread works for, if any."""
    return getattr(_scope, "cancel", None)


def check() -> None:
    """Raise ``KeyboardInterrupt`` when this thread's run was cancelled (as Ctrl-C would in the
    main thread), so that the code in between tears down exactly as it does on Ctrl-C."""
    cancel = current()
    if cancel is not None and cancel.is_set():
        raise KeyboardInterrupt


def sleep(seconds: float) -> None:
    """``time.sleep`` that ends early with ``KeyboardInterrupt`` when the run is cancelled."""
    cancel = current()
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise KeyboardInterrupt


@contextmanager
def on_cancel(action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` if this thread's run is cancelled while inside the block: for a wait that
    cannot poll, killing the process it waits on ends it. A no-op outside a cancellable run."""
    cancel = current()
    if cancel is None:
        yield
        return
    with cancel.on_set(action):
        yield
