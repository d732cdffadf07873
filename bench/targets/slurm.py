"""``kind: slurm``: each cell submitted as a Slurm job through the cluster's own commands.

The suite keys and the kind's declaration. The implementation is ``bench.targets.slurmtarget``
(``srun`` per cell, its output streamed back as a local worker's is); ``bench gc`` cancels the
jobs of dead runs through ``bench.targets.slurmgc``. ``nodes: all`` or a list of nodes is
fleet mode: ``bench.fleet`` turns the target into one target per node before the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from bench.targets.base import TargetConfig
from bench.targets.envvars import EnvMap
from bench.targets.kind import Kind

NodeName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-\[\],]*$", max_length=200)]
# Slurm's time formats: minutes, minutes:seconds, hours:minutes:seconds, days-hours[:...]
TIME = r"^(\d+-)?\d+(:\d{1,2}){0,2}$"
Word = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:,=+\-/]+$", max_length=200)]


class SlurmTargetConfig(TargetConfig):
    """Suite keys of a Slurm target."""

    kind: Literal["slurm"]
    conf: str | None = None
    partition: Word | None = None
    nodes: Literal["all"] | Annotated[list[NodeName], Field(min_length=1)] | None = None
    node_count: Annotated[int, Field(ge=1, le=100_000)] | None = None
    nodelist: NodeName | None = None
    gres: Word | None = None
    time_limit: Annotated[str, Field(pattern=TIME)] | None = None
    account: Word | None = None
    qos: Word | None = None
    constraint: Annotated[str, Field(pattern=r"^[A-Za-z0-9_&|\[\]()*!,.\-]+$")] | None = None
    exclusive: bool = False
    container: str | None = None
    python: str = "python3"
    workdir: str = "/tmp"
    env: EnvMap = {}
    submit_timeout_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0

    @model_validator(mode="after")
    def _one_placement(self) -> SlurmTargetConfig:
        """A fleet (``nodes``) places one job per node itself: it takes no other placement."""
        if self.nodes is not None and (self.nodelist or self.node_count):
            raise ValueError(
                "nodes: (a fleet, one job per node) excludes nodelist: and node_count:"
            )
        return self


class SlurmKind(Kind):
    """A Slurm target's artefacts: the cluster and the interpreter on its nodes."""

    def runtime(self, artefacts: Mapping[str, Any]) -> str:
        cluster = artefacts.get("cluster") or "?"
        return f"slurm {cluster} ({artefacts.get('version') or '?'}), {artefacts.get('python')}"


KIND = SlurmKind(
    "slurm",
    "a Slurm job per repetition (srun), queue time included in start-up; nodes: all for fleets",
    {SlurmTargetConfig: "bench.targets.slurmtarget:SlurmTarget"},
    collector="bench.targets.slurmgc:Jobs",
)
