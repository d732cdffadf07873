"""Where a run's time went: seconds per part, recorded in the manifest as ``phases_s``.

A first run on a fresh machine spends minutes building and booting before its first cell; a
user who sees only the total cannot tell a slow build from a slow target.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Phases:
    """Seconds each part of a run took (prepare, fingerprint, stage, cells)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Time the block as ``phase``, however it ends."""
        began = time.monotonic()
        try:
            yield
        finally:
            self.seconds[phase] = round(time.monotonic() - began, 3)
