"""Shared fixtures: suite files written to a temp dir and the real ``bench`` CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from bench import results
from tests.sshd import SshServer

REPO = Path(__file__).resolve().parent.parent

# A shell that starts a background job without job control (``./bootstrap.sh test &`` in a
# script, a CI runner's detached step) makes it ignore SIGINT, and an ignored signal stays
# ignored across exec: every ``bench`` the tests start would then ignore the Ctrl-C they send
# it. Python installs its own handler only where SIGINT is not ignored, so restore that here;
# a handler (unlike SIG_IGN) resets to the default in the children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def write_suite(tmp_path: Path):
    """Write YAML text (dedented) to a suite file and return its path."""

    def write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return write


def bench_cli(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run the real ``bench`` console entry point in a subprocess (``env``: extra variables)."""
    env = {**os.environ, "COLUMNS": "200", **(kwargs.pop("env", None) or {})}
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=kwargs.pop("cwd", REPO),
        timeout=kwargs.pop("timeout", 600),
        check=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[SshServer]:
    """A private OpenSSH server on a loopback port, for a module's SSH and static-VM tests."""
    srv = SshServer(tmp_path_factory.mktemp("sshd")).setup().start()
    yield srv
    srv.stop()


@pytest.fixture
def remote_dir(tmp_path: Path) -> Path:
    """The remote workdir (same machine, so tests can inspect what the harness left)."""
    path = tmp_path / "remote"
    path.mkdir()
    return path


def run_suite(root: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``bench run`` of the suite ``text``, stored under ``root/results``."""
    suite = root / "suite.yaml"
    suite.write_text(text)
    return bench_cli("run", str(suite), "--results-dir", str(root / "results"), *args)


MATRIX = REPO / "tests" / "matrix"
MATRIX_TARGETS = {
    "local": ["{name: bare, kind: local}"],
    "docker": ["{name: ctr, kind: docker, build: true}"],
    "vm": [  # a guest beside the matched venv it is compared with (tests/test_vm.py)
        "{name: bare, kind: local, baseline: true, build: true}",
        "{name: vm, kind: vm, vcpus: 2, memory: 1g, accel: auto}",
    ],
}
UNDER_TEST = {"local": "bare", "docker": "ctr", "ssh": "remote", "vm": "vm"}
"""The target of each matrix run whose cells the tests read."""


@dataclass
class MatrixRun:
    """One ``bench run`` of every workload fragment in ``tests/matrix`` on one target kind."""

    proc: subprocess.CompletedProcess[str]
    run_dir: Path | None
    target: str  # the target under test (a vm run also has the bare-metal baseline)

    @property
    def cells(self) -> pd.DataFrame:
        assert self.run_dir is not None, self.proc.stderr
        return results.load_cells(self.run_dir)

    @property
    def samples(self) -> pd.DataFrame:
        assert self.run_dir is not None, self.proc.stderr
        return results.load(self.run_dir)

    def cell(self, workload: str) -> dict[str, Any]:
        """The target's cell of ``workload`` as a dict (the matrix runs one repetition)."""
        cells = self.cells
        rows = cells[(cells["workload"] == workload) & (cells["target"] == self.target)]
        assert len(rows) == 1, (workload, self.proc.stdout, self.proc.stderr)
        return rows.iloc[0].to_dict()

    def metrics(self, workload: str) -> dict[str, float]:
        """Metric name to value for the target's cell of ``workload``."""
        return self._column(workload, "value")

    def units(self, workload: str) -> dict[str, str]:
        """Metric name to stored unit for the target's cell of ``workload``."""
        return self._column(workload, "unit")

    def _column(self, workload: str, column: str) -> dict[str, Any]:
        samples = self.samples
        rows = samples[(samples["workload"] == workload) & (samples["target"] == self.target)]
        return dict(zip(rows["metric"], rows[column], strict=True))

    def raw(self, workload: str) -> dict[str, Any]:
        """The raw file of ``workload``'s cell."""
        assert self.run_dir is not None
        cell = self.cell(workload)
        slug = f"{cell['cell']:04d}-{cell['target']}-{workload}-r{cell['repetition']}"
        return results.load_raw(self.run_dir)[slug]


def matrix_suite(kind: str, targets: list[str]) -> str:
    """A suite of ``targets`` and the workloads of every fragment in ``tests/matrix`` (or of
    those ``BENCH_MATRIX_PARTS`` names, comma-separated), ``{repo}`` replaced in each. A
    workload's ``matrix_kinds`` (a list) limits it to those target kinds: a QEMU guest under
    emulation takes a minute a cell, so it runs only what no other kind can show."""
    wanted = [p for p in os.environ.get("BENCH_MATRIX_PARTS", "").split(",") if p]
    parts = sorted(MATRIX.glob("*.yaml"))
    if wanted:
        parts = [p for p in parts if p.stem in wanted]
    workloads: list[Any] = []
    for part in parts:
        text = part.read_text().replace("{repo}", str(REPO))
        for workload in yaml.safe_load(text) or []:
            if kind in workload.pop("matrix_kinds", [kind]):
                workloads.append(workload)
    suite = {"name": "matrix", "repetitions": 1, "targets": [yaml.safe_load(t) for t in targets]}
    return yaml.safe_dump({**suite, "workloads": workloads}, sort_keys=False)


@pytest.fixture(scope="session")
def matrix_server(tmp_path_factory) -> Iterator[SshServer]:
    """The SSH host of the matrix's ssh run (one per test session)."""
    srv = SshServer(tmp_path_factory.mktemp("matrix-sshd")).setup().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def matrix_runs(tmp_path_factory) -> dict[str, MatrixRun]:
    """Runs of the matrix suite already made in this session, by target kind."""
    return {}


@pytest.fixture
def matrix_run(request, matrix_runs, tmp_path_factory) -> Callable[[str], MatrixRun]:
    """``matrix_run(kind)``: the matrix suite run once per session on a target of ``kind``
    (local, docker, ssh or vm), so every test of the new workload kinds on that target reads
    the same run instead of paying for a deployment of its own."""

    def run(kind: str) -> MatrixRun:
        if kind not in matrix_runs:
            root = tmp_path_factory.mktemp(f"matrix-{kind}")
            if kind == "ssh":
                server = request.getfixturevalue("matrix_server")
                workdir = root / "remote"
                workdir.mkdir()
                targets = [server.target_yaml(python=sys.executable, workdir=str(workdir))]
            else:
                targets = MATRIX_TARGETS[kind]
            suite = root / "suite.yaml"
            suite.write_text(matrix_suite(kind, targets))
            proc = bench_cli(
                "run", str(suite), "--results-dir", str(root / "results"), timeout=1800
            )
            last = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
            found = Path(last[0]) if last and Path(last[0]).is_dir() else None
            matrix_runs[kind] = MatrixRun(proc, found, UNDER_TEST[kind])
        return matrix_runs[kind]

    return run
