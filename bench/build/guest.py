"""The matched VM guest: a bootable disk made from the same offline Debian and the same
wheelhouse as the container image, plus the kernel and initramfs to boot it directly.

The guest starts from the very base tarball the container image is imported from (one
``debootstrap`` for both); its kernel, sshd and ``ip`` are installed on top with apt in a
chroot, so the two targets share every package they both have, byte for byte.

The disk is an ext4 filesystem image written straight from a directory tree (``mkfs.ext4 -d``),
so building it needs neither loop devices nor mounts. The guest's PID 1 is a short script that
mounts what Linux needs, brings up the network QEMU's user-mode stack expects and ``exec``s
sshd: no init system, so boot-to-SSH measures the kernel and the hypervisor rather than service
start-up ordering. The harness owns the guest's SSH keys: its client key is the only one
authorised, and the guest's host key is recorded at build time, so host-key checking stays
strict without ever trusting on first use.

The ``workloads`` package is not on this disk: it travels as a second, small read-only disk
named by its content hash, so editing a workload never rebuilds the multi-gigabyte system disk.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench import workerpack
from bench.build import base, cache
from bench.build.config import BuildConfig
from bench.build.wheelhouse import INDEX_FILE, REQUIREMENTS_FILE, Wheelhouse
from bench.errors import BuildError

PACKAGES = ("linux-image-amd64", "openssh-server", "iproute2")  # on top of the shared base
PYTHON = "/opt/bench/venv/bin/python"
LIB = "/opt/bench/lib"
USER = "root"
WORKDIR = "/var/tmp"
GUEST_FILE = "guest.json"
HEADROOM = 1 << 30  # free space on the root disk for workloads' datasets and caches

INIT = """\
#!/bin/sh
# PID 1 of a bench guest: mount, configure QEMU user networking, then become sshd.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
up() { cut -d' ' -f1 /proc/uptime; }
mountpoint -q /proc || mount -t proc proc /proc
echo "bench-guest: init $(up)"
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mountpoint -q /run || mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -o remount,rw /
hostname bench-guest
modprobe -q virtio_net
nic=$(ls /sys/class/net | grep -vx lo | head -n 1)
ip link set lo up
ip link set "$nic" up
ip addr add 10.0.2.15/24 dev "$nic"
ip route add default via 10.0.2.2
mount -o ro /dev/vdb {lib} || echo "bench-guest: no package disk"
mkdir -p -m 755 /run/sshd
echo "bench-guest: sshd $(up)"
exec /usr/sbin/sshd -D -e
"""

SSHD_CONFIG = """\
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""


@dataclass(frozen=True)
class GuestImage:
    """A built guest: its disk, kernel, initramfs and the keys that reach it."""

    key: str
    path: Path
    kernel_release: str

    @property
    def disk(self) -> Path:
        return self.path / "disk.img"

    @property
    def kernel(self) -> Path:
        return self.path / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.path / "initrd.img"

    @property
    def client_key(self) -> Path:
        """The private key the harness logs in with (the only authorised key)."""
        return self.path / "id_ed25519"

    @property
    def host_key(self) -> str:
        """The guest sshd's public host key, ``ssh-ed25519 AAAA…``."""
        return (self.path / "host_key.pub").read_text().strip()

    def record(self) -> dict[str, Any]:
        """What the run manifest stores about the guest."""
        return {"key": self.key, "path": str(self.path), "kernel": self.kernel_release}


def guest_key(config: BuildConfig, wheelhouse: Wheelhouse) -> str:
    """Hash of everything the disk is made from."""
    rootfs_key, _ = base.rootfs_key(config)
    init = INIT.replace("{lib}", LIB)
    parts = (rootfs_key, ",".join(PACKAGES), wheelhouse.key, init, SSHD_CONFIG, PYTHON)
    return cache.digest("guest-v2", *parts)[:16]


def built(config: BuildConfig, wheelhouse: Wheelhouse) -> bool:
    """Whether the matched guest is in the cache already (nothing to build)."""
    return (cache.root() / "guest" / guest_key(config, wheelhouse) / GUEST_FILE).is_file()


