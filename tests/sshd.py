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
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {host_pub}\n")
        config = CONFIG.format(port=self.port, host=self.host, dir=self.dir)
        (self.dir / "sshd_config").write_text(config)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
        return self

    def start(self) -> SshServer:
        """Start sshd and wait until it accepts connections."""
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
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
