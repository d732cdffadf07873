"""``bench gc`` for ``kind: slurm``: jobs a killed run left queued or running.

Every job bench submits is named ``bench-<run id>`` and commented with its invocation's owner
token; a job whose owner is gone is cancelled. The clusters searched are those dead runs
recorded (their ``conf``), and the default one when its commands answer.
"""

from __future__ import annotations

import os
from typing import Any

from bench.errors import TargetError
from bench.leftovers import WORKERS, Sweep
from bench.targets.slurmcli import Slurm

HEADING = "Slurm job(s)"
PREFIX = "bench-owner="


class Jobs:
    """Orphaned jobs, each cluster listed once per pass."""

    stage = WORKERS
    headings = (HEADING,)
    records = ("slurm_cluster",)

    def __init__(self) -> None:
        self.checked: set[str] = set()

    def recorded(self, item: dict[str, Any], sweep: Sweep) -> bool:
        """The orphaned jobs of a cluster a dead run used; a cluster whose configuration file
        is gone (a test cluster, removed) has nothing left to cancel."""
        conf = item.get("conf")
        if isinstance(conf, str) and not os.path.exists(conf):
            return True
        return self._cluster(conf if isinstance(conf, str) else None, sweep, required=True)

    def unrecorded(self, sweep: Sweep) -> None:
        self._cluster(None, sweep, required=False)

    def _cluster(self, conf: str | None, sweep: Sweep, required: bool) -> bool:
        key = conf or ""
        if key in self.checked:
            return True
        self.checked.add(key)
        slurm = Slurm(conf, f"Slurm cluster {conf or '(default)'}")
        try:
            listed = slurm.run(["squeue", "-h", "-o", "%i|%j|%k"], "list jobs")
        except TargetError as exc:
            if required:
                sweep.report.problems.append(exc.one_line())
            return False
        ok = True
        for line in listed.splitlines():
            job_id, name, comment = [*line.split("|", 2), "", ""][:3]
            if not name.startswith("bench-") or not comment.startswith(PREFIX):
                continue
            token = comment.removeprefix(PREFIX)
            if sweep.spares(token):
                continue
            ok &= sweep.take(HEADING, lambda j=job_id, n=name: _cancel(slurm, j, n, sweep))
        return ok


def _cancel(slurm: Slurm, job_id: str, name: str, sweep: Sweep) -> str:
    if not sweep.dry_run:
        slurm.cancel([job_id])
    return f"job {job_id} ({name})"
