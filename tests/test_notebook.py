"""notebooks/analysis.ipynb executed top to bottom (nbclient, a real kernel) against a real run
and a copy of it stored elsewhere as the run to compare with."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, run_suite
from tests.test_run_e2e import run_dir_of

pytestmark = pytest.mark.slow  # a real kernel over a real run

NOTEBOOK = REPO / "notebooks" / "analysis.ipynb"
SUITE = """\
name: nb
repetitions: 5
targets:
  - {name: bare, kind: local, baseline: true}
  - {name: twin, kind: local}
workloads:
  - {name: infer, kind: inference, model: mlp, min_query_count: 20, warmup_queries: 3}
"""


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    """The base (a copy of the run, in a directory of its own) and the run. The same samples
    on both sides: the comparison's answer is known, whatever the machine's load did."""
    root = tmp_path_factory.mktemp("nb")
    done = run_suite(root, SUITE, "--no-report")
    assert done.returncode == 0, done.stderr
    run = run_dir_of(done)
    base = Path(shutil.copytree(run, root / "base" / run.name))
    return base, run


def execute(parameters: str) -> Any:
    """The notebook with its parameter cell replaced, executed in a fresh kernel; a cell that
    raises fails the test (nbclient raises CellExecutionError)."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source = parameters
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": REPO}}
    )
    return client.execute()


def outputs(notebook: Any, kind: str) -> list[Any]:
    return [
        out
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if kind in out.get("data", {}) or out.get("name") == kind
    ]


def test_notebook_runs_against_a_run_and_compares_two(two_runs) -> None:
    base, new = two_runs
    done = execute(f"RUN_DIR = {str(new.parent)!r}\nBASE_DIR = {str(base)!r}")
    text = "".join(out["text"] for out in outputs(done, "stdout"))
    assert f"{new}: complete, 10 cells" in text  # the suite directory resolved to its latest
    # the comparison's one-line answer: the same samples on both sides
    assert re.search(r"^no regression( \(.+\))?$", text, re.MULTILINE), text
    images = outputs(done, "image/png")
    assert len(images) >= 5  # the change forest, start-up, throughput, latency, memory, ...
    headings = [out["data"]["text/markdown"] for out in outputs(done, "text/markdown")]
    assert "### infer" in headings and "### Inference latency" in headings
    assert not [o for o in outputs(done, "stderr") if "Traceback" in o["text"]]


def test_notebook_without_a_comparison_says_how_to_ask_for_one(two_runs) -> None:
    _, new = two_runs
    done = execute(f"RUN_DIR = {str(new)!r}\nBASE_DIR = None")
    text = "".join(out["text"] for out in outputs(done, "stdout"))
    assert "Set BASE_DIR to an earlier run" in text


def test_notebook_has_one_parameter_cell_and_no_stored_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "RUN_DIR" in tagged[0].source
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
