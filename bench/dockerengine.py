"""Connecting to a Docker engine and translating docker-py's exceptions at the boundary.

Used by the Docker target, ``bench gc`` and the image builder alike (which engine to reach is
``bench.dockerhost``'s).

Every call into docker-py goes through ``translated`` so that a user sees one line saying what
failed and where (and how to fix it when the fix is known), never a requests traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from bench.dockerhost import DockerTls, is_local, resolve_url
from bench.errors import BenchError, TargetError

CONTROL_TIMEOUT_S = 120
START_HINT = (
    "start the engine (systemctl start docker, or dockerd &), or point docker_host: at a "
    "running one"
)


@dataclass
class Engine:
    """Two clients of one engine: ``control`` with a timeout for API calls, ``stream`` without
    one for attach streams (a worker may legitimately print nothing for minutes)."""

    url: str
    control: docker.DockerClient
    stream: docker.DockerClient

    @property
    def local(self) -> bool:
        """Whether the engine runs on this host (host-side probes can read its /proc)."""
        return is_local(self.url)

    def close(self) -> None:
        """Close both clients' connection pools."""
        self.control.close()
        self.stream.close()


def _tls(tls: DockerTls | None) -> docker.tls.TLSConfig | bool:
    if tls is None:
        return False
    expand = lambda p: str(Path(p).expanduser()) if p else None  # noqa: E731
    cert = (expand(tls.cert), expand(tls.key)) if tls.cert and tls.key else None
    return docker.tls.TLSConfig(client_cert=cert, ca_cert=expand(tls.ca), verify=tls.verify)


def connect(docker_host: str | None = None, tls: DockerTls | None = None) -> Engine:
    """Clients of the engine at ``docker_host``; an unreachable engine is one clear error."""
    url = resolve_url(docker_host)
    with translated(f"cannot reach the Docker engine at {url}", hint=START_HINT):
        control = docker.DockerClient(
            base_url=url, tls=_tls(tls), version="auto", timeout=CONTROL_TIMEOUT_S
        )
        version = control.api.api_version
        stream = docker.DockerClient(base_url=url, tls=_tls(tls), version=version, timeout=None)
    return Engine(url, control, stream)


def _explain(exc: Exception) -> str:
    if isinstance(exc, docker.errors.APIError):
        text = exc.explanation or str(exc)
        return text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "No such file or directory" in text:
        return "connection refused (is the engine running?)"
    return text


@contextmanager
def translated(
    what: str, error: type[BenchError] = TargetError, hint: str | None = None
) -> Iterator[None]:
    """Turn docker-py and requests exceptions raised inside into ``error`` saying ``what``."""
    try:
        yield
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise error(f"{what}: {_explain(exc)}", hint=hint) from None
