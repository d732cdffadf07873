"""``kind: python`` in the worker, in-process: the entry called with its params and a context,
its loop timed, its own metrics stored, its mistakes one clear error; and its directory shipped
as a code asset, copied once into the cache and checked by the worker."""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.assets import code
from bench.verdict import judge
from workloads import run_workload
from workloads.assets import AssetError
from workloads.python import NO_ITEMS, NONE_DONE, NOT_CALLED

Run = Callable[..., dict[str, Any]]


def write(directory: Path, source: str, module: str = "bench_case") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{module}.py").write_text(textwrap.dedent(source))
    return directory


def spec_of(directory: Path, seed: int = 3, **params: Any) -> dict[str, Any]:
    workload = {"kind": "python", "path": str(directory), "entry": "bench_case:run"}
    return {"workload": {**workload, "params": params}, "seed": seed}


@pytest.fixture
def entry(tmp_path: Path) -> Run:
    """``entry(source, seed=3, **params)``: run ``source`` (module ``bench_case``, function
    ``run``) in-process; the result event, with the names of all events under ``events``."""
    counter = iter(range(100))

    def run(source: str, seed: int = 3, **params: Any) -> dict[str, Any]:
        directory = write(tmp_path / f"code{next(counter)}", source)
        events: list[dict[str, Any]] = []
        result = run_workload(spec_of(directory, seed, **params), events.append)
        return {**result, "events": [e["event"] for e in events]}

    return run


LOOP = """
def run(ctx, rows, n):
    assert ctx.params == {"rows": rows, "n": n} and ctx.device.type == "cpu"
    total = 0
    ctx.ready()
    for i in ctx.iterations(n, warmup=2, items_per_iteration=rows, unit="rows"):
        total += sum(range(20000))
    ctx.record("seed_seen", ctx.seed)
    ctx.record("total", total, "sums")
    ctx.absent("on_gpu", "no GPU on this host")
"""


def test_the_loop_is_timed_and_the_users_metrics_are_stored(entry: Run) -> None:
    result = entry(LOOP, seed=7, rows=4, n=6)
    assert result["events"] == ["start", "ready", "first_step", "result"]
    metrics, raw = result["metrics"], result["raw"]
    times = raw["iteration_s"]
    assert len(times) == 6 and len(raw["warmup_iteration_s"]) == 2
    assert metrics["python.iteration_s"] == {"value": statistics.median(times), "unit": "s"}
    assert metrics["python.throughput"]["unit"] == "rows/s"
    assert math.isclose(metrics["python.throughput"]["value"], 4 * 6 / sum(times))
    assert metrics["user.seed_seen"] == {"value": 7.0, "unit": ""}
    assert metrics["user.total"] == {"value": 8.0 * sum(range(20000)), "unit": "sums"}  # 2 + 6
    assert result["absent"]["user.on_gpu"] == "no GPU on this host"
    assert metrics["cpu.util_pct"]["value"] > 0 and metrics["mem.rss_peak_bytes"]["value"] > 0
    info = result["info"]
    assert (info["measured_iterations"], info["warmup_iterations"]) == (6, 2)
    assert info["python"]["ready"] == "ctx.ready()"
    assert info["python"]["loop"] == {"n": 6, "warmup": 2, "items_per_iteration": 4, "unit": "rows"}
    assert judge(None, info, 6).label == "VALID" and judge(None, info, 7).label == "INVALID"


RECORD_ONLY = """
import time

def run(ctx):
    time.sleep(0.05)
    ctx.record("answer", 42.0, "units")
"""

EARLY_EXIT = """
def run(ctx):
    for i in ctx.iterations(10, warmup=1):
        if i == 4:
            break
"""

ONLY_WARMUP = """
def run(ctx):
    for i in ctx.iterations(5, warmup=3):
        if i == 1:
            break
"""


def test_without_a_loop_the_call_is_the_measured_phase(entry: Run) -> None:
    result = entry(RECORD_ONLY)
    assert result["events"] == ["start", "ready", "result"]  # ready when it returned
    assert result["info"]["python"]["ready"] == "return"
    assert result["absent"]["python.iteration_s"] == NOT_CALLED
    assert result["metrics"]["user.answer"] == {"value": 42.0, "unit": "units"}
    assert result["info"]["measured_window_s"] >= 0.05
    assert result["info"]["measured_iterations"] is None  # not judged by the count
    assert judge(None, result["info"], 10).label == "VALID"


