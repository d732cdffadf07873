"""The base system images are built on: a registry image when one is configured and can be
pulled, otherwise a Debian made offline with ``debootstrap --variant=minbase``.

Machines in a lab often have a Debian mirror (apt) but no container registry; the offline base
makes the container image and the VM disk from the same tarball (the guest adds its kernel and
sshd on top). The root filesystem is kept as a tarball in the cache, named by a hash of its
inputs.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.build import cache
from bench.build.config import BuildConfig
from bench.errors import BuildError

DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv")
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


@dataclass(frozen=True)
class RootFs:
    """A debootstrapped root filesystem as a tarball."""

    key: str
    tarball: Path
    release: str
    mirror: str


def host_mirror() -> str:
    """The Debian mirror this host's apt uses (so offline labs use their local mirror)."""
    files: list[Path] = []
    for source in APT_SOURCES:
        files += sorted(source.glob("*")) if source.is_dir() else [source]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"(?m)^(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(\S+)", text):
            uri = match.group(1).rstrip("/")
            if "security" not in uri and uri.startswith(("http://", "https://", "file:")):
                return uri
    return DEFAULT_MIRROR


def rootfs_key(config: BuildConfig, packages: tuple[str, ...] = PACKAGES) -> tuple[str, str]:
    """(key, mirror) of an offline base: what names it in the cache and on an engine."""
    mirror = config.mirror or host_mirror()
    parts = ("rootfs-v1", config.release, mirror, ",".join(packages), platform.machine())
    return cache.digest(*parts)[:16], mirror


def rootfs(
    config: BuildConfig, note: Callable[[str], None], packages: tuple[str, ...] = PACKAGES
) -> RootFs:
    """An offline base's tarball with ``packages``, made with debootstrap when it is not in
    the cache yet (Python only: the VM guest adds a kernel and sshd to its own copy)."""
    key, mirror = rootfs_key(config, packages)
    with cache.locked("rootfs") as root:
        tarball = root / "rootfs" / f"{key}.tar"
        if tarball.is_file():
            return RootFs(key, tarball, config.release, mirror)
        _check_debootstrap()
        what = " ".join(packages)
        note(f"making an offline Debian {config.release} ({what}) with debootstrap from {mirror}")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        staging = tarball.with_suffix(".partial")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _debootstrap(config.release, mirror, staging, packages)
            trim(staging)
            _tar(staging, tarball)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return RootFs(key, tarball, config.release, mirror)


def _check_debootstrap() -> None:
    hint = (
        "run as root with debootstrap installed (apt-get install debootstrap), "
        "or set build.base_image to a registry image"
    )
    if shutil.which("debootstrap") is None:
        raise BuildError("offline base: debootstrap is not installed", hint=hint)
    if os.geteuid() != 0:
        raise BuildError("offline base: debootstrap needs root", hint=hint)


def _debootstrap(release: str, mirror: str, target: Path, packages: tuple[str, ...]) -> None:
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        release,
        str(target),
        mirror,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log = target / "debootstrap" / "debootstrap.log"
        lines = done.stderr.strip().splitlines() or done.stdout.strip().splitlines()
        last = lines[-1] if lines else "no output"
        raise BuildError(
            f"offline base: debootstrap {release} from {mirror} failed: {last}",
            hint=f"see {log}" if log.exists() else "check that the mirror is reachable",
        )


def trim(target: Path) -> None:
    """Drop downloaded .debs and apt lists: they are not part of the system being measured."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_Packages"):
        for path in target.glob(pattern):
            path.unlink(missing_ok=True)


def _tar(source: Path, tarball: Path) -> None:
    partial = tarball.with_suffix(".tar.partial")
    command = ["tar", "--numeric-owner", "--xattrs", "-C", str(source), "-cf", str(partial), "."]
    with cache.unfinished(partial):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BuildError(
                f"offline base: cannot archive the root filesystem: {done.stderr.strip()}"
            )
        partial.rename(tarball)
