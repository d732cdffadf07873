"""One running container of a Docker target: its worker's events (an out-of-memory kill or an
engine that went away named as such), its start-up split, and what the host spends on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from docker.models.containers import Container

from bench.dockerengine import Engine, translated
from bench.errors import WorkerError
from bench.probes.container import ContainerMemorySampler, oom_kills
from bench.probes.cpucgroup import ThrottleSampler
from bench.targets.base import Measurement
from bench.targets.stream import EventStream
from bench.units import fmt

REMOTE_MEMORY = "remote Docker engine: host-side memory is only probed for an engine on this host"
REMOTE_CGROUP = "remote Docker engine: its cgroups are only read for an engine on this host"


class DockerDeployment:
    """One running container: its events, its host-side memory, its start-up split."""

    def __init__(
        self, container: Container, engine: Engine, label: str, memory_limit: int | None
    ) -> None:
        self.container = container
        self.engine = engine
        self.label = label
        self.memory_limit = memory_limit
        self.phases: dict[str, float] = {}
        self.pull: Measurement | None = None
        self.stream = EventStream(label)
        self.sampler: ContainerMemorySampler | None = None
        self.throttle: ThrottleSampler | None = None
        self._attached: Any = None

    def attach(self) -> None:
        """Attach to stdout and stderr before start, so no output is ever missed."""
        with translated(f"{self.label}: attach"):
            self._attached = self.engine.stream.api.attach(
                self.container.id, stdout=True, stderr=True, stream=True, demux=True
            )
        self.stream.attach_frames(self._attached)

    def start_probe(self) -> None:
        """Sample the container's memory from the host (local engines only), off the clock."""
        if self.engine.local:
            threading.Thread(target=self._probe, daemon=True).start()

    def _probe(self) -> None:
        with suppress(Exception):
            self.container.reload()
            pid = int(self.container.attrs["State"]["Pid"])
            if pid > 0:
                self.sampler = ContainerMemorySampler(pid).start()
                self.throttle = ThrottleSampler(pid).start()

    def events(
        self, deadline: float, cancel: threading.Event | None = None
    ) -> Iterator[dict[str, Any]]:
        """The worker's events; an out-of-memory kill is reported as such."""
        try:
            yield from self.stream.events(deadline, self._exit_status, cancel)
        except WorkerError as exc:
            if self._oom_killed():
                limit = fmt(self.memory_limit, "bytes") if self.memory_limit else "no limit"
                seen = exc.message.removeprefix(f"{self.label}: ")
                raise WorkerError(
                    f"{self.label}: out of memory: the kernel killed a process of the container "
                    f"at its memory limit ({limit}); the worker saw: {seen}",
                    stderr_tail=exc.stderr_tail,
                    hint="raise the target's memory: or make the workload smaller",
                ) from None
            if not engine_answers(self.engine):
                raise WorkerError(
                    f"{self.label}: the Docker engine at {self.engine.url} stopped answering "
                    "during the cell (stopped or restarted): the worker's result is lost",
                    stderr_tail=exc.stderr_tail,
                ) from None
            raise

    def _exit_status(self) -> int | None:
        try:
            return int(self.container.wait(timeout=30)["StatusCode"])
        except Exception:
            return None

    def _oom_killed(self) -> bool:
        """The engine's flag (the container's main process was killed) or the cgroup's count
        (any of its processes was, e.g. a command the worker ran)."""
        location = self.sampler.location if self.sampler is not None else None
        if location is not None and (oom_kills(location) or 0) > 0:
            return True
        try:
            self.container.reload()
            return bool(self.container.attrs["State"].get("OOMKilled"))
        except Exception:
            return False

    def host_measurements(self) -> list[Measurement]:
        """Start-up split, pull time, and what the host spends on the container.

        ``mem.overhead_bytes`` is taken from the host's peak sample itself: everything beyond
        the resident memory of the container's processes at that instant (the shim and the
        cgroup's kernel memory). The worker's own peak, sampled on another clock inside, can
        fall between two host samples and would make a short workload's overhead noise.
        """
        out = [Measurement(f"startup.{k}_s", "s", value=v) for k, v in self.phases.items()]
        if self.pull is not None:
            out.append(self.pull)
        return out + self._memory() + [self._throttled()]

    def _throttled(self) -> Measurement:
        """``cpu.throttled_s``: time the container's CFS quota held it back (0 s when the
        quota never bit, or there is none)."""
        if not self.engine.local:
            return Measurement("cpu.throttled_s", "s", reason=REMOTE_CGROUP)
        if self.throttle is None:
            return Measurement(
                "cpu.throttled_s", "s", reason="the container exited before it was read"
            )
        self.throttle.stop()
        last = self.throttle.last
        if last is None:
            return Measurement("cpu.throttled_s", "s", reason=self.throttle.reason)
        return Measurement("cpu.throttled_s", "s", value=last.throttled_s)

    def _memory(self) -> list[Measurement]:
        if not self.engine.local:
            reason = REMOTE_MEMORY
        elif self.sampler is None:
            reason = "the container exited before it could be sampled"
        else:
            self.sampler.stop()
            reason = self.sampler.reason or "no memory samples collected"
        peak = self.sampler.peak_sample if self.sampler is not None else None
        timeline = self.sampler.timeline if self.sampler is not None else []
        if peak is None:
            return [
                Measurement("mem.host_bytes", "bytes", reason=reason),
                Measurement("mem.overhead_bytes", "bytes", reason=reason),
            ]
        return [
            Measurement("mem.host_bytes", "bytes", value=float(peak.total), timeline=timeline),
            Measurement("mem.overhead_bytes", "bytes", value=float(peak.total - peak.processes)),
        ]

    def close(self) -> None:
        """Stop sampling and the attach stream (the container itself is removed by the target)."""
        for sampler in (self.sampler, self.throttle):
            if sampler is not None:
                sampler.stop()
        if self._attached is not None:
            with suppress(Exception):
                self._attached.close()
        self.stream.join()


def engine_answers(engine: Engine, within_s: float = 0.0) -> bool:
    """Whether the engine answers a ping, asking again for up to ``within_s`` seconds."""
    end = time.monotonic() + within_s
    while True:
        with suppress(Exception):
            return bool(engine.control.ping())
        if time.monotonic() >= end:
            return False
        time.sleep(0.5)
