"""Opening SSH sessions with paramiko, and translating its failures into one-line errors.

Host keys are verified by default against ``known_hosts`` (never paramiko's AutoAddPolicy);
``accept-new`` trusts a host on first use and records its key in a file the harness owns, like
OpenSSH's ``StrictHostKeyChecking=accept-new``. Only failures to *connect* are retried: an
authentication or host-key failure will not get better by trying again.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from bench.errors import TargetError
from bench.state import state_dir

# paramiko logs every failed handshake with a traceback from its transport thread; failures
# reach the user as one-line TargetErrors instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:…`` fingerprint of a public key."""
    raw = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(raw).decode().rstrip("=")


def harness_known_hosts() -> Path:
    """The known_hosts file that ``host_key: accept-new`` records keys in."""
    return state_dir() / "known_hosts"


class AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Trust an unknown host once and record its key; a *changed* key is still refused."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey):
        """Record the key in a file only the harness's user can read or change (created 0600 in
        a 0700 directory, never through a symbolic link), then trust it for this session."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise TargetError(
                f"cannot record the host key of {hostname} in {self.path}: {exc.strerror}"
            ) from None
        with os.fdopen(fd, "a") as handle:
            handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


class StrictPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse an unknown host, saying which key it offered and how to trust it."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey):
        raise TargetError(
            f"host key of {hostname} ({key.get_name()} {fingerprint(key)}) is not in "
            f"{self.known_hosts}",
            hint="add it with ssh-keyscan, or set host_key: accept-new to trust it on first use",
        )


@dataclass(frozen=True)
class Endpoint:
    """Everything needed to open a session to one host."""

    host: str
    port: int
    user: str
    key: str | None
    password: str | None
    known_hosts: Path
    host_key: str  # "strict" | "accept-new"
    timeout_s: float
    retries: int

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def _client(endpoint: Endpoint) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    if endpoint.known_hosts.exists():
        client.load_host_keys(str(endpoint.known_hosts))
    if endpoint.host_key == "accept-new":
        own = harness_known_hosts()
        if own.exists():
            client.get_host_keys().load(str(own))
        client.set_missing_host_key_policy(AcceptNewPolicy(own))
    else:
        client.set_missing_host_key_policy(StrictPolicy(endpoint.known_hosts))
    return client


def _connect_once(endpoint: Endpoint) -> paramiko.SSHClient:
    client = _client(endpoint)
    try:
        client.connect(
            endpoint.host,
            port=endpoint.port,
            username=endpoint.user,
            key_filename=os.path.expanduser(endpoint.key) if endpoint.key else None,
            password=endpoint.password,
            look_for_keys=endpoint.key is None and endpoint.password is None,
            allow_agent=endpoint.key is None and endpoint.password is None,
            timeout=endpoint.timeout_s,
            banner_timeout=endpoint.timeout_s,
            auth_timeout=endpoint.timeout_s,
        )
    except BaseException:
        client.close()
        raise
    return client


class Unreachable(TargetError):
    """A failure to reach the host, worth another attempt (a host still booting looks so)."""


def connect_once(endpoint: Endpoint) -> paramiko.SSHClient:
    """One attempt; ``Unreachable`` when the host did not answer, ``TargetError`` otherwise."""
    return _translate(endpoint, _connect_once)


def connect(endpoint: Endpoint, sleep: Callable[[float], None] = time.sleep) -> paramiko.SSHClient:
    """An open, verified, authenticated session; retries only connection failures."""
    for attempt in range(endpoint.retries + 1):
        try:
            return connect_once(endpoint)
        except Unreachable as exc:
            if attempt == endpoint.retries:
                raise TargetError(exc.message, hint=exc.hint) from None
            sleep(min(2.0**attempt, 5.0))
    raise AssertionError("unreachable")


def _translate(
    endpoint: Endpoint, open_session: Callable[[Endpoint], paramiko.SSHClient]
) -> paramiko.SSHClient:
    """Run ``open_session`` and turn every paramiko/socket failure into a ``TargetError``."""
    where = endpoint.label
    try:
        return open_session(endpoint)
    except TargetError:
        raise
    except paramiko.BadHostKeyException as exc:
        raise TargetError(
            f"{where}: HOST KEY MISMATCH: server offered {exc.key.get_name()} "
            f"{fingerprint(exc.key)}, known_hosts expects {fingerprint(exc.expected_key)}",
            hint="if the host was reinstalled, remove its old line from known_hosts",
        ) from None
    except paramiko.AuthenticationException as exc:
        how = f"key {endpoint.key}" if endpoint.key else "agent/default keys or password"
        raise TargetError(f"{where}: authentication failed with {how}: {exc}") from None
    except TimeoutError:
        raise Unreachable(
            f"{where}: host unreachable (no answer within {endpoint.timeout_s:g} s)"
        ) from None
    except paramiko.ssh_exception.NoValidConnectionsError as exc:
        raise Unreachable(
            f"{where}: connection refused ({_first(exc)})",
            hint="is sshd running and listening on that port?",
        ) from None
    except ConnectionRefusedError:
        raise Unreachable(
            f"{where}: connection refused", hint="is sshd running and listening on that port?"
        ) from None
    except socket.gaierror as exc:
        raise TargetError(f"{where}: cannot resolve host name: {exc.strerror}") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise Unreachable(f"{where}: SSH connection failed: {exc or type(exc).__name__}") from None


def _first(exc: paramiko.ssh_exception.NoValidConnectionsError) -> str:
    errors = list(exc.errors.values())
    return errors[0].strerror if errors and getattr(errors[0], "strerror", None) else str(exc)
