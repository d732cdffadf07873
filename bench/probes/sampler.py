"""The background loop every host-side probe shares: sample now, then every ``interval``."""

from __future__ import annotations

import threading


class PeriodicSampler:
    """Calls ``_sample()`` every ``interval`` seconds in a daemon thread until stopped.

    Subclasses keep their own peak; the loop, and stopping it safely from any state (never
    started, already stopped, target gone), is written once here.
    """

    def __init__(self, interval: float, name: str) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _sample(self) -> None:
        raise NotImplementedError

    def _begin(self) -> None:
        """Take the first sample now (short workers may end before the next), then loop."""
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling; safe to call twice, and before or after the target has exited."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()
