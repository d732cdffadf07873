"""Damaged files: a corrupt line in a run's ``cells.jsonl``, a corrupt line in a nightly
history's index, and the previous night's run directory deleted by hand.

A bad line in a run costs that line only: ``load()`` warns with the file and line and returns
the rest, and ``bench summary``/``bench report`` still work. A bad index stops ``bench
nightly`` before it runs anything: a night whose result could not be recorded would be lost.
A run directory deleted by hand is skipped: the night runs, says so in one line, and compares
with the newest earlier run still on disk."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench.nightly import history
from bench.results import load, load_cells
from tests.conftest import bench_cli
from tests.faults import runs
from tests.faults.leftovers import Scope, assert_nothing_left

pytestmark = [pytest.mark.fault, pytest.mark.slow]


COMMAND = {"name": "cmd", "kind": "command", "argv": ["sleep", "0.05"]}  # no torch start-up


def nightly(scope: Scope, suite: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return bench_cli("nightly", str(suite), "--history", str(root), env=scope.env())


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory) -> tuple[Path, Path]:
    """A history of two real nights of a two-cell suite, the second compared with the first:
    (suite file, history directory)."""
    base = tmp_path_factory.mktemp("history")
    scope = Scope(base)
    bare = {"name": "bare", "kind": "local"}
    suite = runs.suite(scope, [bare], [COMMAND], repetitions=2)
    for _ in range(2):
        done = nightly(scope, suite, base / "history")
        assert done.returncode == 0, done.stderr
    assert history.History(base / "history").entries()[1].compared_with
    return suite, base / "history"


def copy(history_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the shared history (its index paths are relative)."""
    return Path(shutil.copytree(history_dir, tmp_path / "history", symlinks=True))


def run_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "runs" / "fault").iterdir())


def test_corrupt_line_in_cells_jsonl(two_nights, tmp_path: Path) -> None:
    _, shared = two_nights
    first = history.History(shared).entries()[0]
    run = Path(shutil.copytree(shared / first.path, tmp_path / "run"))
    lines = (run / "cells.jsonl").read_text().splitlines()
    assert len(lines) == 2
    (run / "cells.jsonl").write_text(f"{lines[0]}\n{lines[1][:40]}\n")  # cut short
    with pytest.warns(UserWarning, match=rf"{run / 'cells.jsonl'}:2\b"):
        samples = load(run)
    assert set(samples["cell"]) == {0} and len(samples) > 5
    assert list(load_cells(run)["cell"]) == [0]
    for command in ("summary", "report"):
        done = bench_cli(command, str(run))
        assert done.returncode == 0, done.stderr
        runs.one_line(done.stderr, "warning:", f"{run / 'cells.jsonl'}:2")


def test_corrupt_line_in_the_history_index(two_nights, tmp_path: Path) -> None:
    suite, shared = two_nights
    root = copy(shared, tmp_path)
    index = root / history.INDEX
    lines = index.read_text().splitlines()
    index.write_text(f"{lines[0]}\n{{not json\n")
    before = run_dirs(root)
    scope = Scope(tmp_path)
    done = nightly(scope, suite, root)
    assert done.returncode == 2, done.stderr
    line = runs.one_line(done.stderr, f"{index}:2")
    assert done.stderr.strip() == line and line.startswith("error: ")
    assert run_dirs(root) == before and index.read_text() == f"{lines[0]}\n{{not json\n"
    assert_nothing_left(scope)


def test_previous_run_directory_deleted(two_nights, tmp_path: Path) -> None:
    suite, shared = two_nights
    root = copy(shared, tmp_path)
    first, second = history.History(root).entries()
    shutil.rmtree(root / second.path)
    scope = Scope(tmp_path)
    done = nightly(scope, suite, root)
    assert done.returncode == 0, done.stderr
    runs.one_line(done.stderr, "warning:", f"run {second.run_id}", "missing")
    entries = history.History(root).entries()
    assert [e.run_id for e in entries[:2]] == [first.run_id, second.run_id]
    assert entries[1].path == "" and entries[1].summary == second.summary  # summary kept
    assert entries[2].compared_with == first.run_id
    new = root / entries[2].path
    assert set(load(new)["cell"]) == set(load_cells(new)["cell"]) == {0, 1}
    assert_nothing_left(scope)
