"""``kind: local``: bare metal on the controller's host, the worker as a subprocess.

This is the baseline every isolated target is compared with, so it adds nothing between the
interpreter and the workload: a fresh process per repetition (start-up measured every time),
the spec on stdin, events on stdout, and its own process group so that teardown (and Ctrl-C)
reaches DataLoader worker processes too. Its directory is marked with the invocation's owner
token, and the invocation's record names the temp dir it lives in (see ``bench.state``), so
``bench gc`` finds the worker and its directory if the controller is killed outright. Nothing
is written to the record per cell: the bare-metal ``provision`` phase lasts a millisecond or
two, and bookkeeping on that clock would be a visible share of it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from bench import interrupts, owner, pagecache, state, workerpack
from bench.assets.model import AssetSet, Staged, cell_assets, with_stage_to
from bench.errors import TargetError
from bench.probes.process import TreeMemorySampler
from bench.targets import envvars, worker
from bench.targets.base import Measurement, TargetConfig, bare_metal_overhead
from bench.targets.envvars import EnvMap
from bench.targets.kind import Kind
from bench.targets.stream import EventStream

if TYPE_CHECKING:
    from bench.build.builder import Builder

OWNER_MARK = ".bench-owner"
SHM = "/dev/shm"  # location tmpfs: each cell's copy of its assets goes to a directory here


class LocalTargetConfig(TargetConfig):
    """Suite keys of a local target."""

    kind: Literal["local"]
    python: str | None = None
    build: bool = False
    env: EnvMap = {}


class LocalDeployment:
    """A running worker process on this host."""

    def __init__(self, proc: subprocess.Popen[bytes], label: str) -> None:
        self.proc = proc
        self.stream = EventStream(label)
        self.stream.attach(proc.stdout, proc.stderr)  # type: ignore[arg-type]
        self.sampler = TreeMemorySampler(proc.pid).start()

    def events(
        self, deadline: float, cancel: threading.Event | None = None
    ) -> Iterator[dict[str, Any]]:
        """The worker's events; see ``EventStream.events``."""
        return self.stream.events(deadline, self.proc.poll, cancel)

    def host_measurements(self) -> list[Measurement]:
        """Peak memory of the worker's process tree as the host sees it.

        There is no isolation layer between host and worker here, so an overhead figure would
        only restate how DataLoader processes share pages; it is recorded as absent instead.
        """
        self.sampler.stop()
        overhead = bare_metal_overhead()
        if self.sampler.peak is None:
            reason = "no memory samples collected (the worker exited too quickly)"
            return [Measurement("mem.host_bytes", "bytes", reason=reason), overhead]
        peak, timeline = float(self.sampler.peak), self.sampler.timeline
        return [Measurement("mem.host_bytes", "bytes", value=peak, timeline=timeline), overhead]

    def close(self) -> None:
        """Kill the whole process group and reap it; idempotent."""
        self.sampler.stop()
        _kill_group(self.proc)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self.stream.join()


