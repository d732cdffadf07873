"""What a Docker target's settings expose: the host's network stack (``network: host``), the
host's filesystem or a daemon's socket (volumes), or the engine itself (``tcp://`` without
TLS). ``bench.exposure`` says these loudly; nothing here refuses them."""

from __future__ import annotations

import posixpath
from urllib.parse import urlparse

from bench.dockerhost import resolve_url
from bench.targets.base import TargetConfig

# Host paths whose mount gives a container control over (or secrets of) the host: a volume
# of one of them, of something inside one, or of a directory holding one is reported.
SENSITIVE = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/lib/docker",
    "/var/run",
)
PLAIN_SCHEMES = ("tcp", "http")


def warnings(config: TargetConfig) -> list[str]:
    """What a Docker target's network, volumes and engine address expose."""
    label = f"target {config.name!r}"
    out = []
    if getattr(config, "network", None) == "host":
        out.append(
            f"{label}: network: host: the container shares the host's network stack "
            "(it reaches every local service and can bind any port)"
        )
    for volume in getattr(config, "volumes", []):
        exposed = mounted(volume.split(":", 1)[0])
        if exposed:
            out.append(f"{label}: volume {volume}: mounts {exposed} into the container")
    engine = engine_warning(resolve_url(getattr(config, "docker_host", None)), config)
    if engine:
        out.append(f"{label}: {engine}")
    return out


def mounted(source: str) -> str | None:
    """What a volume's host path exposes, or None for a harmless path or a named volume."""
    if not source.startswith("/"):
        return None  # a named volume: the engine's own storage
    path = "/" + posixpath.normpath(source).lstrip("/")
    if path == "/":
        return "the host's whole filesystem"
    if path.endswith(".sock"):
        return "a daemon's control socket (a Docker socket is root on the host)"
    for sensitive in SENSITIVE:
        if path == sensitive or path.startswith(sensitive + "/"):
            return f"the host's {sensitive}"
        if sensitive.startswith(path + "/"):
            return f"the host's {sensitive} (inside {path})"
    return None


def engine_warning(url: str, config: TargetConfig) -> str | None:
    """A plain-TCP engine (no TLS, or TLS that trusts any certificate)."""
    if urlparse(url).scheme not in PLAIN_SCHEMES:
        return None
    tls = getattr(config, "tls", None)
    if tls is None:
        return (
            f"Docker engine {url} without TLS: anyone who can reach that port controls the "
            "engine, which is root on its host (set tls: with ca, cert and key, or use ssh://)"
        )
    if not tls.verify:
        return (
            f"Docker engine {url} with tls.verify: false: the engine's certificate is not "
            "checked, so anyone on the path can stand in for it"
        )
    return None
