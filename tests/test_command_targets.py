"""``kind: command`` on bare metal, in a container, over SSH and in a guest: the cells of
``tests/matrix/command.yaml`` in the session's one run per target kind."""

from __future__ import annotations

import pytest

from tests.test_command import alive_with

pytestmark = pytest.mark.slow

KINDS = ("local", "docker", "ssh", "vm")


def marked_processes() -> list[int]:
    """Live processes started with the matrix command's env (its leftover sleeper)."""
    return alive_with("cmd-matrix-leftover", "CMD_MATRIX_MARK")


@pytest.mark.parametrize("kind", ("local", "docker", "ssh"))  # a guest runs cmd-fail alone
def test_a_command_is_measured_like_any_workload(matrix_run, kind: str) -> None:
    run = matrix_run(kind)
    cell = run.cell("cmd-ok")
    assert cell["status"] == "ok", cell["error"]
    metrics = run.metrics("cmd-ok")
    assert metrics["user.answer"] == 42
    assert metrics["user.greeting_len"] == 5  # the workload's env reached the program
    assert 0.2 <= metrics["command.wall_s"] < 30
    for phase in ("provision", "ready", "first_step", "total"):
        assert metrics[f"startup.{phase}_s"] > 0
    assert metrics["mem.rss_peak_bytes"] > 1 << 20
    assert cell["absent"]["startup.import_s"] == "this kind runs without torch"
    command = cell["info"]["command"]
    assert command["exit_status"] == 0 and command["stderr_tail"] == "to-stderr"
    assert command["output_lines"] == 1 and command["metric_lines"] == 2
    assert command["leftover_processes"] == 1  # the background sleeper, ended by the worker
    assert run.raw("cmd-ok")["user.answer"] == [42.0]
    assert not [r for r in cell["reasons"] if "iterations" in r]


@pytest.mark.parametrize("kind", KINDS)
def test_a_failing_command_fails_its_cell_with_its_status_and_stderr(matrix_run, kind: str) -> None:
    run = matrix_run(kind)
    cell = run.cell("cmd-fail")
    assert cell["status"] == "failed" and cell["verdict"] == "INVALID"
    assert "CommandFailed: sh exited with status 7 after " in cell["error"]
    assert cell["error"].endswith("; stderr: cmd-fail-reason")
    assert cell["stderr_tail"].strip().endswith("cmd-fail-reason")  # no worker traceback after
    assert "Traceback" not in cell["stderr_tail"]
    assert run.proc.returncode == 1


@pytest.mark.parametrize("kind", ("local", "ssh"))  # processes of this host: visible here
def test_nothing_a_command_started_outlives_its_cell(matrix_run, kind: str) -> None:
    assert matrix_run(kind).cell("cmd-ok")["status"] == "ok"
    assert marked_processes() == []
