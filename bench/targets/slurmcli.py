"""The cluster's own commands (``sinfo``, ``scontrol``, ``squeue``, ``scancel``), run with
the target's ``SLURM_CONF`` and their failures translated into one line.

bench talks to Slurm through its command-line tools rather than ``slurmrestd``: every cluster
that runs jobs has them on its login nodes, with the user's own authentication (munge)
already set up, whereas the REST daemon is optional, often not deployed, and needs tokens
(JWT) configured by the cluster's administrators.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from bench.errors import TargetError
from bench.targets import envvars

TIMEOUT_S = 30.0
AUTH_HINT = (
    "start munged on this host (the cluster's munge key in /etc/munge/munge.key) and check "
    "that `sinfo` works here"
)


@dataclass(frozen=True)
class Slurm:
    """The commands of one cluster: ``conf`` is its slurm.conf (None: Slurm's own lookup)."""

    conf: str | None
    label: str

    def env(self) -> dict[str, str]:
        """The environment of a Slurm command, which srun hands on to the job: what a worker
        needs from bench's own (``envvars.inherited``: no webhook URL or cloud key reaches a
        workload), the user's Slurm client settings (``SLURM_*``), the cluster's configuration."""
        env = envvars.inherited()
        env.update({k: v for k, v in os.environ.items() if k.startswith("SLURM_")})
        if self.conf:
            env["SLURM_CONF"] = self.conf
        return env

    def run(self, argv: list[str], what: str, timeout: float = TIMEOUT_S) -> str:
        """A command's stdout; a failure is one TargetError saying ``what`` and Slurm's line."""
        if shutil.which(argv[0]) is None:
            raise TargetError(
                f"{self.label}: {argv[0]} not found: the Slurm client commands are not installed",
                hint="install slurm-client (Debian) or run bench on a login node of the cluster",
            )
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, env=self.env(), check=False
            )
        except subprocess.TimeoutExpired:
            raise TargetError(
                f"{self.label}: {what}: {argv[0]} did not answer in {timeout:g} s"
            ) from None
        if done.returncode != 0:
            raise explain(self.label, what, done.stderr)
        return done.stdout

    def version(self) -> str:
        return self.run(["sinfo", "--version"], "version").strip()

    def cluster(self) -> str:
        """The cluster's name (``scontrol show config``'s ClusterName)."""
        for line in self.run(["scontrol", "show", "config"], "configuration").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "ClusterName":
                return value.strip()
        return "?"

    def partitions(self) -> list[str]:
        return sorted(
            {p.rstrip("*") for p in self.run(["sinfo", "-h", "-o", "%P"], "partitions").split()}
        )

    def nodes(self, partition: str | None) -> list[str]:
        """The nodes of ``partition`` (the default one when None), one name each."""
        argv = ["sinfo", "-h", "-N", "-o", "%N"] + (["-p", partition] if partition else [])
        return sorted(set(self.run(argv, "nodes").split()))

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job``'s fields of one job (empty once Slurm forgot it)."""
        try:
            text = self.run(["scontrol", "show", "job", "-o", job_id], f"job {job_id}")
        except TargetError:
            return {}
        return _fields(text)

    def node(self, name: str) -> dict[str, str]:
        """``scontrol show node``'s fields of one node (empty when unknown)."""
        try:
            return _fields(self.run(["scontrol", "show", "node", "-o", name], f"node {name}"))
        except TargetError:
            return {}

    def cancel(self, job_ids: list[str]) -> None:
        if job_ids:
            self.run(["scancel", *job_ids], "cancel")


def _fields(text: str) -> dict[str, str]:
    """``Key=Value Key=Value`` of a one-line scontrol record (values without spaces)."""
    out = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


def explain(label: str, what: str, stderr: str) -> TargetError:
    """Slurm's own error line, with the fix for the failures users hit first."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    text = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
    lowered = stderr.lower()
    if "munge" in lowered or "authentication" in lowered or "credential" in lowered:
        return TargetError(f"{label}: {what}: Slurm refused authentication: {text}", hint=AUTH_HINT)
    if (
        "unable to contact slurm controller" in lowered
        or "could not establish a configuration" in lowered
    ):
        return TargetError(
            f"{label}: {what}: no Slurm controller answers: {text}",
            hint="start the cluster, or set the target's conf: to its slurm.conf",
        )
    return TargetError(f"{label}: {what}: {text or 'failed without a message'}")
