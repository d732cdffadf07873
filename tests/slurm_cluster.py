"""The local Slurm cluster the Slurm tests run against (``scripts/slurm-local``: munge,
slurmctld and two slurmd nodes in network namespaces of their own), started by the tests and
stopped after them."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "slurm-local"
NODES = ("n1", "n2")


@contextmanager
def local_cluster(directory: Path) -> Iterator[str]:
    """The cluster's slurm.conf, the cluster running; stopped after."""
    assert shutil.which("slurmctld"), "Slurm is not installed: run ./bootstrap.sh test"
    env = {**os.environ, "BENCH_SLURM_DIR": str(directory)}
    done = subprocess.run(
        [str(SCRIPT), "start"], capture_output=True, text=True, env=env, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        yield str(directory / "slurm.conf")
    finally:
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, env=env, timeout=120)


def slurm(conf: str, *argv: str) -> str:
    """A Slurm command against the cluster; its stdout."""
    done = subprocess.run(
        list(argv), capture_output=True, text=True, env={**os.environ, "SLURM_CONF": conf},
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def node_cpus(node: str) -> str:
    """The CPUs a node's jobs run on (``taskset -c`` list)."""
    return subprocess.run(
        [str(SCRIPT), "cpus", node], capture_output=True, text=True, check=True
    ).stdout.strip()


def oci_bundle(directory: Path, client: docker.DockerClient, image: str) -> Path:
    """An OCI bundle (rootfs and config.json) of ``image`` for ``srun --container``: no
    terminal, a writable root, this host's network and its /tmp (where the worker package is
    unpacked), and a marker file to tell the bundle's filesystem from the host's."""
    rootfs = directory / "rootfs"
    rootfs.mkdir(parents=True)
    container = client.containers.create(image, ["true"])
    try:
        stream = io.BytesIO(b"".join(container.export()))
    finally:
        container.remove(force=True)
    with tarfile.open(fileobj=stream) as tar:
        tar.extractall(rootfs, filter="fully_trusted")
    (rootfs / "bench-bundle-marker").write_text("in the bundle\n")
    subprocess.run(["runc", "spec", "--bundle", str(directory)], check=True)
    config = json.loads((directory / "config.json").read_text())
    config["process"]["terminal"] = False
    config["root"]["readonly"] = False
    config["mounts"].append(
        {"destination": "/tmp", "type": "bind", "source": "/tmp", "options": ["rbind", "rw"]}
    )
    spaces = config["linux"]["namespaces"]
    config["linux"]["namespaces"] = [n for n in spaces if n["type"] != "network"]
    (directory / "config.json").write_text(json.dumps(config))
    return directory
