"""The ``kind: vm, provisioner: qemu`` implementation: a fresh QEMU guest per repetition,
booted from the matched guest disk through a copy-on-write overlay, reached over SSH on a
forwarded loopback port.

``provision`` runs from the deploy request to the worker starting in a guest that answers SSH:
overlay, QEMU start, firmware-less kernel boot, init, sshd, login. The kernel's share is read
from the serial console (``startup.kernel_boot_s``, on the guest's clock). The host pays for a
guest with the QEMU process's memory: its PSS is ``mem.host_bytes``, and what exceeds the
worker's own peak inside the guest (guest kernel, page cache, QEMU itself) is
``mem.overhead_bytes``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import paramiko

from bench import bootcache, interrupts, metadata, owner, pagecache
from bench.assets import guest as guest_assets
from bench.assets.model import AssetSet, Staged, cell_assets, key_of
from bench.build import guest as guest_build
from bench.build.builder import Builder
from bench.build.guest import GuestImage
from bench.errors import TargetError, WorkerError
from bench.probes.process import PssSampler
from bench.targets import accel, envvars, worker
from bench.targets.base import Measurement
from bench.targets.qemu import QEMU_HINT, Guest, Machine, owners, remove_guest
from bench.targets.remotecmd import execute, secret_input, start_worker, worker_command
from bench.targets.sshconn import Endpoint
from bench.targets.sshtarget import SshDeployment
from bench.targets.vm import MiB, QemuVmConfig

CELL_DIR = guest_build.WORKDIR + "/bench-cell"
LIB = guest_build.LIB
FINGERPRINT_TIMEOUT_S = 900.0  # imports torch: tens of seconds under emulation
SSH_TIMEOUT_S = 60.0  # sshd re-executes itself per connection: seconds under emulation


@dataclass(frozen=True)
class Prepared:
    """What ``prepare`` resolved: the machine to start and the guest it boots."""

    machine: Machine
    image: GuestImage
    accel: accel.Accel


class VmDeployment(SshDeployment):
    """A worker in a guest: SSH events, plus what the host pays for the guest."""

    def __init__(
        self,
        client: paramiko.SSHClient,
        channel: paramiko.Channel,
        label: str,
        vm: Guest,
        sampler: PssSampler,
    ) -> None:
        super().__init__(client, channel, label, guest_build.PYTHON, CELL_DIR)
        self.vm = vm
        self.sampler = sampler
        self.worker_peak: float | None = None
        self.stage_s: float | None = None  # putting the cell's assets into the fresh guest

    def events(
        self, deadline: float, cancel: threading.Event | None = None
    ) -> Iterator[dict[str, Any]]:
        """The worker's events; a guest that dies mid-run is reported as such."""
        try:
            for event in super().events(deadline, cancel):
                if event.get("event") == "result":
                    peak = event.get("metrics", {}).get("mem.rss_peak_bytes", {})
                    self.worker_peak = peak.get("value")
                yield event
        except WorkerError as exc:
            transport = self.client.get_transport()
            dropped = transport is None or not transport.is_active() or not self.exited()
            status = self.vm.exit_status(within_s=5.0) if dropped else None
            if status is not None:
                raise WorkerError(
                    f"{self.label}: the guest's QEMU process exited (status {status}) before "
                    f"the worker reported a result; console: {self.vm.console_tail()}",
                    stderr_tail=exc.stderr_tail,
                ) from None
            raise

    def exited(self) -> bool:
        """Whether the worker's exit status arrived (a dropped guest never sends one)."""
        return self._exit_status() is not None

    def host_measurements(self) -> list[Measurement]:
        """QEMU's PSS, the overhead beyond the worker's own peak, and the kernel's boot time."""
        self.sampler.sample_now()
        host = self.sampler.peak
        out = [_host_bytes(host, self.sampler.timeline), _overhead(host, self.worker_peak)]
        boot = self.vm.kernel_boot_s()
        reason = None if boot is not None else "the guest console never showed its init start"
        out.append(Measurement("startup.kernel_boot_s", "s", value=boot, reason=reason))
        if self.stage_s is not None:
            out.append(Measurement("startup.stage_s", "s", value=self.stage_s))
        return out


def _host_bytes(host: int | None, timeline: list[tuple[float, float]]) -> Measurement:
    if host is None:
        reason = "the QEMU process's smaps_rollup could not be read"
        return Measurement("mem.host_bytes", "bytes", reason=reason)
    return Measurement("mem.host_bytes", "bytes", value=host, timeline=timeline)


def _overhead(host: int | None, worker_peak: float | None) -> Measurement:
    if host is None or worker_peak is None:
        reason = "needs both QEMU's memory and the worker's peak inside the guest"
        return Measurement("mem.overhead_bytes", "bytes", reason=reason)
    return Measurement("mem.overhead_bytes", "bytes", value=host - worker_peak)


