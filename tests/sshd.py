"""A real OpenSSH server for tests: generated host and user keys, a free loopback port.

Debian's ``/usr/sbin/sshd`` runs in the foreground (``-D``) with a config of its own, so it
does not touch the machine's sshd. Keys, authorized_keys, known_hosts and the pid file all
live in a temporary directory.
"""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"

CONFIG = """\
Port {port}
ListenAddress {host}
HostKey {dir}/host_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
MaxSessions 64
MaxStartups 64
LogLevel ERROR
"""


def keygen(path: Path) -> Path:
    """A new passphrase-less ed25519 key pair at ``path`` (+ ``.pub``)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class SshServer:
    """One running sshd and the client-side files that reach it."""

    dir: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=getpass.getuser)
    proc: subprocess.Popen | None = None
    netns: str | None = None  # run sshd inside this network namespace

    @property
    def client_key(self) -> Path:
        return self.dir / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def setup(self) -> SshServer:
        """Keys, authorized_keys, known_hosts and config."""
        self.dir.mkdir(parents=True, exist_ok=True)
        keygen(self.dir / "host_key")
        keygen(self.client_key)
        (self.dir / "authorized_keys").write_text((self.dir / "client_key.pub").read_text())
        host_pub = " ".join((self.dir / "host_key.pub").read_text().split()[:2])
        entry = self.host if self.port == 22 else f"[{self.host}]:{self.port}"  # OpenSSH's form
        self.known_hosts.write_text(f"{entry} {host_pub}\n")
        config = CONFIG.format(port=self.port, host=self.host, dir=self.dir)
        (self.dir / "sshd_config").write_text(config)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
        return self

    def start(self) -> SshServer:
        """Start sshd and wait until it accepts connections."""
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen(
            [*prefix, SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.proc.stderr.read().decode()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def stop(self) -> None:
        """Stop the listener (sessions already open are not affected)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def target_yaml(self, name: str = "remote", **extra: object) -> str:
        """A suite's target entry for this server."""
        fields = {
            "name": name,
            "kind": "ssh",
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "key": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            **extra,
        }
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in fields.items()) + "}"


def _yaml(value: object) -> str:
    import json

    return json.dumps(value) if isinstance(value, str | dict) else str(value)


@dataclass
class Netns:
    """A network namespace joined to this host by a veth pair: a separate host with its own
    address (10.231.N.2) for tests that need two machines. Only ever reached from this host."""

    name: str
    host_ip: str
    ns_ip: str

    @classmethod
    def create(cls) -> Netns | None:
        """A new namespace, or None where this machine cannot make one (not root, no iproute2)."""
        tag = uuid.uuid4().hex[:6]
        subnet = int(tag[:2], 16)
        ns = cls(f"bench-{tag}", f"10.231.{subnet}.1", f"10.231.{subnet}.2")
        veth, peer = f"bv{tag}a", f"bv{tag}b"
        steps = [
            ["ip", "netns", "add", ns.name],
            ["ip", "link", "add", veth, "type", "veth", "peer", "name", peer],
            ["ip", "link", "set", peer, "netns", ns.name],
            ["ip", "addr", "add", f"{ns.host_ip}/30", "dev", veth],
            ["ip", "link", "set", veth, "up"],
            ["ip", "netns", "exec", ns.name, "ip", "addr", "add", f"{ns.ns_ip}/30", "dev", peer],
            ["ip", "netns", "exec", ns.name, "ip", "link", "set", peer, "up"],
            ["ip", "netns", "exec", ns.name, "ip", "link", "set", "lo", "up"],
        ]
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, timeout=10, check=False)
            except (OSError, subprocess.TimeoutExpired):
                done = None
            if done is None or done.returncode != 0:
                ns.delete()
                return None
        return ns

    def delete(self) -> None:
        """Remove the namespace (its end of the veth pair, and so the pair, goes with it)."""
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
