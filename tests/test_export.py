"""``bench export``: a run's tidy samples as CSV, Parquet or JSON Lines, each reading back
through pandas into the frame ``bench.results.load()`` gives."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from bench.results import load
from tests.conftest import bench_cli
from tests.test_run_e2e import run_dir_of

SUITE = """\
name: exported
repetitions: 2
targets:
  - {name: bare, kind: local}
workloads:
  - name: cmd
    kind: command
    argv: [sh, -c, "echo '{\\"bench_metric\\": \\"answer\\", \\"value\\": 0.1234567890123}'"]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    (root / "suite.yaml").write_text(SUITE)
    done = bench_cli(
        "run", str(root / "suite.yaml"), "--results-dir", str(root / "r"), "--no-report"
    )
    assert done.returncode == 0, done.stderr
    return run_dir_of(done)


def _same(read: pd.DataFrame, run: Path) -> None:
    pd.testing.assert_frame_equal(read, load(run), check_dtype=False)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_each_format_reads_back_as_the_loaded_frame(run: Path, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"samples.{fmt}"
    done = bench_cli("export", str(run), "--format", fmt, "-o", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(path)
    # keep_default_na=False: a metric without a unit has an empty one, not a missing one
    reader = {
        "csv": lambda p: pd.read_csv(p, keep_default_na=False),
        "parquet": pd.read_parquet,
    }.get(fmt)
    read = reader(path) if reader else pd.read_json(path, lines=True, dtype=False)
    _same(read.astype({"run_id": str}), run)


def test_text_formats_go_to_standard_output(run: Path) -> None:
    done = bench_cli("export", str(run))
    assert done.returncode == 0, done.stderr
    _same(pd.read_csv(io.StringIO(done.stdout), keep_default_na=False), run)
    assert 0.1234567890123 in set(load(run)["value"])


def test_parquet_needs_a_file_and_a_format_must_exist(run: Path) -> None:
    done = bench_cli("export", str(run), "--format", "parquet")
    assert done.returncode == 2
    assert (
        done.stderr.strip() == "error: --format parquet writes a binary file: give one with -o FILE"
    )
    assert bench_cli("export", str(run), "--format", "xlsx").returncode == 2


def test_parquet_without_pyarrow_says_how_to_get_it(run: Path, tmp_path: Path) -> None:
    from tests.test_promtext import without_pyarrow

    out = tmp_path / "samples.parquet"
    done = without_pyarrow(
        "from bench.cli import entry\nentry()\n", "export", str(run), "--format", "parquet",
        "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--format parquet needs pyarrow, which is not installed" in done.stderr
    assert "pip install 'isolation-bench[parquet]'" in done.stderr and not out.exists()
    assert without_pyarrow("from bench.cli import entry\nentry()\n", "export", str(run)).stdout