def ensure(
    config: BuildConfig,
    wheelhouse: Wheelhouse,
    note: Callable[[str], None],
    rootfs: Callable[[], base.RootFs] | None = None,
) -> GuestImage:
    """The matched guest, built when it is not in the cache yet from ``rootfs()`` (the
    builder's offline base, shared with the container image)."""
    key = guest_key(config, wheelhouse)
    with cache.locked("guest") as root:
        final = root / "guest" / key
        if (final / GUEST_FILE).is_file():
            return _load(key, final)
        _check_tools()
        fs = rootfs() if rootfs else base.rootfs(config, note)
        note(f"making the VM guest disk {final}")
        staging = final.with_name(f"{key}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        with cache.unfinished(staging):
            private_dir(staging)
            release = _make(fs.tarball, wheelhouse, staging, note)
            info = {"key": key, "kernel": release, "rootfs": fs.key, "wheelhouse": wheelhouse.key}
            (staging / GUEST_FILE).write_text(json.dumps(info, indent=2) + "\n")
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
        return GuestImage(key, final, release)


def _load(key: str, path: Path) -> GuestImage:
    info = json.loads((path / GUEST_FILE).read_text())
    _restrict(path)
    return GuestImage(key, path, str(info["kernel"]))


def private_dir(path: Path) -> None:
    """A new directory only its owner can enter (mode 0700 whatever the umask), for a guest:
    it holds the harness's login key and a disk with the guest's host key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700, follow_symlinks=False)  # mkdir's mode is masked by the umask


def _restrict(path: Path) -> None:
    """Close a guest built before its files were private (the directory and its disk were
    left readable by everyone under the usual umask)."""
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    disk = path / "disk.img"
    if disk.is_file() and disk.stat().st_mode & 0o077:
        disk.chmod(0o600)


def _check_tools() -> None:
    tools = ("mkfs.ext4", "chroot", "tar", "unshare")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise BuildError(
            f"VM guest: {', '.join(missing)} not installed",
            hint="apt-get install e2fsprogs util-linux",
        )
    if os.geteuid() != 0:
        raise BuildError("VM guest: building the guest disk needs root (chroot, file owners)")


def _make(tarball: Path, wheelhouse: Wheelhouse, out: Path, note: Callable[[str], None]) -> str:
    """Unpack the base, install the venv and bench's files, write the disk; the kernel release."""
    tree = out / "tree"
    tree.mkdir()
    try:
        _run(["tar", "--numeric-owner", "-xf", str(tarball), "-C", str(tree)], "unpack the base")
        note(f"installing {' '.join(PACKAGES)} into the guest with apt")
        _add_packages(tree)
        note("installing the pinned wheels into the guest's venv")
        _install_venv(tree, wheelhouse)
        release = _copy_kernel(tree, out)
        _write_keys(tree, out)
        _write_system_files(tree)
        note("writing the guest disk image")
        _mkfs(tree, out / "disk.img", "bench-root", _du(tree) + HEADROOM)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    return release


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        raise BuildError(f"VM guest: cannot {what}: {lines[-1]}")


ADD_PACKAGES = """\
set -e
mount -t proc proc "$1/proc"
mount -t sysfs sysfs "$1/sys"
exec chroot "$@"
"""
APT = """\
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@"
apt-get clean
"""
NO_SERVICES = b"#!/bin/sh\n# no service starts while the guest is being built\nexit 101\n"


def _add_packages(tree: Path) -> None:
    """``PACKAGES`` installed into the unpacked base by its own apt, from the mirror the base
    came from. The chroot gets /proc and /sys in a private mount namespace, so they vanish
    with it however the install ends, and ``policy-rc.d`` keeps sshd from starting."""
    _copy_resolver(tree)
    policy = tree / "usr" / "sbin" / "policy-rc.d"
    _write(policy, NO_SERVICES, 0o755)
    try:
        chroot = [str(tree), "/bin/sh", "-c", APT, "apt", *PACKAGES]
        command = ["unshare", "--mount", "--fork", "sh", "-c", ADD_PACKAGES, "sh", *chroot]
        _run(command, f"install {' '.join(PACKAGES)} with apt")
    finally:
        policy.unlink(missing_ok=True)
    base.trim(tree)


def _copy_resolver(tree: Path) -> None:
    """The host's resolver configuration, so apt in the chroot finds the mirror by name."""
    resolv = tree / "etc" / "resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    with suppress(OSError):
        resolv.write_bytes(Path("/etc/resolv.conf").read_bytes())


def _install_venv(tree: Path, wheelhouse: Wheelhouse) -> None:
    """The venv from the guest's own Python, installed from the wheelhouse with --no-index."""
    wheels = tree / "tmp" / "wheelhouse"
    wheels.mkdir(parents=True)
    try:
        for path in wheelhouse.path.iterdir():
            if path.suffix == ".whl" or path.name in (REQUIREMENTS_FILE, INDEX_FILE):
                shutil.copy2(path, wheels / path.name)
        venv = str(Path(PYTHON).parent.parent)
        _run(["chroot", str(tree), "/usr/bin/python3", "-m", "venv", venv], "create the venv")
        pip = [PYTHON, "-m", "pip", "install", "-q", "--no-index", "--no-cache-dir"]
        pip += ["--disable-pip-version-check", "--find-links", "/tmp/wheelhouse"]
        pip += ["-r", f"/tmp/wheelhouse/{REQUIREMENTS_FILE}"]
        _run(["chroot", str(tree), *pip], "install the wheelhouse into the guest venv")
        _run(["chroot", str(tree), PYTHON, "-c", "import numpy, torch"], "import torch")
    finally:
        shutil.rmtree(wheels, ignore_errors=True)


def _copy_kernel(tree: Path, out: Path) -> str:
    """The distribution's kernel and initramfs, booted directly by QEMU (no bootloader)."""
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise BuildError("VM guest: the base has no kernel in /boot (linux-image-amd64 missing)")
    release = kernels[-1].name.removeprefix("vmlinuz-")
    initrd = tree / "boot" / f"initrd.img-{release}"
    if not initrd.is_file():
        raise BuildError(f"VM guest: no initramfs for kernel {release} in /boot")
    shutil.copy2(kernels[-1], out / "vmlinuz")
    shutil.copy2(initrd, out / "initrd.img")
    return release


def _openssh_pair() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair: (private key in OpenSSH format, public key line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public


def _write_keys(tree: Path, out: Path) -> None:
    """The harness's login key (authorised in the guest) and the guest's only host key."""
    private, public = _openssh_pair()
    _write(out / "id_ed25519", private, 0o600)
    _write(out / "id_ed25519.pub", public + b"\n", 0o644)
    ssh_dir = tree / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(ssh_dir / "authorized_keys", public + b"\n", 0o600)
    for old in (tree / "etc" / "ssh").glob("ssh_host_*"):
        old.unlink()
    host_private, host_public = _openssh_pair()
    _write(tree / "etc" / "ssh" / "ssh_host_ed25519_key", host_private, 0o600)
    _write(tree / "etc" / "ssh" / "ssh_host_ed25519_key.pub", host_public + b"\n", 0o644)
    _write(out / "host_key.pub", host_public + b"\n", 0o644)


def _write_system_files(tree: Path) -> None:
    _write(tree / "sbin" / "bench-init", INIT.replace("{lib}", LIB).encode(), 0o755)
    _write(tree / "etc" / "ssh" / "sshd_config.d" / "bench.conf", SSHD_CONFIG.encode(), 0o644)
    (tree / LIB.lstrip("/")).mkdir(parents=True, exist_ok=True)
    _write(tree / "etc" / "hostname", b"bench-guest\n", 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` with ``mode`` from the start: a key is never readable by others, not even
    between the write and a chmod, and a symbolic link planted at ``path`` is not followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, mode)  # exactly ``mode``: the umask or an older file may differ, before data
        handle.write(data)


def _du(tree: Path) -> int:
    """Bytes the tree occupies (allocated blocks, as the filesystem will need them)."""
    done = subprocess.run(["du", "-sb", str(tree)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0])


def _mkfs(tree: Path, image: Path, label: str, size: int, mode: int = 0o600) -> None:
    """An ext4 image populated from ``tree`` (sparse: unused space costs nothing on disk),
    created with ``mode`` before mkfs writes anything into it (it keeps an existing file's):
    private unless said otherwise, as the guest's disk holds its host key."""
    image.unlink(missing_ok=True)
    os.close(os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode))
    os.chmod(image, mode)  # an empty file yet: the umask may only have narrowed ``mode``
    size_k = -(-int(size * 1.1) // 4096) * 4
    command = ["mkfs.ext4", "-q", "-F", "-L", label, "-d", str(tree), str(image), f"{size_k}k"]
    _run(command, "write the ext4 image")


def package_disk(note: Callable[[str], None]) -> Path:
    """The ``workloads`` package as a small ext4 image, named by the package's hash."""
    pkg = workerpack.build()
    with cache.locked("guest-package") as root:
        image = root / "guest-package" / f"{pkg.name}.img"
        if image.is_file():
            return image
        image.parent.mkdir(parents=True, exist_ok=True)
        partial = image.with_suffix(".partial")
        with tempfile.TemporaryDirectory() as tmp, cache.unfinished(partial):
            with tarfile.open(fileobj=io.BytesIO(pkg.archive), mode="r:gz") as tar:
                tar.extractall(tmp, filter="data")
            _mkfs(Path(tmp), partial, "bench-pkg", 8 << 20, mode=0o644)  # public code only
            partial.rename(image)
        return image