def test_leaving_the_loop_early_keeps_the_completed_iterations(entry: Run) -> None:
    result = entry(EARLY_EXIT)
    assert result["info"]["python"]["ready"] == "first iteration"
    assert len(result["raw"]["iteration_s"]) == 3  # indices 1, 2, 3; 4 broke out
    assert result["absent"]["python.throughput"] == NO_ITEMS
    warm = entry(ONLY_WARMUP)
    assert warm["absent"]["python.iteration_s"] == NONE_DONE
    assert warm["info"]["measured_iterations"] == 0  # asked for a loop: INVALID by the count
    assert judge(None, warm["info"], 1).label == "INVALID"


MISTAKES = {
    "ctx.record('bad name!', 1)": "name must be 1 to 64 of",
    "ctx.record('x', float('nan'))": "value must be a finite number, got nan",
    "ctx.record('x', True)": "value must be a finite number, got True",
    "ctx.record('x', 1); ctx.record('x', 2)": "user.x was already recorded in this run",
    "ctx.absent('x', '')": "reason must be a non-empty string",
    "ctx.iterations(0)": "n must be an integer >= 1, got 0",
    "ctx.iterations(3, unit='rows')": "unit names the items: give items_per_iteration",
    "ctx.iterations(3); ctx.iterations(3)": "may be called once per run",
}


@pytest.mark.parametrize("call", list(MISTAKES))
def test_a_mistake_in_the_entry_fails_the_run_with_what_to_fix(entry: Run, call: str) -> None:
    with pytest.raises((ValueError, RuntimeError), match=MISTAKES[call].replace("(", r"\(")):
        entry(f"def run(ctx):\n    {call}\n")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    yield tmp_path / "cache"


def test_the_directory_ships_as_a_code_asset_the_worker_checks(tmp_path: Path, cache) -> None:
    source = write(tmp_path / "user", LOOP)
    write(source / "pkg", "VALUE = 1\n", module="helpers")
    write(source / ".git", "x\n", module="objects")  # dot names and caches stay behind
    write(source / "__pycache__", "x\n", module="stale")
    notes: list[str] = []
    asset = code.ensure(source, notes.append)
    assert code.ensure(source, notes.append) == asset and len(notes) == 1  # copied once
    shipped = sorted(p.relative_to(asset.path).as_posix() for p in asset.path.rglob("*.py"))
    assert shipped == ["src/bench_case.py", "src/pkg/helpers.py"]
    assert asset.key == f"code-{asset.sha256[:20]}" and asset.kind == "code"

    staged = {"location": "image", "code": {"path": str(asset.path), "sha256": asset.sha256}}
    moved = {**spec_of(tmp_path / "elsewhere", rows=2, n=3), "assets": staged}
    result = run_workload(moved)  # ``path`` does not exist: the staged copy is what runs
    assert result["info"]["python"]["directory"] == str(asset.path / "src")
    assert result["info"]["assets"]["code"]["sha256"] == asset.sha256

    (asset.path / "src" / "bench_case.py").write_text(LOOP + "\n# changed\n")
    with pytest.raises(AssetError, match=r"the controller made|differs from"):
        run_workload(moved)
    (source / "bench_case.py").write_text(LOOP + "\n# edited\n")
    assert code.ensure(source, notes.append).key != asset.key  # new content, new copy


@pytest.mark.slow
def test_the_example_trains_and_records_its_accuracy() -> None:
    """examples/python as its suite runs it, in miniature (the matrix runs a cheaper entry on
    every target: building the example's optimizer imports torch._dynamo, seconds in a guest)."""
    project = Path(__file__).resolve().parent.parent / "examples" / "python" / "project"
    params = {"steps": 6, "warmup": 1, "batch_size": 8, "samples": 64, "held_out": 64}
    workload = {"kind": "python", "path": str(project), "entry": "classifier.train:run"}
    result = run_workload({"workload": {**workload, "params": params}, "seed": 1})
    metrics = result["metrics"]
    assert metrics["python.throughput"]["unit"] == "images/s"
    assert len(result["raw"]["iteration_s"]) == 6
    assert 0.0 <= metrics["user.accuracy"]["value"] <= 1.0
    assert metrics["user.final_loss"]["value"] > 0
