"""The small registry that maps a suite's ``kind:`` to a config model and a target class.

Kept explicit (a dict filled by imports below) rather than a metaclass registry, so that
``bench targets`` and suite validation see exactly the kinds this build ships.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.targets.base import Target, TargetConfig
from bench.targets.docker import DockerTarget, DockerTargetConfig
from bench.targets.local import LocalTarget, LocalTargetConfig
from bench.targets.ssh import SshTarget, SshTargetConfig


@dataclass(frozen=True)
class Kind:
    """One target kind: its suite keys and its implementation."""

    name: str
    config: type[TargetConfig]
    target: type
    summary: str


_KINDS: dict[str, Kind] = {
    "local": Kind(
        "local",
        LocalTargetConfig,
        LocalTarget,
        "bare metal on this host: the worker runs as a subprocess of a chosen interpreter",
    ),
    "ssh": Kind(
        "ssh",
        SshTargetConfig,
        SshTarget,
        "a remote host over SSH (paramiko): the worker is uploaded per run and removed after",
    ),
    "docker": Kind(
        "docker",
        DockerTargetConfig,
        DockerTarget,
        "a fresh container per repetition through the Docker Engine API, with resource limits",
    ),
}


def kinds() -> list[str]:
    """Target kinds available in this build, in display order."""
    return list(_KINDS)


def describe() -> list[Kind]:
    """Every kind with its summary, for ``bench targets``."""
    return list(_KINDS.values())


def config_model(kind: str) -> type[TargetConfig]:
    """The pydantic model that validates a target of ``kind``."""
    return _KINDS[kind].config


def make_target(config: TargetConfig) -> Target:
    """Instantiate the target implementation for a validated config."""
    return _KINDS[config.kind].target(config)
