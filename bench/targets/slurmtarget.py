"""The ``kind: slurm`` implementation: each cell is one ``srun`` job on the cluster.

``srun`` is the one Slurm command that submits, waits for the allocation, starts the task and
relays its stdout and stderr: the worker's events stream back exactly as a local worker's do,
with no output file to poll. ``srun -v`` says when the job was allocated and on which node; the
time from submission to that line, on the controller's clock, is ``startup.queue_s`` (part of
``provision``, as a container's create and start are). Slurm's own submit and start times are
kept in the cell's info too, but they are whole seconds.

Every job is named ``bench-<run id>`` and carries the invocation's owner token as its comment:
Ctrl-C cancels this invocation's jobs and nothing else, and ``bench gc`` finds the jobs a
killed run left. The worker package is unpacked once per run into ``workdir`` (a directory
the nodes must see), marked like a local worker directory so that ``bench gc`` removes it.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, ClassVar

from bench import interrupts, owner, state, workerpack
from bench.assets.model import AssetSet, Staged
from bench.errors import TargetError, WorkerError
from bench.targets import envvars, worker
from bench.targets.base import Measurement, bare_metal_overhead
from bench.targets.local import make_workdir
from bench.targets.slurm import SlurmTargetConfig
from bench.targets.slurmcli import Slurm
from bench.targets.stream import EventStream

if TYPE_CHECKING:
    from bench.build.builder import Builder

ALLOCATED = re.compile(r"^srun: jobid (\d+): nodes\(\d+\):`([^']*)'")
QUEUED = re.compile(r"^srun: job (\d+) queued")
STARTED = "tasks started"
ENDED_BY_SLURM = {"TIMEOUT", "CANCELLED", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "DEADLINE"}
CANCEL_WAIT_S = 15.0
SETTLE_S = 20.0


def job_name(run_id: str) -> str:
    return f"bench-{run_id}"


def job_comment() -> str:
    """The comment every job of this invocation carries: its owner token."""
    return f"bench-owner={owner.token()}"


class SrunWatcher:
    """Splits srun's stderr: its own lines (allocation, node, Slurm's errors) are read here,
    the worker's pass on to the event stream."""

    def __init__(self) -> None:
        self.job_id: str | None = None
        self.node: str | None = None
        self.allocated_at: float | None = None
        self.started = threading.Event()
        self.ended = threading.Event()
        self.messages: deque[str] = deque(maxlen=12)

    def lines(self, stream: Iterable[bytes]) -> Iterator[bytes]:
        try:
            for raw in stream:
                text = raw.decode(errors="replace").rstrip()
                if text.startswith(("srun: ", "slurmstepd: ", "slurmstepd-")):
                    self._read(text)
                else:
                    yield raw
        finally:
            self.ended.set()

    def _read(self, text: str) -> None:
        allocated, queued = ALLOCATED.match(text), QUEUED.match(text)
        if allocated:
            self.job_id, self.node = allocated.group(1), allocated.group(2)
            self.allocated_at = time.monotonic()
        elif queued:
            self.job_id = queued.group(1)
        elif STARTED in text:
            self.started.set()
        elif "error" in text.lower() or "cancelled" in text.lower():
            self.messages.append(text)

    def reason(self) -> str:
        """Slurm's last error line, or a plain one."""
        return self.messages[-1] if self.messages else "srun exited without starting the task"


