"""CPU bandwidth throttling of a container, from its cgroup's ``cpu.stat``.

A container limited to ``cpus: 2`` gets a CFS quota of two CPUs' time per period; a workload
that wants more is stopped until the next period ("throttled"). Throttling is where a flag
costs most and where a median alone says nothing about why: the same limit can cost a bursty
workload half its speed while its average use stays under the quota. The kernel counts both
the periods throttled and the time, per cgroup: v1 ``throttled_time`` in nanoseconds, v2
``throttled_usec``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.probes.container import Unmeasurable, controller_cgroup
from bench.probes.sampler import PeriodicSampler


@dataclass(frozen=True)
class Throttling:
    """The cgroup's counters at one moment (they only grow while the cgroup lives)."""

    periods: int
    throttled_periods: int
    throttled_s: float


def locate(pid: int) -> Path:
    """The ``cpu`` cgroup directory of the container whose init process is ``pid``."""
    directory, _ = controller_cgroup(pid, "cpu")
    if not (directory / "cpu.stat").is_file():
        raise Unmeasurable(f"cpu cgroup {directory} has no cpu.stat")
    return directory


def read(directory: Path) -> Throttling:
    """The counters now; ``Unmeasurable`` once the cgroup is gone."""
    try:
        text = (directory / "cpu.stat").read_text()
    except OSError as exc:
        raise Unmeasurable(f"cpu cgroup {directory} is gone ({exc.strerror})") from exc
    stat = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            stat[key] = int(value)
    if "throttled_usec" in stat:
        seconds = stat["throttled_usec"] / 1e6
    elif "throttled_time" in stat:
        seconds = stat["throttled_time"] / 1e9
    else:
        raise Unmeasurable(f"cpu cgroup {directory} counts no throttled time")
    return Throttling(stat.get("nr_periods", 0), stat.get("nr_throttled", 0), seconds)


class ThrottleSampler(PeriodicSampler):
    """Reads the counters every ``interval`` seconds and keeps the last reading: the cgroup
    disappears with the container, so the last reading before the exit is the total (the
    final ``interval`` may go uncounted)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(interval, "cpu-throttling")
        self.pid = pid
        self.last: Throttling | None = None
        self._directory: Path | None = None
        self._reason: str | None = None

    @property
    def reason(self) -> str | None:
        """Why nothing was read, when ``last`` is None."""
        if self.last is not None:
            return None
        return self._reason or "the container exited before its cpu cgroup was read"

    def start(self) -> ThrottleSampler:
        """Find the cgroup, then read on in the background."""
        try:
            self._directory = locate(self.pid)
        except Unmeasurable as exc:
            self._reason = str(exc)
            return self
        self._begin()
        return self

    def _sample(self) -> None:
        assert self._directory is not None
        try:
            self.last = read(self._directory)
        except Unmeasurable as exc:
            self._reason = str(exc)
