"""The small registry that maps a suite's ``kind:`` to a config model and a target class.

Kept explicit (a dict filled by imports below) rather than a metaclass registry, so that
``bench targets`` and suite validation see exactly the kinds this build ships.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Discriminator, Tag

from bench.targets.base import Target, TargetConfig
from bench.targets.docker import DockerTarget, DockerTargetConfig
from bench.targets.local import LocalTarget, LocalTargetConfig
from bench.targets.ssh import SshTarget, SshTargetConfig
from bench.targets.vm import QemuVmConfig, QemuVmTarget
from bench.targets.vmstatic import StaticVmConfig, StaticVmTarget


def _provisioner(value: Any) -> str:
    """``provisioner:`` of a VM target; QEMU when the suite leaves it out."""
    if isinstance(value, dict):
        return str(value.get("provisioner", "qemu"))
    return str(getattr(value, "provisioner", "qemu"))


VmConfig = Annotated[
    Annotated[QemuVmConfig, Tag("qemu")] | Annotated[StaticVmConfig, Tag("static")],
    Discriminator(_provisioner),
]


def _vm_target(config: QemuVmConfig | StaticVmConfig) -> Target:
    if isinstance(config, QemuVmConfig):
        return QemuVmTarget(config)
    return StaticVmTarget(config)


@dataclass(frozen=True)
class Kind:
    """One target kind: its suite keys and its implementation."""

    name: str
    config: Any  # a TargetConfig subclass, or an annotated union of them
    target: Callable[[Any], Target]
    summary: str
    models: tuple[type[TargetConfig], ...] = ()


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
    "vm": Kind(
        "vm",
        VmConfig,
        _vm_target,
        "a virtual machine: a fresh QEMU guest per repetition (provisioner: qemu), or an "
        "existing VM over SSH with optional start/stop commands (provisioner: static)",
        (QemuVmConfig, StaticVmConfig),
    ),
}


def kinds() -> list[str]:
    """Target kinds available in this build, in display order."""
    return list(_KINDS)


def describe() -> list[Kind]:
    """Every kind with its summary and config models, for ``bench targets``."""
    return [
        kind
        if kind.models
        else Kind(kind.name, kind.config, kind.target, kind.summary, (kind.config,))
        for kind in _KINDS.values()
    ]


def config_model(kind: str) -> Any:
    """The pydantic model that validates a target of ``kind``."""
    return _KINDS[kind].config


def make_target(config: TargetConfig) -> Target:
    """Instantiate the target implementation for a validated config."""
    return _KINDS[config.kind].target(config)
