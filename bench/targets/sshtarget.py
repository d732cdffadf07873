"""The ``kind: ssh`` implementation: a remote host reached with paramiko.

Each repetition opens a fresh SSH session (the ``provision`` phase covers connecting, making
sure the worker package is in the run's remote directory, and starting the worker). The
package travels once per run as one content-hashed archive over SFTP. Every remote command is
built from ``shlex.quote``d parts, so no suite value can inject shell syntax. The run's remote
directory is removed when the run ends, whether it succeeded, failed or was interrupted.
"""

from __future__ import annotations

import io
import posixpath
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

import paramiko

from bench import interrupts, pagecache, state, workerpack
from bench.assets.model import AssetSet, Staged
from bench.assets.sshstage import RemoteAssets
from bench.errors import TargetError, WorkerError
from bench.targets import envvars, remotedir, worker
from bench.targets.base import Measurement, bare_metal_overhead
from bench.targets.remotecmd import (
    PID_FILE,
    execute,
    kill_group_command,
    q,
    secret_input,
    start_worker,
    worker_command,
)
from bench.targets.ssh import SshTargetConfig
from bench.targets.sshconn import Endpoint, connect
from bench.targets.stream import EventStream

KILL_S = 30  # the pid file's 10 s, TERM's 2 s grace, KILL's 5 s, and a loaded host's slack
REMOTE_HOST_MEMORY = "remote host: the controller does not probe a remote host's memory"


class SshDeployment:
    """A worker running on the remote host, streamed over one SSH channel."""

    def __init__(
        self,
        client: paramiko.SSHClient,
        channel: paramiko.Channel,
        label: str,
        python: str,
        cell_dir: str,
    ) -> None:
        self.client = client
        self.python = python
        self.cell_dir = cell_dir
        self.channel = channel
        self.label = label
        self.pid: int | None = None
        self.stream = EventStream(label)
        self.stream.attach(channel.makefile("rb"), channel.makefile_stderr("rb"))

    def events(
        self, deadline: float, cancel: threading.Event | None = None
    ) -> Iterator[dict[str, Any]]:
        """The worker's events; a dropped connection is reported as such."""
        try:
            for event in self.stream.events(deadline, self._exit_status, cancel):
                if event.get("event") == "start":
                    self.pid = int(event["pid"])
                yield event
        except WorkerError as exc:
            transport = self.client.get_transport()
            if transport is None or not transport.is_active():
                raise WorkerError(
                    f"{self.label}: connection dropped before the worker reported a result",
                    stderr_tail=exc.stderr_tail,
                ) from None
            raise

    def _exit_status(self) -> int | None:
        """The worker's exit status once the server reported one (not merely a closed channel)."""
        if not self.channel.status_event.is_set():
            return None
        status = self.channel.recv_exit_status()
        return None if status < 0 else status

    def host_measurements(self) -> list[Measurement]:
        """Nothing is probed on a remote host; say so instead of reporting zeros."""
        return [
            Measurement("mem.host_bytes", "bytes", reason=REMOTE_HOST_MEMORY),
            bare_metal_overhead(),
        ]

    def stop_worker(self) -> bool:
        """Kill the worker's process group if it still runs; False when that was impossible.

        The worker leads its own process group (sshd starts every command in a new session),
        so DataLoader processes go with it.
        """
        if self._exit_status() is not None:
            return True
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            return False  # a closed channel looks "exited"; the worker may well run on
        try:
            execute(self.client, kill_group_command(self.python, self.leader()), timeout=KILL_S)
        except TargetError:
            return False
        return True

    def leader(self) -> str:
        """The worker's pid once it reported one, else its shell's pid file: a worker stopped
        during its start (Ctrl-C before the start event) is found all the same."""
        return str(self.pid) if self.pid is not None else posixpath.join(self.cell_dir, PID_FILE)


