"""What a target kind declares: its suite keys, where its implementation lives, how its stored
artefacts read, and how ``bench gc`` finds what it leaves behind.

A kind module (``bench/targets/<kind>.py``) holds its config models and one ``Kind``; the
registry lists the kind modules. The implementation and the leftover collector are named as
``"module:attribute"`` paths (the way packaging entry points name an object) and imported
only when a target is made or ``bench gc`` runs: validating a suite or reading a stored run
never loads a kind's SDK (docker-py, paramiko).

The artefact readers take the ``artefacts`` a target's ``prepare`` returned, as stored in a
run's manifest; a subclass overrides those its kind records differently.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.leftovers import Collector
    from bench.targets.base import Target


def load(path: str) -> Any:
    """The object a ``"package.module:attribute"`` path names, importing its module now."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Kind:
    """One target kind.

    ``targets`` maps each config model to its implementation's path; ``config`` is what a
    suite's target of this kind validates against (the only model, unless a kind has several
    and says how to pick one, e.g. a discriminated union). ``collector`` names the class that
    finds this kind's leftovers for ``bench gc`` (none: the kind leaves nothing behind).
    """

    name: str
    summary: str
    targets: Mapping[type, str] = field(default_factory=dict)
    config: Any = None
    collector: str | None = None

    def __post_init__(self) -> None:
        if self.config is None and len(self.targets) == 1:
            object.__setattr__(self, "config", next(iter(self.targets)))

    @property
    def models(self) -> tuple[type, ...]:
        """The config models of this kind (one per implementation), for ``bench targets``."""
        return tuple(self.targets)

    def make(self, config: Any) -> Target:
        """The implementation for a validated config (its module is imported now)."""
        path = self.targets.get(type(config))
        if path is None:
            path = next(p for model, p in self.targets.items() if isinstance(config, model))
        return load(path)(config)

    def leftovers(self) -> Collector | None:
        """A fresh collector of this kind's leftovers for one ``bench gc`` pass."""
        return load(self.collector)() if self.collector else None

    def runtime(self, artefacts: Mapping[str, Any]) -> str:
        """What the target ran in, for a report's "runtime" row: its interpreter."""
        return str(artefacts.get("python") or self.name)

    def built(self, artefacts: Mapping[str, Any]) -> str:
        """``bench build``'s line for a target: what it will run."""
        return f"python {artefacts.get('python')}"

    def identity(self, artefacts: Mapping[str, Any]) -> dict[str, Any]:
        """The ids of built artefacts (a rebuilt image changes the software even when no
        version does): none for a kind that builds nothing."""
        return {}

    def accel(self, artefacts: Mapping[str, Any]) -> str | None:
        """The accelerator the target ran under (a comparability fact), when it has one."""
        return artefacts.get("accel")

    def repetitions(self, config: Any, artefacts: Mapping[str, Any]) -> int | None:
        """How many of the suite's repetitions a prepared target runs, when its preparation
        says fewer (a VM that fell back to software emulation); None: all of them."""
        return None

    def accel_label(self, artefacts: Mapping[str, Any]) -> str | None:
        """The accelerator as shown in the target's name (``vm [tcg]``), when it matters."""
        return artefacts.get("accel_label")

    def exposure(self, config: Any) -> list[str]:
        """Settings of a validated target that give its workload, or anyone on the network,
        power over a host: said in the run header and the report (``bench.exposure``)."""
        return []

    def accel_row(self, artefacts: Mapping[str, Any]) -> str:
        """A report's "accel" row: the label, else native (the worker ran on the host's CPU)."""
        return self.accel_label(artefacts) or "native"