class LocalTarget:
    """Runs workers as subprocesses of ``python`` (default: the controller's interpreter)."""

    kind: ClassVar[str] = "local"

    def __init__(self, config: LocalTargetConfig) -> None:
        self.config = config
        self._matched: str | None = None

    @property
    def python(self) -> str:
        """The interpreter that runs the worker: the matched venv's after ``prepare`` when
        ``build: true``, else ``python:``, else the controller's own."""
        return self._matched or self.config.python or sys.executable

    def prepare(self, builder: Builder) -> dict[str, Any]:
        """With ``build: true``, a venv holding exactly the wheelhouse (same bytes as images)."""
        if not self.config.build:
            return {"python": self.python}
        base = self.config.python or sys.executable
        self._matched = str(builder.venv(base))
        return {"python": self._matched, "venv_base": base}

    def _env(self, workdir: str | None = None) -> dict[str, str]:
        """The worker's environment: what it needs from bench's own (``envvars.inherited``, not
        the rest: no webhook URL or cloud key reaches a workload) plus the suite's ``env``. Its
        temporary files go under the deployment's directory, so removing that directory removes
        them even when the worker had to be killed."""
        env = envvars.inherited()
        env.update(envvars.resolve(self.config.env))
        if workdir is not None:
            env["TMPDIR"] = workdir
        root = str(workerpack.package_root())
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _check_python(self) -> None:
        if shutil.which(self.python) is None:
            raise TargetError(
                f"target {self.config.name!r}: python interpreter {self.python!r} not found",
                hint="set the target's python: to an existing interpreter",
            )

    def host_id(self) -> str:
        """Every local target shares this machine."""
        return "localhost"

    def cleanup(self, run_id: str) -> None:
        """Nothing outlives a local deployment: the temp dirs need no more watching."""
        state.current().discard(f"local_tmp:{tempfile.gettempdir()}")
        state.current().discard(f"local_tmp:{SHM}")

    def stage(self, assets: AssetSet, run_id: str) -> Staged:
        """The cached asset directories as they are (read-only use); for location tmpfs each
        cell also gets a fresh directory in /dev/shm to copy them to (named in the
        invocation's record, for ``bench gc``)."""
        if assets.location == "tmpfs":
            state.current().add(f"local_tmp:{SHM}", "local_tmp", root=SHM)
        paths = {a.kind: str(a.path) for a in assets.assets}
        return Staged(assets.spec(paths), {"paths": paths})

    def _record_tmp(self) -> None:
        """Name the temp dir in the invocation's record (written once: off the cells' clocks
        when the fingerprint comes first), for ``bench gc`` to search after a SIGKILL."""
        root = tempfile.gettempdir()
        state.current().add(f"local_tmp:{root}", "local_tmp", root=root)

    def fingerprint(self, run_id: str, torch: bool = True) -> dict[str, Any]:
        """The environment the worker sees, from the worker's own fingerprint mode."""
        self._check_python()
        self._record_tmp()
        try:
            done = subprocess.run(
                worker.fingerprint_args(self.python, torch),
                env=self._env(),
                capture_output=True,
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TargetError(f"target {self.config.name!r}: fingerprint timed out") from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise TargetError(f"target {self.config.name!r}: fingerprint failed: {tail[0]}")
        return worker.parse_fingerprint(done.stdout.decode(errors="replace"), self.config.name)

    def drop_caches(self) -> str | None:
        """The worker runs on this host, so this host's page cache is the one to drop."""
        return pagecache.drop_local()

    @contextmanager
    def deploy(self, spec: dict[str, Any], run_id: str) -> Iterator[LocalDeployment]:
        """Start a fresh worker process; leaving the context kills and reaps it."""
        self._check_python()
        self._record_tmp()  # already recorded (no write) unless the fingerprint failed
        with interrupts.deferred():
            workdir = make_workdir(run_id)
        deployment: LocalDeployment | None = None
        ram: str | None = None
        try:
            found = cell_assets(spec)
            if found is not None and found["location"] == "tmpfs":
                with interrupts.deferred():
                    ram = make_workdir(run_id, SHM)
                spec = with_stage_to(spec, ram)
            with interrupts.deferred():  # a process started is a process tracked
                deployment = LocalDeployment(self._spawn(workdir), f"target {self.config.name!r}")
            _send_spec(deployment.proc, spec)
            yield deployment
        finally:
            with interrupts.deferred():
                if deployment is not None:
                    deployment.close()
                shutil.rmtree(workdir, ignore_errors=True)
                if ram is not None:
                    shutil.rmtree(ram, ignore_errors=True)

    def _spawn(self, workdir: str) -> subprocess.Popen[bytes]:
        """The worker process, in its own session so that Ctrl-C reaches the controller only."""
        try:
            return subprocess.Popen(
                worker.run_args(self.python),
                cwd=workdir,
                env=self._env(workdir),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise TargetError(f"target {self.config.name!r}: cannot start worker: {exc}") from None


def make_workdir(run_id: str, root: str | None = None) -> str:
    """A new private directory for one worker (its cwd and TMPDIR, or its RAM copy of the
    assets in ``root``), marked with this invocation's owner token: ``bench gc`` tells from
    the mark whether its owner still runs."""
    try:
        workdir = tempfile.mkdtemp(prefix=f"bench-{run_id}-", dir=root)
    except OSError as exc:
        raise TargetError(f"cannot create a worker directory: {exc}") from None
    try:
        with open(os.path.join(workdir, OWNER_MARK), "x") as handle:
            handle.write(owner.token() + "\n")
    except OSError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise TargetError(f"cannot mark the worker directory {workdir}: {exc}") from None
    return workdir


def workdir_owner(workdir: str) -> str | None:
    """The owner token a worker directory is marked with (None: not a bench directory)."""
    try:
        with open(os.path.join(workdir, OWNER_MARK)) as handle:
            return handle.read(200).strip()
    except OSError:
        return None


def _send_spec(proc: subprocess.Popen[bytes], spec: dict[str, Any]) -> None:
    """Write the spec to the worker's stdin and close it (a dead worker is reported later)."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass


def _kill_group(proc: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """SIGTERM the worker's process group, SIGKILL after ``grace`` seconds, then reap."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    _signal_group(proc.pid, signal.SIGKILL)  # DataLoader children may outlive the leader
    proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


KIND = Kind(
    "local",
    "bare metal on this host: the worker runs as a subprocess of a chosen interpreter",
    {LocalTargetConfig: "bench.targets.local:LocalTarget"},
    collector="bench.targets.localgc:Workers",
)
