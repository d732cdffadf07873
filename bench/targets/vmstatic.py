"""The ``kind: vm, provisioner: static`` implementation: a VM that exists already (libvirt, a
cloud instance), reached over SSH exactly like ``kind: ssh``.

With ``start`` and ``stop`` commands (``virsh start NAME``, a cloud CLI call) every repetition
boots the VM: the start command runs on the controller and ``provision`` lasts until the guest
answers SSH and the worker starts, so a static VM's boot is measured like a QEMU guest's. The
stop command runs after the cell, on success, failure and Ctrl-C. Without them, ``provision``
is the SSH connection only and the manifest says that boot was not measured.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, ClassVar

import paramiko

from bench import interrupts, state
from bench.assets.model import AssetSet, Staged
from bench.build.builder import Builder
from bench.errors import TargetError
from bench.targets import hostcmd
from bench.targets.sshconn import Unreachable, connect_once
from bench.targets.sshtarget import SshDeployment, SshTarget
from bench.targets.vm import StaticVmConfig

RETRY_S = 1.0
NOT_MEASURED = "not measured: no start command, so provision is the SSH connection only"


class StaticVmTarget(SshTarget):
    """An SSH target whose machine may be booted and shut down around every repetition."""

    kind: ClassVar[str] = "vm"
    config: StaticVmConfig

    def __init__(self, config: StaticVmConfig) -> None:
        super().__init__(config)

    @property
    def cycles(self) -> bool:
        """Whether each repetition boots the VM (a start command is configured)."""
        return self.config.start is not None

    def prepare(self, builder: Builder) -> dict[str, Any]:
        """Nothing to build; records whether boot is part of ``provision``."""
        boot = "measured: each repetition runs the start command" if self.cycles else NOT_MEASURED
        return {"python": self.config.python, "provisioner": "static", "boot": boot}

    def stage(self, assets: AssetSet, run_id: str) -> Staged:
        """As for ``kind: ssh``; a VM booted for each repetition gets its copies after each
        boot (a shutdown loses the run directory)."""
        return self._assets.stage(assets, run_id, now=not self.cycles)

    def _session(self) -> paramiko.SSHClient:
        """With a start command: boot, then wait for SSH; otherwise a plain connection."""
        if not self.cycles:
            return self._connect()
        assert self.config.start is not None
        deadline = time.monotonic() + self.config.boot_timeout_s
        self._record_started()
        self._run("start", self.config.start)
        return self._wait_for_ssh(deadline)

    def _record_started(self) -> None:
        """Record the stop command before the start command runs: after a SIGKILL of the
        controller, ``bench gc`` runs it (in the same directory) to shut the VM down."""
        c = self.config
        state.current().add(
            f"static_vm:{c.name}:{c.host}:{c.port}",
            "static_vm",
            target=c.name,
            host=c.host,
            port=c.port,
            stop=c.stop,
            cwd=os.getcwd(),
            timeout_s=c.command_timeout_s,
        )

    def _wait_for_ssh(self, deadline: float) -> paramiko.SSHClient:
        endpoint = self.endpoint()
        last: TargetError | None = None
        while time.monotonic() < deadline:
            try:
                return connect_once(endpoint)
            except Unreachable as exc:
                last = exc
            except TargetError as exc:  # authentication, host key: final, named like _connect's
                raise TargetError(
                    f"target {self.config.name!r}: {exc.message}", hint=exc.hint
                ) from None
            interrupts.sleep(RETRY_S)  # Ctrl-C in another thread (--parallel-hosts) ends it
        detail = last.message if last else "no attempt finished"
        raise TargetError(
            f"{self.label}: boot timeout: no SSH answer within "
            f"{self.config.boot_timeout_s:g} s of the start command ({detail})"
        )

    def _run(self, what: str, command: list[str]) -> None:
        """Run a start/stop command on the controller; a failure is one line with its output.

        Ctrl-C, a cancelled run and the timeout end the command's whole process group. A stop
        command is not cancelled: it is what leaves nothing running after a cancel.
        """
        try:
            done = hostcmd.run(command, self.config.command_timeout_s, cancellable=what != "stop")
        except FileNotFoundError:
            raise TargetError(f"{self.label}: {what} command not found: {command[0]}") from None
        except OSError as exc:  # not executable (anymore), a directory, ...
            raise TargetError(
                f"{self.label}: {what} command cannot be run: {command[0]}: {exc.strerror or exc}"
            ) from None
        except subprocess.TimeoutExpired:
            raise TargetError(
                f"{self.label}: {what} command timed out after "
                f"{self.config.command_timeout_s:g} s: {shlex.join(command)}"
            ) from None
        if done.returncode != 0:
            lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
            raise TargetError(
                f"{self.label}: {what} command failed with status {done.returncode}: {lines[-1]}"
            )

    def _stop(self) -> None:
        if self.config.stop is not None:
            self._run("stop", self.config.stop)
            c = self.config
            state.current().discard(f"static_vm:{c.name}:{c.host}:{c.port}")

    def drop_caches(self) -> str | None:
        """A running VM's guest cache is dropped over SSH. One that is started for each
        repetition boots with an empty cache, but its host's cache of the disk image is out of
        bench's reach: drop it in the ``start`` command."""
        if self.cycles:
            return (
                "the VM is started for each repetition and its host is out of reach: "
                "drop the host's page cache in the start command"
            )
        return super().drop_caches()

    @contextmanager
    def deploy(self, spec: dict[str, Any], run_id: str) -> Iterator[SshDeployment]:
        """As for ``kind: ssh``; a booted VM also loses the run directory (it is uploaded
        again after the next boot) and is stopped when the cell ends."""
        if not self.cycles:
            with super().deploy(spec, run_id) as deployment:
                yield deployment
            return
        try:
            with super().deploy(spec, run_id) as deployment:
                yield deployment
        except BaseException:
            self._shut_down(run_id, quiet=True)  # the cell's own error is the one to report
            raise
        self._shut_down(run_id, quiet=False)

    def _shut_down(self, run_id: str, quiet: bool) -> None:
        """Forget the run directory and run the stop command, whatever else is going on."""
        with interrupts.deferred():
            self._forget(run_id)
            if not quiet:
                self._stop()
                return
            with suppress(TargetError):
                self._stop()

    def _forget(self, run_id: str) -> None:
        """Remove the run directory before the VM stops (nothing remains for ``cleanup``)."""
        with suppress(TargetError):  # a guest already down keeps nothing we started
            SshTarget.cleanup(self, run_id)
        self._disown(run_id)  # after a boot the directory is made afresh, or refused if left

    def fingerprint(self, run_id: str, torch: bool = True) -> dict[str, Any]:
        """The VM's environment; a booted VM is stopped again afterwards."""
        if not self.cycles:
            vm = {"provisioner": "static", "boot_measured": False}
            return {**super().fingerprint(run_id, torch), "vm": vm}
        try:
            found = super().fingerprint(run_id, torch)
        except BaseException:
            self._shut_down(run_id, quiet=True)
            raise
        self._shut_down(run_id, quiet=False)
        return {**found, "vm": {"provisioner": "static", "boot_measured": True}}

    def cleanup(self, run_id: str) -> None:
        """A VM booted per repetition was cleaned before each stop; others as ``kind: ssh``."""
        if not self.cycles:
            super().cleanup(run_id)
