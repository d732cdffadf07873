"""Assets on a host reached over SSH (``kind: ssh``, a static VM): copied once per run into the
run's remote directory, off every clock; for ``location: tmpfs`` each cell also gets a fresh
directory in the run's own directory of the remote ``/dev/shm``, removed when the cell ends,
which the worker copies the assets into.

A static VM booted for each repetition loses both with every shutdown, so its copies are made
again after each boot (inside ``provision``, like a QEMU guest's). The ``/dev/shm`` directory is
created and recorded like the run directory (``bench gc`` removes it after a SIGKILL).
"""

from __future__ import annotations

import posixpath
import threading
import uuid
from typing import Any, Protocol

import paramiko

from bench import state
from bench.assets import remote
from bench.assets.model import AssetSet, Staged, cell_assets, key_of, with_stage_to
from bench.errors import TargetError
from bench.targets.remotecmd import execute, q
from bench.targets.remotedir import Owned


class Host(Protocol):
    """What of an SSH target (``bench.targets.sshtarget``) its assets use: its run directory,
    made, owned and recorded for ``bench gc`` the way the target does it."""

    label: str
    _owned: Owned

    def run_dir(self, run_id: str) -> str: ...
    def _claim(self, run_id: str, path: str | None = None) -> None: ...
    def _state_key(self, run_id: str, path: str | None = None) -> str: ...
    def _session(self) -> paramiko.SSHClient: ...
    def _prepare(self, client: paramiko.SSHClient, run_id: str) -> str: ...
    def _make_run_dir(self, client: paramiko.SSHClient, run_dir: str) -> None: ...


class RemoteAssets:
    """The asset sets one SSH target was given, and the RAM directories it made for them."""

    def __init__(self, target: Host) -> None:
        self.target = target
        self.sets: dict[str, AssetSet] = {}
        self.ram: set[str] = set()  # /dev/shm directories made on the host, until removed
        self._lock = threading.Lock()

    def root(self, run_id: str) -> str:
        """Where the run's asset copies live on the host."""
        return posixpath.join(self.target.run_dir(run_id), "assets")

    def ram_dir(self, run_id: str) -> str:
        """The run's directory in the host's ``/dev/shm`` (named like its run directory)."""
        return posixpath.join(remote.SHM, posixpath.basename(self.target.run_dir(run_id)))

    def stage(self, assets: AssetSet, run_id: str, now: bool = True) -> Staged:
        """Remember ``assets`` and, when ``now``, copy them to the host (once per run)."""
        self.sets[assets.key] = assets
        if now:
            self.target._claim(run_id)
            client = self.target._session()
            try:
                self.place(client, run_id, assets)
            finally:
                client.close()
        root = self.root(run_id)
        when = "once per run" if now else "after each boot"
        return Staged(assets.under(root), {"path": root, "copied": when})

    def place(self, client: paramiko.SSHClient, run_id: str, assets: AssetSet) -> None:
        """Each asset of ``assets`` in the run directory, and the RAM directory for tmpfs,
        made unless this run already made them on the host."""
        target = self.target
        target._prepare(client, run_id)  # the run directory, made and owned by this target
        with target._owned.claim(target.run_dir(run_id)) as held:
            todo = [a for a in assets.assets if f"asset:{a.key}" not in held.packages]
            root = self.root(run_id)
            if todo:
                remote.make_dirs(client, [root], target.label)
            for asset in todo:
                remote.upload(client, asset, posixpath.join(root, asset.key), target.label)
                held.packages.add(f"asset:{asset.key}")
            if assets.location == "tmpfs" and "ram" not in held.packages:
                ram = self.ram_dir(run_id)
                target._claim(run_id, ram)
                with self._lock:
                    self.ram.add(ram)
                target._make_run_dir(client, ram)
                held.packages.add("ram")

    def cell(
        self, client: paramiko.SSHClient, run_id: str, spec: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        """The cell's spec, with a fresh RAM directory as ``stage_to`` for tmpfs; that
        directory (removed when the cell ends) or None."""
        found = cell_assets(spec)
        if found is None:
            return spec, None
        assets = self.sets.get(key_of(found))
        if assets is None:
            raise TargetError(f"{self.target.label}: the cell's assets were never staged")
        self.place(client, run_id, assets)  # done already, unless the host was booted anew
        if assets.location != "tmpfs":
            return spec, None
        ram = posixpath.join(self.ram_dir(run_id), f"cell-{uuid.uuid4().hex[:12]}")
        remote.make_dirs(client, [ram], self.target.label)
        return with_stage_to(spec, ram), ram

    def cleanup(self, client: paramiko.SSHClient, run_id: str) -> None:
        """Remove the run's RAM directory, when one was made."""
        ram = self.ram_dir(run_id)
        with self._lock:
            if ram not in self.ram:
                return
        status, output = execute(client, f"rm -rf -- {q(ram)}", timeout=60)
        if status != 0:
            raise TargetError(f"{self.target.label}: cannot remove {ram}: {output.strip()}")
        with self._lock:
            self.ram.discard(ram)
        state.current().discard(self.target._state_key(run_id, ram))