class QemuVmTarget:
    """Boots a pristine guest for every repetition (and one for the fingerprint)."""

    kind: ClassVar[str] = "vm"

    def __init__(self, config: QemuVmConfig) -> None:
        self.config = config
        self._prepared: Prepared | None = None
        self._assets: dict[str, guest_assets.GuestAssets] = {}

    @property
    def label(self) -> str:
        return f"target {self.config.name!r} (QEMU guest)"

    def host_id(self) -> str:
        """QEMU runs on this machine, like ``local`` targets."""
        return "localhost"

    def prepare(self, builder: Builder) -> dict[str, Any]:
        """Build the guest disk and the package disk, and choose KVM or TCG."""
        c = self.config
        binary = shutil.which(c.qemu)
        if binary is None:
            raise TargetError(f"{self.label}: {c.qemu} not found", hint=QEMU_HINT)
        _check_pins(c.pin_vcpus, self.label)
        image = builder.guest()
        package_disk = guest_build.package_disk(builder.note)
        chosen = accel.choose(c.accel, binary, image.kernel, c.cpu or "host")
        cpu = c.cpu or ("host" if chosen.name == "kvm" else "max")
        machine = Machine(
            binary=binary,
            accel=chosen.name,
            cpu=cpu,
            vcpus=c.vcpus,
            memory_mib=c.memory // MiB,
            disk_cache=c.disk_cache,
            kernel=image.kernel,
            initrd=image.initrd,
            disk=image.disk,
            package_disk=package_disk,
            extra_args=tuple(c.extra_args),
            pin=tuple(c.pin_vcpus or ()),
        )
        self._prepared = Prepared(machine, image, chosen)
        return {
            "guest": image.record(),
            "package_disk": str(package_disk),
            "qemu": qemu_version(binary),
            **self._vm_facts(),
        }

    def _vm_facts(self) -> dict[str, Any]:
        """How the guest is run; recorded with the artefacts and in the fingerprint."""
        prepared = self._ready()
        m = prepared.machine
        return {
            "accel": prepared.accel.name,
            "accel_label": prepared.accel.label,
            "accel_reason": prepared.accel.reason,
            "cpu": m.cpu,
            "vcpus": m.vcpus,
            "memory_bytes": m.memory_mib * MiB,
            "disk_cache": m.disk_cache,
            "pin_vcpus": list(m.pin),
            "extra_args": list(m.extra_args),
        }

    def _ready(self) -> Prepared:
        if self._prepared is None:
            raise TargetError(f"{self.label}: not prepared (the guest disk was never built)")
        return self._prepared

    @contextmanager
    def _booted(
        self, run_id: str, machine: Machine | None = None
    ) -> Iterator[tuple[Guest, paramiko.SSHClient, PssSampler]]:
        """A guest answering SSH; leaving terminates QEMU and deletes its overlay."""
        prepared = self._ready()
        vm = Guest(machine or prepared.machine, run_id, self.config.name, self.label)
        sampler: PssSampler | None = None
        client: paramiko.SSHClient | None = None
        deadline = time.monotonic() + self.config.boot_timeout_s
        try:
            with interrupts.deferred():
                vm.start()
            assert vm.process is not None
            sampler = PssSampler(vm.process.pid).start()
            client = vm.wait_for_ssh(self._endpoint(vm, prepared.image), deadline)
            yield vm, client, sampler
        finally:
            with interrupts.deferred():
                if sampler is not None:
                    sampler.stop()
                if client is not None:
                    client.close()
                vm.destroy()

    def _endpoint(self, vm: Guest, image: GuestImage) -> Endpoint:
        """Login as the harness's key; the host key recorded at build time is the only one
        accepted (written for this guest's port, as OpenSSH keys non-22 ports)."""
        known_hosts = vm.directory / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{vm.port} {image.host_key}\n")
        return Endpoint(
            host="127.0.0.1",
            port=vm.port,
            user=guest_build.USER,
            key=str(image.client_key),
            password=None,
            known_hosts=known_hosts,
            host_key="strict",
            timeout_s=SSH_TIMEOUT_S,
            retries=0,
        )

    def fingerprint(self, run_id: str, torch: bool = True) -> dict[str, Any]:
        """The guest's environment (its own fingerprint mode), plus how it was run and the
        host machine it ran on (the guest sees virtual CPUs, not the hardware).

        Every guest boots the same pristine disk, so what it reports cannot change while the
        disk, the package disk, QEMU, the machine's settings and the host's boot stay the same:
        the guest's part is kept per host boot (``bench.bootcache``; under emulation it costs a
        boot and a torch import) and ``vm.guest_fingerprint`` says when it was taken."""
        machine = self._ready().machine
        binary = Path(machine.binary)
        parts = (
            repr(machine), qemu_version(machine.binary), str(binary.stat().st_mtime_ns),
            json.dumps(envvars.plain(self.config.env), sort_keys=True), str(torch),
        )  # fmt: skip
        found, kept = bootcache.remembered(
            "vm-fingerprint", parts, lambda: self._guest_fingerprint(run_id, torch)
        )
        taken = {"run_id": found.pop("_taken_by"), "at": found.pop("_taken_at"), "kept": kept}
        found["vm"] = {**self._vm_facts(), "host_hardware": _host_hardware()}
        found["vm"]["guest_fingerprint"] = taken
        return found

    def _guest_fingerprint(self, run_id: str, torch: bool) -> dict[str, Any]:
        """What a freshly booted guest's fingerprint mode reports (a boot, under TCG slow)."""
        with self._booted(run_id) as (_, client, _):
            args = worker.fingerprint_args(guest_build.PYTHON, torch)
            cell = guest_build.WORKDIR + "/bench-fingerprint"
            command = worker_command(envvars.plain(self.config.env), LIB, cell, args)
            status, output = execute(client, command, timeout=FINGERPRINT_TIMEOUT_S)
        if status != 0:
            last = output.strip().splitlines()[-1:] or ["?"]
            raise TargetError(f"{self.label}: fingerprint failed: {last[0]}")
        found = worker.parse_fingerprint(output, self.label)
        return {**found, "_taken_by": run_id, "_taken_at": metadata.now_iso()}

    def drop_caches(self) -> str | None:
        """Every guest boots with an empty page cache; the host's, which holds the disk image's
        pages under ``disk_cache: writeback``, is dropped here."""
        return pagecache.drop_local()

    def stage(self, assets: AssetSet, run_id: str) -> Staged:
        """Each cell's guest gets the assets (``bench.assets.guest``); location volume makes
        their ext4 image now, once."""
        found, staged = guest_assets.stage(assets, self.label)
        self._assets[assets.key] = found
        return staged

    @contextmanager
    def deploy(self, spec: dict[str, Any], run_id: str) -> Iterator[VmDeployment]:
        """Boot a pristine guest, put the cell's assets in it and start the worker; leaving
        discards the guest."""
        wanted = cell_assets(spec)
        found = self._assets.get(key_of(wanted)) if wanted is not None else None
        if wanted is not None and found is None:
            raise TargetError(f"{self.label}: the cell's assets were never staged")
        machine = self._ready().machine
        if found is not None and found.disk is not None:
            machine = replace(machine, asset_disk=found.disk)
        with self._booted(run_id, machine) as (vm, client, sampler):
            stage_s = guest_assets.place(client, found, self.label)
            command = worker_command(
                self.config.env, LIB, CELL_DIR, worker.run_args(guest_build.PYTHON)
            )
            secrets = secret_input(self.config.env)
            channel = start_worker(client, command, spec, self.label, secrets)
            deployment = VmDeployment(client, channel, self.label, vm, sampler)
            deployment.stage_s = stage_s
            yield deployment

    def cleanup(self, run_id: str) -> None:
        """Each guest is removed when its cell ends; this catches any of this invocation's
        that escaped (another invocation given the same run id keeps its own)."""
        for directory, record in owners():
            ours = record.get("run_id") == run_id and record.get("target") == self.config.name
            if ours and owner.mine(record.get("owner")):
                remove_guest(directory, record)


