"""Two runs at once, of different suites, sharing one Docker engine and one SSH host.

The runs are given the same run id (what two suites started in the same second got by default
before run ids had a random suffix). The first run's container is frozen mid-cell while the
second run starts, runs and cleans up; then it resumes. Each run must remove only its own
containers and remote files: the first run's cells all succeed and nothing is left after both.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from contextlib import suppress
from pathlib import Path

import docker.errors
import pytest

from bench.metadata import new_run_id
from bench.results import load, load_cells
from tests.conftest import REPO, bench_cli
from tests.docker_engine import labelled
from tests.faults import runs
from tests.faults.test_kill_gc import cell_containers, engine, image, no_records, wait_for
from tests.sshd import SSHD

__all__ = ["engine", "image"]  # module fixtures shared with the kill tests

CMD = {"name": "cmd", "kind": "command", "argv": ["sleep", "2"]}
"""Long enough for the first run's container to be paused while its cell is in flight."""


def test_default_run_ids_of_two_suites_in_one_second_differ(tmp_path: Path) -> None:
    first, second = new_run_id(tmp_path / "a"), new_run_id(tmp_path / "b")
    assert first != second
    for run_id in (first, second):  # still sorted by time, then a random suffix
        assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", run_id), run_id


@pytest.mark.slow
@pytest.mark.fault
@pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server missing")
def test_two_runs_share_an_engine_and_a_host(
    server, remote_dir: Path, tmp_path: Path, engine, image
) -> None:
    env = {**os.environ, "BENCH_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    targets = [
        {"name": "ctr", "kind": "docker", "image": image, "python": "/opt/bench/venv/bin/python"},
        runs.ssh_target(server, remote_dir),
    ]
    run_id = f"c{uuid.uuid4().hex[:8]}"
    suites = {}
    for name in ("first", "second"):
        suites[name] = tmp_path / f"{name}.yaml"
        body = {"name": name, "repetitions": 1, "targets": targets, "workloads": [CMD]}
        suites[name].write_text(json.dumps(body))
    results = str(tmp_path / "r")
    args = ["run", str(suites["first"]), "--no-report", "--results-dir", results]
    args += ["--run-id", run_id]
    first = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    paused = None
    try:  # the first run's container cell is in flight (docker comes first in the plan)
        paused = engine.containers.get(wait_for(lambda: cell_containers(engine, run_id), first)[0])
        paused.pause()
        second = bench_cli(
            "run", str(suites["second"]), "--no-report", "--results-dir", results,
            "--run-id", run_id, env=env,
        )  # fmt: skip
        assert second.returncode == 0, second.stderr
        assert paused.id in labelled(engine, run_id), "the second run removed the first's"
        paused.unpause()
        paused = None
        _, stderr = first.communicate(timeout=300)
        assert first.returncode == 0, stderr
        for name in ("first", "second"):
            run_dir = Path(results) / name / run_id
            cells = load_cells(run_dir)
            assert list(cells["status"]) == ["ok", "ok"], cells["error"].tolist()
            assert set(load(run_dir)["target"]) == {"ctr", "remote"}
        assert not labelled(engine, run_id)
        assert list(remote_dir.iterdir()) == []
        assert no_records(env)
    finally:
        if paused is not None:
            with suppress(docker.errors.APIError):
                paused.unpause()
        if first.poll() is None:
            first.kill()
            first.communicate()
        for container in engine.containers.list(
            all=True, filters={"label": f"bench.run_id={run_id}"}
        ):
            with suppress(docker.errors.NotFound):
                container.remove(force=True)
