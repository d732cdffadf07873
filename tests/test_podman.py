"""Podman as a second engine, through its Docker-compatible API: a ``kind: docker`` target
pointed at ``podman system service`` runs cells, measures what the host spends (Podman's
``conmon`` in place of containerd's shim), records the engine, and removes its containers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from bench.build.config import BuildConfig
from bench.build.image import base_image
from bench.probes.container import locate, measure
from bench.results import load, load_manifest
from tests.conftest import bench_cli
from tests.podman_engine import URL, podman_engine
from tests.test_run_e2e import run_dir_of

pytestmark = pytest.mark.slow

METRIC = """echo '{"bench_metric": "answer", "value": 42}'"""


@pytest.fixture(scope="module")
def podman(tmp_path_factory) -> Iterator[docker.DockerClient]:
    with podman_engine(tmp_path_factory.mktemp("podman")) as client:
        yield client


@pytest.fixture(scope="module")
def base(podman: docker.DockerClient) -> str:
    """bench's offline Debian base, imported into Podman (it has the Python the worker needs);
    the import is tagged by the id Podman returns, as Podman ignores the tag it is given."""
    ref, _ = base_image(podman, BuildConfig(), lambda _: None)
    podman.images.get(ref)
    return ref


def test_a_podman_target_runs_measures_and_cleans_up(podman, base, tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"name: pod{uuid.uuid4().hex[:6]}\nrepetitions: 2\ntargets:\n"
        f"  - {{name: pod, kind: docker, docker_host: '{URL}', image: '{base}', pull: never,\n"
        "     python: python3, network: none}\n"
        f"workloads:\n  - {{name: cmd, kind: command, argv: [sh, -c, {json.dumps(METRIC)}]}}\n"
    )
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = run_dir_of(done)
    samples = load(run_dir)
    answers = samples[samples["metric"] == "user.answer"]["value"]
    assert list(answers) == [42, 42]
    overhead = samples[samples["metric"] == "mem.overhead_bytes"]["value"]
    assert len(overhead) == 2 and (overhead > 0).all()
    manifest = load_manifest(run_dir)
    fact = manifest["targets"]["pod"]["fingerprint"]["container"]
    assert fact["engine"]["name"] == "Podman Engine" and fact["engine"]["version"]
    default = podman.info()["DefaultRuntime"]
    assert fact["runtime"]["name"] == default and fact["runtime"]["version"]
    assert f"pod [{default}]" in (run_dir / "report.md").read_text()
    left = podman.containers.list(all=True, filters={"label": f"bench.run_id={manifest['run_id']}"})
    assert left == []


def test_conmon_is_counted_as_the_container_supervisor(podman, base) -> None:
    container = podman.containers.run(base, ["sleep", "30"], detach=True, network_mode="none")
    try:
        container.reload()
        location = locate(int(container.attrs["State"]["Pid"]))
        assert location.shim_pid is not None
        assert Path(f"/proc/{location.shim_pid}/comm").read_text().strip() == "conmon"
        sample = measure(location)
        assert sample.shim is not None and sample.shim > 0
        assert sample.total == sample.processes + sample.sandbox + sample.kernel + sample.shim
    finally:
        container.remove(force=True)