def _check_pins(pins: list[int] | None, label: str) -> None:
    """Pinning to a CPU this process may not use would fail at every boot; fail once, now."""
    if not pins:
        return
    usable = os.sched_getaffinity(0)
    bad = sorted(set(pins) - usable)
    if bad:
        raise TargetError(
            f"{label}: pin_vcpus names CPUs {bad} that are not usable here "
            f"(usable: {sorted(usable)})"
        )


def qemu_version(binary: str) -> str:
    """``QEMU emulator version …`` as the binary reports it."""
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return (done.stdout.strip().splitlines() or ["unknown"])[0]


def _host_hardware() -> dict[str, Any]:
    """The machine QEMU runs on, in the worker's own fingerprint vocabulary: only the hardware
    probes (a whole host fingerprint would also sample the load), GPU names from NVML because
    the controller does not import torch."""
    from bench.results.model import Fingerprint
    from workloads import fingerprint

    found = fingerprint.nvml()
    gpus = [str(gpu.get("name")) for gpu in found.get("gpus", []) if isinstance(gpu, dict)]
    probed = {
        "cpu_model": fingerprint.cpu_model(),
        "cores": fingerprint.cores(),
        "memory_bytes": fingerprint.memory_bytes(),
        "gpu_names": gpus,
    }
    return Fingerprint.model_validate(probed).hardware()
