"""Running ``bench`` for a fault test, and the checks every fault test makes afterwards.

Each fault test asserts three things about the run it disturbed: bench exits with the
documented status and says what happened in one line on stderr (no traceback); every cell that
finished is still in ``cells.jsonl``/``samples.jsonl`` and ``bench.results.load()`` reads it;
nothing is left behind (``tests.faults.leftovers``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench.results import load, load_cells
from tests.conftest import REPO
from tests.faults.leftovers import Scope
from tests.sshd import SshServer

T = TypeVar("T")
TRAIN = {"name": "train", "kind": "train_step", "batch_size": 4, "steps": 3, "warmup_steps": 1}
LONG = {"name": "long", "kind": "train_step", "batch_size": 4, "steps": 10**6, "timeout_s": 300}


def ssh_target(server: SshServer, workdir: Path) -> dict[str, Any]:
    """A target on the test's sshd that works in ``workdir``."""
    return {
        "name": "remote",
        "kind": "ssh",
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "key": str(server.client_key),
        "known_hosts": str(server.known_hosts),
        "python": sys.executable,
        "workdir": str(workdir),
    }


def suite(
    scope: Scope, targets: list[dict[str, Any]], workloads: list[dict[str, Any]], **settings: Any
) -> Path:
    """A suite named ``fault``, one repetition unless ``settings`` say otherwise (JSON is YAML)."""
    path = scope.root / "suite.yaml"
    body = {"name": "fault", "repetitions": 1, **settings, "targets": targets}
    body["workloads"] = workloads
    path.write_text(json.dumps(body))
    return path


def command(scope: Scope, suite_path: Path, *args: str) -> list[str]:
    """``bench run`` of ``suite_path`` under the scope's run id, results in the scope."""
    results = str(scope.root / "results")
    run = ["run", str(suite_path), "--results-dir", results, "--run-id", scope.run_id]
    return [sys.executable, "-m", "bench.cli", *run, "--no-report", *args]


def start(scope: Scope, suite_path: Path, *args: str) -> subprocess.Popen[str]:
    """``bench run`` in the background, for a test that injects its fault meanwhile."""
    return subprocess.Popen(
        command(scope, suite_path, *args),
        cwd=REPO,
        env={**os.environ, **scope.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(scope: Scope, suite_path: Path, *args: str, timeout: float = 600):
    """``bench run`` to its end."""
    return subprocess.run(
        command(scope, suite_path, *args),
        cwd=REPO,
        env={**os.environ, **scope.env()},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a background run, killed if it hangs."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"bench did not end within {timeout} s: {stderr[-2000:]}") from None
    return proc.returncode, stdout, stderr


def wait_for(
    condition: Callable[[], T], proc: subprocess.Popen[str] | None, timeout: float, what: str
) -> T:
    """``condition()`` once it is true; the run (when given) must still be going meanwhile."""
    end = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"bench ended before {what}: {proc.communicate()}")
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def run_dir(scope: Scope) -> Path:
    return scope.root / "results" / "fault" / scope.run_id


def cells_written(scope: Scope) -> int:
    """How many cells the run has committed so far."""
    try:
        return len((run_dir(scope) / "cells.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def one_line(stderr: str, *expected: str) -> str:
    """The single stderr line that holds every ``expected`` text; there is no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if all(text in line for text in expected)]
    assert len(lines) == 1, f"expected one line with {expected} on stderr, got: {stderr[-3000:]}"
    return lines[0]


def cells_kept(scope: Scope, ok: list[str], failed: list[str] | None = None) -> None:
    """Exactly these cells (``workload@target``) are stored, and ``load()`` reads the samples
    of every finished one."""
    path = run_dir(scope)
    cells = load_cells(path)
    by_status = {
        status: sorted(f"{r.workload}@{r.target}" for r in rows.itertuples())
        for status, rows in cells.groupby("status")
    }
    assert by_status.get("ok", []) == sorted(ok), cells
    assert by_status.get("failed", []) == sorted(failed or []), cells
    samples = load(path)
    assert set(samples["cell"]) == set(cells.loc[cells.status == "ok", "cell"])
    assert (samples.groupby("cell")["metric"].nunique() > 5).all()
