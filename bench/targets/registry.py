"""The registry of target kinds: one line per kind module, in display order.

Kept explicit (a list of imports) rather than a metaclass registry, so that ``bench targets``
and suite validation see exactly the kinds this build ships. A kind module holds config models
and declarations only: importing the registry loads no kind's SDK (docker-py, paramiko).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.targets import docker, local, slurm, ssh, vm
from bench.targets.base import Target, TargetConfig
from bench.targets.kind import Kind

_KINDS: dict[str, Kind] = {
    k.name: k for k in (local.KIND, ssh.KIND, docker.KIND, vm.KIND, slurm.KIND)
}


class UnknownKind(Kind):
    """A kind this build does not ship (a run stored by a newer bench): its artefacts are read
    with every known kind's rules, so that no built artefact (and no rebuild) is missed."""

    def built(self, artefacts: Mapping[str, Any]) -> str:
        generic = super().built(artefacts)
        lines = (known.built(artefacts) for known in _KINDS.values())
        return next((line for line in lines if line != generic), generic)

    def identity(self, artefacts: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for known in _KINDS.values():
            out.update(known.identity(artefacts))
        return out


def kinds() -> list[str]:
    """Target kinds available in this build, in display order."""
    return list(_KINDS)


def kind(name: str) -> Kind:
    """The kind called ``name``; a generic one for a name this build does not know."""
    found = _KINDS.get(name)
    return found if found is not None else UnknownKind(name, "not shipped in this build")


def describe() -> list[Kind]:
    """Every kind with its summary and config models, for ``bench targets``."""
    return list(_KINDS.values())


def config_model(name: str) -> Any:
    """The pydantic model (or annotated union of models) that validates a target of ``name``."""
    return _KINDS[name].config


def make_target(config: TargetConfig) -> Target:
    """Instantiate the target implementation for a validated config (imported only now)."""
    return _KINDS[config.kind].make(config)