class SlurmDeployment:
    """One job: the worker's events, the queue time, and Slurm's word when it ended the job."""

    def __init__(
        self, proc: subprocess.Popen[bytes], watcher: SrunWatcher, slurm: Slurm, submitted: float
    ) -> None:
        self.proc = proc
        self.watcher = watcher
        self.slurm = slurm
        self.submitted = submitted
        self.stream = EventStream(slurm.label)
        assert proc.stdout is not None and proc.stderr is not None
        self.stream.attach(proc.stdout, watcher.lines(proc.stderr))

    def wait_started(self, timeout: float) -> None:
        """Return once the task runs on its node; a job that never starts is a TargetError."""
        end = time.monotonic() + timeout
        while not self.watcher.started.wait(0.05):
            if self.proc.poll() is not None and self.watcher.ended.is_set():
                raise TargetError(
                    f"{self.slurm.label}: the job did not start: {self.watcher.reason()}"
                )
            if time.monotonic() > end:
                raise TargetError(
                    f"{self.slurm.label}: job {self.watcher.job_id or '?'} did not start within "
                    f"{timeout:g} s (still queued)",
                    hint="raise the target's submit_timeout_s, or ask for fewer resources",
                )

    def events(
        self, deadline: float, cancel: threading.Event | None = None
    ) -> Iterator[dict[str, Any]]:
        """The worker's events, its result carrying the job's facts; a job Slurm ended (time
        limit, preemption, node failure) fails with Slurm's state and reason."""
        try:
            for event in self.stream.events(deadline, self.proc.poll, cancel):
                if event.get("event") == "result":
                    event.setdefault("info", {})["slurm"] = self.facts()
                yield event
        except WorkerError as exc:
            job = self._settled()
            if job.get("JobState") in ENDED_BY_SLURM:
                raise WorkerError(
                    f"{self.slurm.label}: Slurm ended job {self.watcher.job_id} on "
                    f"{self.watcher.node}: {job['JobState']} (reason {job.get('Reason', '?')}, "
                    f"time limit {job.get('TimeLimit', '?')})",
                    stderr_tail=exc.stderr_tail,
                ) from None
            raise

    def _settled(self) -> dict[str, Any]:
        """The job's record once Slurm has finished ending it: a worker stopped by Slurm's
        signal reports before the job leaves RUNNING or COMPLETING."""
        if not self.watcher.job_id:
            return {}
        end = time.monotonic() + SETTLE_S
        while True:
            job = self.slurm.job(self.watcher.job_id)
            if job.get("JobState") not in ("RUNNING", "COMPLETING") or time.monotonic() > end:
                return job
            time.sleep(0.5)

    def facts(self) -> dict[str, Any]:
        """The job and its node, as Slurm records them."""
        job = self.slurm.job(self.watcher.job_id) if self.watcher.job_id else {}
        node = self.slurm.node(self.watcher.node) if self.watcher.node else {}
        return {
            "job_id": self.watcher.job_id,
            "node": self.watcher.node,
            "submit_time": job.get("SubmitTime"),
            "start_time": job.get("StartTime"),
            "partition": job.get("Partition"),
            "node_hardware": {
                key: node.get(key)
                for key in ("CPUTot", "RealMemory", "Arch", "Gres", "AvailableFeatures")
            },
        }

    def host_measurements(self) -> list[Measurement]:
        """``startup.queue_s``; no host-side memory: the worker ran on a node of the cluster."""
        if self.watcher.allocated_at is None:
            queue = Measurement("startup.queue_s", "s", reason="srun never reported the allocation")
        else:
            queue = Measurement(
                "startup.queue_s", "s", value=self.watcher.allocated_at - self.submitted
            )
        reason = (
            f"the job ran on Slurm node {self.watcher.node}: host-side probes read this host only"
        )
        return [queue, Measurement("mem.host_bytes", "bytes", reason=reason), bare_metal_overhead()]

    def close(self) -> None:
        """Cancel the job if it still runs (scancel, then srun itself), and reap srun."""
        if self.proc.poll() is None:
            if self.watcher.job_id:
                with suppress(TargetError):
                    self.slurm.cancel([self.watcher.job_id])
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(CANCEL_WAIT_S)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self.stream.join()


