"""Which Docker engine a target or ``bench gc`` talks to, and with which TLS settings.

Only names and settings: importing this loads no Docker SDK, so the suite schema (``tls:``) and
the exposure warnings (a ``tcp://`` engine without TLS) use it freely. Connecting is
``bench.dockerengine``'s job.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict

DEFAULT_HOST = "unix:///var/run/docker.sock"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


class DockerTls(BaseModel):
    """Client certificates for a ``tcp://`` engine protected with TLS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    verify: bool = True


def resolve_url(docker_host: str | None) -> str:
    """The engine address: the suite's ``docker_host``, else ``$DOCKER_HOST``, else the socket."""
    return docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def is_local(url: str) -> bool:
    """unix sockets and loopback TCP are this host; ``ssh://`` and other hosts are not."""
    parsed = urlparse(url)
    if parsed.scheme in ("unix", "npipe", ""):
        return True
    return parsed.scheme in ("tcp", "http", "https") and parsed.hostname in LOCAL_NAMES