class SshTarget:
    """Runs workers on a remote host over SSH."""

    kind: ClassVar[str] = "ssh"

    def __init__(self, config: SshTargetConfig) -> None:
        self.config = config
        # workers a dropped connection kept us from stopping: leader (pid or pid file) to cell
        self._orphans: dict[str, str] = {}
        self._owned = remotedir.Owned()  # the remote run directories this target created
        self._suffix = uuid.uuid4().hex[:8]  # this invocation's run directories are its own
        self._assets = RemoteAssets(self)

    @property
    def label(self) -> str:
        return f"target {self.config.name!r} ({self.config.user}@{self.config.host})"

    def prepare(self, builder: object) -> dict[str, Any]:
        """Nothing to build: the host's ``python:`` runs the uploaded worker."""
        return {"python": self.config.python}

    def host_id(self) -> str:
        """Cells with the same host id never run at the same time."""
        return f"{self.config.host}:{self.config.port}"

    def endpoint(self) -> Endpoint:
        c = self.config
        return Endpoint(
            host=c.host,
            port=c.port,
            user=c.user,
            key=c.key,
            password=c.password.get_secret_value() if c.password else None,
            known_hosts=Path(c.known_hosts).expanduser(),
            host_key=c.host_key,
            timeout_s=c.connect_timeout_s,
            retries=c.connect_retries,
        )

    def run_dir(self, run_id: str) -> str:
        """The run's remote directory (removed by ``cleanup``), unique to this invocation:
        another run given the same run id (or started in the same second) never meets it."""
        return posixpath.join(self.config.workdir, f"bench-{run_id}-{self._suffix}")

    def _claim(self, run_id: str, path: str | None = None) -> None:
        """Record the run directory (or another the run makes, ``path``) before anything can
        create it, with what ``bench gc`` needs to reach it after a SIGKILL (never a password:
        only that one is needed)."""
        c = self.config
        state.current().add(
            self._state_key(run_id, path),
            "remote_dir",
            target=c.name,
            host=c.host,
            port=c.port,
            user=c.user,
            key=str(Path(c.key).expanduser()) if c.key else None,
            password=c.password is not None,
            known_hosts=str(Path(c.known_hosts).expanduser()),
            host_key=c.host_key,
            timeout_s=c.connect_timeout_s,
            python=c.python,
            path=path or self.run_dir(run_id),
        )

    def _state_key(self, run_id: str, path: str | None = None) -> str:
        return f"remote:{self.config.host}:{self.config.port}:{path or self.run_dir(run_id)}"

    def _connect(self) -> paramiko.SSHClient:
        try:
            return connect(self.endpoint())
        except TargetError as exc:
            raise TargetError(
                f"target {self.config.name!r}: {exc.message}", hint=exc.hint
            ) from None

    def _session(self) -> paramiko.SSHClient:
        """The session a cell or the fingerprint runs in (a static VM boots first)."""
        return self._connect()

    def _prepare(self, client: paramiko.SSHClient, run_id: str) -> str:
        """Check the interpreter and put the package in a run directory this target created
        (``remotedir``: a directory found on the host is refused, never reused); its path."""
        pkg = workerpack.build()
        run_dir = self.run_dir(run_id)
        pkg_dir = posixpath.join(run_dir, pkg.name)
        with self._owned.claim(run_dir) as held:
            if pkg.name in held.packages:
                return pkg_dir
            self._check_python(client)
            if not held.created:
                self._make_run_dir(client, run_dir)
                held.created = True
            self._upload(client, pkg_dir, pkg)
            held.packages.add(pkg.name)
        return pkg_dir

    def _disown(self, run_id: str) -> bool:
        """Forget the run directory; whether this target created it (only then is it ours to
        remove)."""
        return self._owned.forget(self.run_dir(run_id))

    def _make_run_dir(self, client: paramiko.SSHClient, run_dir: str) -> None:
        command = remotedir.make_dir_command(self.config.python, run_dir)
        status, output = execute(client, command)
        if status != 0:
            why = " ".join(output.split()) or f"exit status {status}"
            raise TargetError(
                f"{self.label}: refusing remote run directory {self.config.host}:{run_dir}: {why}",
                hint="bench only uses a run directory it has just created; remove a leftover "
                "of your own, or set workdir: to a directory only you can write",
            )

    def _check_python(self, client: paramiko.SSHClient) -> None:
        python = self.config.python
        status, output = execute(client, f"{q(python)} -c 'import sys; print(sys.version)'")
        if status in (126, 127):
            raise TargetError(
                f"{self.label}: remote python {python!r} not found or not executable",
                hint="set the target's python: to an interpreter that exists on the host",
            )
        if status != 0:
            last = output.strip().splitlines()[-1:] or ["?"]
            raise TargetError(f"{self.label}: remote python {python!r} failed: {last[0]}")

    def _upload(self, client: paramiko.SSHClient, pkg_dir: str, pkg: workerpack.Package) -> None:
        """Upload the archive and unpack it only if its SHA-256 on the host is the one sent."""
        archive = pkg_dir + ".tar.gz"
        try:
            with client.open_sftp() as sftp:
                sftp.putfo(io.BytesIO(pkg.archive), archive)
        except (paramiko.SSHException, OSError) as exc:
            raise TargetError(f"{self.label}: upload to {archive} failed: {exc}") from None
        command = remotedir.install_command(self.config.python, archive, pkg_dir, pkg.archive)
        status, output = execute(client, command)
        if status != 0:
            last = output.strip().splitlines()[-1:] or [f"exit status {status}"]
            raise TargetError(f"{self.label}: unpacking the worker failed: {last[0]}")

    def _command(self, pkg_dir: str, cell_dir: str, args: list[str], secrets: bool = True) -> str:
        """The worker's command; a fingerprint has no stdin to read secrets from, nor needs any."""
        env = self.config.env if secrets else envvars.plain(self.config.env)
        return worker_command(env, pkg_dir, cell_dir, args)

    def fingerprint(self, run_id: str, torch: bool = True) -> dict[str, Any]:
        """The remote environment, from the worker's own fingerprint mode."""
        self._claim(run_id)
        client = self._session()
        try:
            pkg_dir = self._prepare(client, run_id)
            cell_dir = posixpath.join(self.run_dir(run_id), "fingerprint")
            args = worker.fingerprint_args(self.config.python, torch)
            command = self._command(pkg_dir, cell_dir, args, secrets=False)
            status, output = execute(client, command)
            if status != 0:
                last = output.strip().splitlines()[-1:] or ["?"]
                raise TargetError(f"{self.label}: fingerprint failed: {last[0]}")
            return worker.parse_fingerprint(output, self.label)
        finally:
            client.close()

    def drop_caches(self) -> str | None:
        """Drop the remote host's page cache, as root or through passwordless sudo."""
        try:
            client = self._connect()
        except TargetError as exc:
            return exc.one_line()
        try:
            status, output = execute(client, pagecache.REMOTE_DROP, timeout=120)
        except TargetError as exc:
            return exc.one_line()
        finally:
            client.close()
        if status != 0:
            last = output.strip().splitlines()[-1:] or [f"exit status {status}"]
            return f"{self.config.host}: {last[0]} (needs root or passwordless sudo)"
        return None

    def stage(self, assets: AssetSet, run_id: str) -> Staged:
        """Copy the assets into the run's remote directory now, once per run, off every clock
        (``bench.assets.sshstage``)."""
        return self._assets.stage(assets, run_id)

    @contextmanager
    def deploy(self, spec: dict[str, Any], run_id: str) -> Iterator[SshDeployment]:
        """Open a fresh session and start the worker; leaving stops it and removes its files."""
        self._claim(run_id)
        client = self._session()
        deployment: SshDeployment | None = None
        cell_dir = posixpath.join(self.run_dir(run_id), f"cell-{uuid.uuid4().hex[:12]}")
        ram: str | None = None  # the cell's /dev/shm directory (location tmpfs)
        try:
            pkg_dir = self._prepare(client, run_id)
            spec, ram = self._assets.cell(client, run_id, spec)
            command = self._command(pkg_dir, cell_dir, worker.run_args(self.config.python))
            secrets = secret_input(self.config.env)
            channel = start_worker(client, command, spec, self.label, secrets)
            deployment = SshDeployment(client, channel, self.label, self.config.python, cell_dir)
            yield deployment
        finally:
            with interrupts.deferred():
                gone = [q(ram)] if ram else []
                if deployment is not None and not deployment.stop_worker():
                    # the cell directory (and its pid file) stays until cleanup stops it
                    self._orphans[deployment.leader()] = cell_dir
                else:
                    gone.append(q(cell_dir))
                with suppress(TargetError):
                    if gone:
                        execute(client, f"rm -rf {' '.join(gone)}", timeout=30)
                client.close()

    def cleanup(self, run_id: str) -> None:
        """Remove the run's remote directory (reconnecting: the last session may be gone).
        Until that succeeds it stays in the invocation's record, for ``bench gc``."""
        created = self._disown(run_id)  # only a directory this process made is ours to remove
        if not created and not self._orphans:
            state.current().discard(self._state_key(run_id))
            return  # nothing was made on the host: no need to reach it
        client = self._connect()
        try:
            for leader, cell_dir in sorted(self._orphans.items()):
                execute(client, kill_group_command(self.config.python, leader), timeout=KILL_S)
                execute(client, f"rm -rf {q(cell_dir)}", timeout=30)
            self._orphans.clear()
            if created:
                path = self.run_dir(run_id)
                status, output = execute(client, f"rm -rf {q(path)}", timeout=60)
                if status != 0:
                    raise TargetError(f"{self.label}: cannot remove {path}: {output}")
            self._assets.cleanup(client, run_id)
            state.current().discard(self._state_key(run_id))
        finally:
            client.close()
