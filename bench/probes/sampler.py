"""The background loop every host-side probe shares: sample now, then every ``interval``.

Every sample is also kept as a ``(monotonic time, bytes)`` point, so a run's raw data holds the
host-side memory timeline and not only its peak: a report can show when during start-up or the
measured phase the memory grew, on the same controller clock as the start-up phases.
"""

from __future__ import annotations

import threading
import time

MAX_POINTS = 20_000  # 33 minutes at 10 Hz; beyond that every other point is dropped


class PeriodicSampler:
    """Calls ``_sample()`` every ``interval`` seconds in a daemon thread until stopped.

    Subclasses keep their own peak and call ``_record`` with each reading; the loop, the
    timeline, and stopping safely from any state (never started, already stopped, target gone)
    are written once here.
    """

    def __init__(self, interval: float, name: str) -> None:
        self.interval = interval
        self.timeline: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _sample(self) -> None:
        raise NotImplementedError

    def _record(self, value: float) -> None:
        """Keep one reading on the timeline; halves the resolution instead of growing unbounded."""
        self.timeline.append((time.monotonic(), float(value)))
        if len(self.timeline) > MAX_POINTS:
            self.timeline = self.timeline[::2]

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
