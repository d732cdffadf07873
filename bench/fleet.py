"""Fleet mode: a Slurm target with ``nodes: all`` (or a list of nodes) becomes one target per
node, each pinned to its node (``--nodelist``) and run as separate jobs, so that a nightly
suite covers the fleet and a slow node shows up as a target of its own.

The expanded targets are named as a matrix names its combinations (``gpu[node=n1]``) and are
recorded the same way (base name and ``node`` as the swept value), so reports group them, and
``bench.fleetcheck`` flags the node whose numbers fall outside the others'. ``nodes: all`` asks
the cluster (``sinfo``) when the run starts: the fleet is whatever the partition has then.
"""

from __future__ import annotations

from typing import Any

from bench import matrix
from bench.errors import SuiteError, TargetError
from bench.suite import Suite


def expand(suite: Suite) -> Suite:
    """``suite`` with every fleet target replaced by one target per node."""
    fleets = [t for t in suite.targets if getattr(t, "nodes", None) is not None]
    if not fleets:
        return suite
    swept = dict(suite.swept.get("targets", {}))
    targets: list[Any] = []
    for target in suite.targets:
        if getattr(target, "nodes", None) is None:
            targets.append(target)
            continue
        if target.baseline:
            raise SuiteError(
                f"target {target.name!r}: a fleet (nodes: {_show(target.nodes)}) is one target "
                "per node and cannot be the baseline; give the baseline a target of its own"
            )
        before = swept.pop(target.name, {"base": target.name, "values": {}})
        for node in _nodes(target):
            values = {**before["values"], "node": node}
            name = matrix.expanded_name(before["base"], values)
            targets.append(
                target.model_copy(update={"name": name, "nodes": None, "nodelist": node})
            )
            swept[name] = {"base": before["base"], "values": values}
    out = suite.model_copy(update={"targets": targets})
    out._swept = {**suite.swept, "targets": swept}
    return out


def _nodes(target: Any) -> list[str]:
    if isinstance(target.nodes, list):
        return list(dict.fromkeys(target.nodes))
    from bench.targets.slurmcli import Slurm

    found = Slurm(target.conf, f"target {target.name!r}").nodes(target.partition)
    if not found:
        where = f"partition {target.partition!r}" if target.partition else "the default partition"
        raise TargetError(f"target {target.name!r}: nodes: all: {where} has no nodes")
    return found


def _show(nodes: Any) -> str:
    return nodes if isinstance(nodes, str) else ", ".join(nodes)
