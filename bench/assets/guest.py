"""Assets in a fresh QEMU guest: copied onto its disk (``image``), a second read-only virtio
disk mounted before the worker starts (``volume``), or copied into its RAM (``tmpfs``).

Every cell boots a pristine guest, so the copies are made per cell, over SFTP, after the guest
answers and before the worker starts (inside ``provision``); they vanish with the guest's
overlay and memory. The volume's ext4 image is made once and stays in the cache.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from bench.assets import remote, volume
from bench.assets.model import AssetSet, Staged
from bench.errors import TargetError
from bench.targets.remotecmd import execute

ROOTS = {
    "image": "/var/tmp/bench-assets",  # the guest's root disk (its overlay)
    "volume": "/mnt/bench-assets",  # the second disk's mount point
    "tmpfs": "/dev/shm/bench-assets",  # the guest's RAM
}
DEVICE = "/dev/vdc"  # virtio disks enumerate in command-line order: root, package, assets


@dataclass(frozen=True)
class GuestAssets:
    """One asset set as a guest receives it: the set, and the disk that holds it (volume)."""

    assets: AssetSet
    disk: Path | None = None


def stage(assets: AssetSet, label: str) -> tuple[GuestAssets, Staged]:
    """What each cell's guest gets, and the spec's ``assets`` as the guest sees them."""
    root = ROOTS[assets.location]
    if assets.location != "volume":
        return GuestAssets(assets), Staged(assets.under(root), {"path": root, "copied": "per cell"})
    disk = volume.ensure(assets, label)
    return GuestAssets(assets, disk), Staged(assets.under(root), {"path": root, "disk": str(disk)})


def place(client: paramiko.SSHClient, found: GuestAssets | None, label: str) -> float | None:
    """Put the assets where the spec says, in a guest that has just booted; the seconds that
    took (a share of ``provision``: ``startup.stage_s``), None when the cell reads none."""
    if found is None:
        return None
    began = time.monotonic()
    root = ROOTS[found.assets.location]
    if found.disk is not None:
        at = shlex.quote(root)
        command = f"mkdir -p {at} && mount -t ext4 -o ro {DEVICE} {at}"
        status, output = execute(client, command, timeout=120)
        if status != 0:
            last = output.strip().splitlines()[-1:] or [f"exit status {status}"]
            raise TargetError(f"{label}: cannot mount the assets disk at {root}: {last[0]}")
        return time.monotonic() - began
    remote.make_dirs(client, [root], label)
    for asset in found.assets.assets:
        remote.upload(client, asset, f"{root}/{asset.key}", label)
    return time.monotonic() - began
