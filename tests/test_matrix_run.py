"""One real ``bench run`` of a 2 x 2 matrix (a local target swept over its env, a command
workload swept over its argv): what it runs, in which order, what it stores, and how the
report, the header, ``results.swept`` and ``bench compare`` group it."""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from bench import results
from bench.compare import compare_runs
from bench.estimate import header
from bench.plan import build_plan
from bench.report import regressions
from bench.suite import load_suite
from tests.conftest import bench_cli, run_suite

SUITE = """\
name: swept
repetitions: 2
targets:
  - name: box
    kind: local
    baseline: {env: {A: "1"}}
    matrix: {env: [{A: "1"}, {A: "2"}]}
workloads:
  - name: c
    kind: command
    matrix:
      argv:
        - [sh, -c, 'echo "{\\"bench_metric\\": \\"a\\", \\"value\\": $A}"']
        - [sh, -c, 'sleep 0.05; echo "{\\"bench_metric\\": \\"a\\", \\"value\\": $A}"']
"""
ONE, TWO = "box[env=A:1]", "box[env=A:2]"
FAST = "c[argv=sh+-c+echo_bench_metric_:_a_value_:_A]"
SLOW = "c[argv=sh+-c+sleep_0.05_echo_bench_metric_:_a_value_:_A]"


@dataclass
class Run:
    root: Path
    proc: subprocess.CompletedProcess[str]

    @property
    def path(self) -> Path:
        assert self.proc.returncode == 0, self.proc.stderr
        return Path(self.proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("matrix")
    return Run(root, run_suite(root, SUITE))


def test_the_header_counts_the_expanded_cells(run: Run) -> None:
    assert run.proc.stderr.splitlines()[0] == (
        "8 cells (2 targets x 2 workloads x 2 repetitions), no earlier run to estimate from"
    )
    suite = load_suite(run.root / "suite.yaml")
    again = header(suite, build_plan(suite), run.root / "results")
    assert again.startswith("8 cells (2 targets x 2 workloads x 2 repetitions), about ")
    assert again.endswith(" s from earlier runs")


def test_every_combination_runs_interleaved_with_its_values(run: Run) -> None:
    cells = results.load_cells(run.path).sort_values("cell")
    order = list(zip(cells["target"], cells["workload"], strict=True))
    assert order == [
        (ONE, FAST), (TWO, FAST), (ONE, SLOW), (TWO, SLOW),  # repetition 1
        (TWO, FAST), (ONE, FAST), (TWO, SLOW), (ONE, SLOW),  # repetition 2: rotated
    ]  # fmt: skip
    assert set(cells["status"]) == {"ok"}
    samples = results.load(run.path)
    values = samples[samples["metric"] == "user.a"].groupby("target")["value"].unique()
    assert [list(values[ONE]), list(values[TWO])] == [[1.0], [2.0]]  # each env reached it
    wall = samples[samples["metric"] == "command.wall_s"].groupby("workload")["value"].median()
    assert wall[SLOW] > wall[FAST] + 0.04


def test_the_manifest_records_each_combinations_base_and_values(run: Run) -> None:
    manifest = results.read_manifest(run.path)
    assert manifest.baseline == ONE
    assert manifest.matrix.targets[TWO].base == "box"
    assert manifest.matrix.targets[TWO].values == {"env": {"A": "2"}}
    assert manifest.matrix.workloads[SLOW].values["argv"][2].startswith("sleep 0.05;")
    frame = results.swept(run.path)
    assert list(frame.columns) == ["target", "base", "env"]
    assert frame.to_dict("records") == [
        {"target": ONE, "base": "box", "env": {"A": "1"}},
        {"target": TWO, "base": "box", "env": {"A": "2"}},
    ]
    assert list(results.swept(run.path, of="workloads")["workload"]) == [FAST, SLOW]
    assert "base" not in results.load(run.path).columns  # load() keeps its columns


def test_the_report_has_a_table_and_a_figure_per_matrix_group(run: Run) -> None:
    report = (run.path / "report.md").read_text()
    section = report.split(f"### Matrix: target box by env, workload {SLOW}")[1]
    table = section.split("###")[0]
    assert "| env | startup.total_s | startup.total_s vs box[env=A:1] |" in table
    assert "| A:1 |" in table and "| A:2 |" in table
    assert "### Matrix: workload c by argv, target box[env=A:2]" in report
    html = (run.path / "report.html").read_text()
    assert f'alt="Matrix: target box by env, workload {FAST}"' in html
    assert 'alt="Matrix: workload c by argv, target box[env=A:1]"' in html
    assert f"target box by env, workload {FAST}" in run.proc.stdout  # the terminal summary


def test_compare_groups_the_expanded_targets_under_their_base(run: Run) -> None:
    found = compare_runs(run.path, run.path)
    console = Console(file=io.StringIO(), width=300, color_system=None)
    regressions.print_comparison(console, found)
    table = console.file.getvalue()  # type: ignore[attr-defined]
    assert "box: matrix over env" in table and f"{ONE} " in table
    markdown = regressions.markdown(found)
    assert "| **box: matrix over env** |" in markdown
    assert f"| {TWO} | {SLOW} | command.wall_s ↓ |" in markdown
    cli = bench_cli("compare", str(run.path), str(run.path), "--format", "json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["matrix"]["targets"][TWO] == {
        "base": "box",
        "values": {"env": {"A": "2"}},
    }