class SlurmTarget:
    """Runs each worker as a job of its own through ``srun``."""

    kind: ClassVar[str] = "slurm"

    def __init__(self, config: SlurmTargetConfig) -> None:
        self.config = config
        self.slurm = Slurm(config.conf, f"target {config.name!r}")
        self._package: str | None = None
        self._cluster: dict[str, str] = {}
        # A relative path is the controller's (the job's directory is the package's).
        relative = "/" in config.python and not os.path.isabs(config.python)
        self.python = os.path.abspath(config.python) if relative else config.python

    def host_id(self) -> str:
        """Cells of one cluster run one at a time (the scheduler places them)."""
        return f"slurm:{self.config.conf or 'default'}"

    def request(self) -> list[str]:
        """The resources asked for, as srun options."""
        c = self.config
        args = ["--ntasks=1"]
        for flag, value in (
            ("--partition", c.partition),
            ("--nodes", c.node_count),
            ("--nodelist", c.nodelist),
            ("--gres", c.gres),
            ("--time", c.time_limit),
            ("--account", c.account),
            ("--qos", c.qos),
            ("--constraint", c.constraint),
            ("--container", c.container),
        ):
            if value is not None:
                args.append(f"{flag}={value}")
        return args + (["--exclusive"] if c.exclusive else [])

    def prepare(self, builder: Builder) -> dict[str, Any]:
        """Check the cluster and the request before the first cell; ship the worker."""
        version, cluster = self.slurm.version(), self.slurm.cluster()
        self._cluster = {"cluster": cluster, "version": version}
        state.current().add(f"slurm:{self.config.conf}", "slurm_cluster", conf=self.config.conf)
        if self.config.partition and self.config.partition not in self.slurm.partitions():
            raise TargetError(
                f"{self.slurm.label}: unknown partition {self.config.partition!r} on cluster "
                f"{cluster!r} (partitions: {', '.join(self.slurm.partitions()) or 'none'})"
            )
        self.slurm.run(
            ["srun", "--test-only", *self.request(), "true"], "the request cannot be met"
        )
        return {"python": self.python, "cluster": cluster, "version": version}

    def _ship(self, run_id: str) -> str:
        """The worker package, unpacked once per run into ``workdir`` (nodes must see it)."""
        if self._package is None:
            state.current().add(
                f"local_tmp:{self.config.workdir}", "local_tmp", root=self.config.workdir
            )
            directory = make_workdir(run_id, self.config.workdir)
            with tarfile.open(fileobj=io.BytesIO(workerpack.build().archive), mode="r:gz") as tar:
                tar.extractall(f"{directory}/lib", filter="data")
            self._package = directory
        return self._package

    def _env(self, package: str) -> dict[str, str]:
        env = self.slurm.env()
        env.update(envvars.resolve(self.config.env))
        env["PYTHONPATH"] = f"{package}/lib"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _srun(self, run_id: str, package: str) -> list[str]:
        return [
            "srun", "-v", f"--job-name={job_name(run_id)}", f"--comment={job_comment()}",
            f"--chdir={package}", "--kill-on-bad-exit=1", *self.request(),
        ]  # fmt: skip

    def fingerprint(self, run_id: str, torch: bool = True) -> dict[str, Any]:
        """The worker's view from a job on the cluster, and the cluster's facts."""
        package = self._ship(run_id)
        argv = self._srun(run_id, package) + worker.fingerprint_args(self.python, torch)
        try:
            done = subprocess.run(
                argv, capture_output=True, timeout=self.config.submit_timeout_s + 300,
                env=self._env(package), check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise TargetError(f"{self.slurm.label}: fingerprint job timed out") from None
        stderr = done.stderr.decode(errors="replace")
        if done.returncode != 0:
            lines = [
                line for line in stderr.splitlines() if "error" in line.lower()
            ] or stderr.splitlines()
            raise TargetError(
                f"{self.slurm.label}: fingerprint job failed: {(lines or ['?'])[-1].strip()}"
            )
        data = worker.parse_fingerprint(done.stdout.decode(errors="replace"), self.slurm.label)
        node = next((m.group(2) for m in map(ALLOCATED.match, stderr.splitlines()) if m), None)
        data["slurm"] = {"node": node, **self._cluster}  # asked once, in prepare
        return data

    def drop_caches(self) -> str | None:
        return "a Slurm node's page cache is the node's: bench does not drop it"

    def stage(self, assets: AssetSet, run_id: str) -> Staged:
        raise TargetError(
            f"{self.slurm.label}: location: is not supported on Slurm targets (datasets and "
            "checkpoints are not staged onto cluster nodes)"
        )

    @contextmanager
    def deploy(self, spec: dict[str, Any], run_id: str) -> Iterator[SlurmDeployment]:
        """Submit the cell's job and wait until its task runs; leaving cancels it."""
        package = self._ship(run_id)
        argv = self._srun(run_id, package) + worker.inline_run_args(self.python, spec)
        deployment: SlurmDeployment | None = None
        try:
            submitted = time.monotonic()
            with interrupts.deferred():  # a job submitted is a job tracked
                proc = self._spawn(argv, package)
                deployment = SlurmDeployment(proc, SrunWatcher(), self.slurm, submitted)
            deployment.wait_started(self.config.submit_timeout_s)
            yield deployment
        finally:
            with interrupts.deferred():
                if deployment is not None:
                    deployment.close()

    def _spawn(self, argv: list[str], package: str) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(
                argv, cwd=package, env=self._env(package), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise TargetError(f"{self.slurm.label}: cannot run srun: {exc}") from None

    def cleanup(self, run_id: str) -> None:
        """Cancel what this invocation still has queued or running; remove the package."""
        try:
            listed = self.slurm.run(
                ["squeue", "-h", "-n", job_name(run_id), "-o", "%i %k"], "list the run's jobs"
            )
            mine = [line.split()[0] for line in listed.splitlines() if job_comment() in line]
            self.slurm.cancel(mine)
            state.current().discard(f"slurm:{self.config.conf}")
        finally:
            if self._package is not None:
                shutil.rmtree(self._package, ignore_errors=True)
                self._package = None
                state.current().discard(f"local_tmp:{self.config.workdir}")
