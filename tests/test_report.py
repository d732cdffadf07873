"""``bench report``: built from a real small run and from stored runs, opened in a real
headless Chromium to check that every figure decodes and nothing is fetched."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench import results
from bench.report import document, frames, markdown
from tests.chromium import BINARY, Chromium
from tests.conftest import REPO, bench_cli, run_suite
from tests.test_run_e2e import run_dir_of

FIXTURES = REPO / "tests" / "fixtures" / "runs"
needs_chromium = pytest.mark.skipif(BINARY is None, reason="chromium is not installed")

SMALL = """\
name: small
description: two identical local targets; one workload whose every cell fails
repetitions: 5
min_iterations: 5
targets:
  - {name: bare, kind: local, baseline: true}
  - {name: twin, kind: local}
workloads:
  - {name: infer, kind: inference, model: mlp, min_query_count: 64, warmup_queries: 3}
  - {name: broken, kind: command, argv: [sh, -c, "echo 'usage: broken <input>' >&2; exit 2"]}
"""
FIGURES_WITHOUT_GPU = [
    "Change against the baseline",
    "Start-up phases",
    "Throughput",
    "Inference latency",
    "Memory overhead",
    "Every repetition",
]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    done = run_suite(tmp_path_factory.mktemp("report"), SMALL)
    return done, run_dir_of(done)


def stored(name: str, tmp_path: Path) -> Path:
    """A copy of a stored run (the report is written into the run directory)."""
    (source,) = (FIXTURES / name).iterdir()
    return Path(shutil.copytree(source, tmp_path / name / source.name))


def open_in_chromium(page: Path) -> tuple[list[int], list[str]]:
    with Chromium() as browser:
        return browser.open(page)


def assert_self_contained(page: Path, figures: int) -> None:
    widths, requests = open_in_chromium(page)
    assert len(widths) == figures and all(w > 0 for w in widths), widths
    left = [u for u in requests if u != page.resolve().as_uri() and not u.startswith("data:")]
    assert left == [], f"the report fetched {left}"


# --- a real small run -------------------------------------------------------------------------


@pytest.mark.slow
def test_run_writes_the_report_and_names_it(small_run) -> None:
    done, run_dir = small_run
    assert done.returncode == 1, done.stderr  # the failed cells; the report is written all the same
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == str(run_dir)  # the run directory stays the last line
    assert lines[-2] == f"report: {run_dir / 'report.html'} (and report.md)"
    assert (run_dir / "report.html").stat().st_size > 10_000
    assert (run_dir / "report.md").is_file()


@pytest.mark.slow
@needs_chromium
def test_report_opens_offline_with_every_figure_decoded(small_run) -> None:
    _, run_dir = small_run
    assert_self_contained(run_dir / "report.html", len(FIGURES_WITHOUT_GPU))


@pytest.mark.slow
def test_report_puts_invalid_cells_and_warnings_first(small_run) -> None:
    _, run_dir = small_run
    html = (run_dir / "report.html").read_text()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert html.index("Read this first") < html.index("INVALID cells") < html.index("Results")
    assert "exited with status 2" in html and "usage: broken &lt;input&gt;" in html
    built = document.build(run_dir)
    assert "10 of 20 cells failed; see INVALID cells" in built.warnings
    assert set(built.invalid["workload"]) == {"broken"} and len(built.invalid) == 10
    assert [title for title, _ in built.figures.items] == FIGURES_WITHOUT_GPU


@pytest.mark.slow
def test_headline_has_targets_as_rows_and_overhead_against_the_baseline(small_run) -> None:
    _, run_dir = small_run
    headline = document.build(run_dir).headline["infer"]
    assert list(headline.index) == ["bare", "twin"]
    assert headline.loc["bare", "repetitions"] == "5"
    assert headline.loc["bare", "infer.throughput vs bare"] == "baseline"
    change = headline.loc["twin", "infer.latency_p50_s vs bare"]
    assert change.startswith(("+", "-")) and "[" in change  # a change with its interval
    assert headline.loc["twin", "infer.throughput"].endswith("samples/s")


@pytest.mark.slow
def test_markdown_report_has_the_same_tables(small_run) -> None:
    _, run_dir = small_run
    md = (run_dir / "report.md").read_text()
    assert md.startswith("# bench report: small")
    assert "## Read this first" in md and "**INVALID cells**" in md
    assert "### infer" in md and "| infer.throughput vs bare |" in md
    assert "Figures: see `report.html`" in md


@pytest.mark.slow
def test_report_command_rewrites_and_refuses_a_non_run(small_run, tmp_path: Path) -> None:
    _, run_dir = small_run
    before = results.load(run_dir)
    done = bench_cli("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(run_dir / "report.html"), str(run_dir / "report.md")]
    pd.testing.assert_frame_equal(results.load(run_dir), before)  # results untouched
    missing = bench_cli("report", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: {tmp_path / 'nope'}: no such run directory"
    suite_dir = bench_cli("report", str(run_dir.parent))
    assert suite_dir.returncode == 2 and "not a run directory" in suite_dir.stderr


@pytest.mark.slow
def test_a_run_whose_every_cell_failed_still_gets_a_report(write_suite) -> None:
    suite = write_suite(
        "name: allfail\nrepetitions: 2\ntargets:\n  - {name: bare, kind: local}\n"
        "workloads:\n  - {name: boom, kind: train_step, steps: 100000, timeout_s: 0.5}\n"
    )
    done = bench_cli("run", str(suite), "--results-dir", str(suite.parent / "results"))
    assert done.returncode == 1  # failed cells
    run_dir = run_dir_of(done)
    built = document.build(run_dir)
    assert "2 of 2 cells failed; see INVALID cells" in built.warnings
    assert len(built.invalid) == 2 and built.figures.items == [] and built.headline == {}
    assert "worker timed out" in (run_dir / "report.md").read_text()


# --- stored runs --------------------------------------------------------------------------------


@pytest.mark.slow
@needs_chromium
def test_stored_multi_target_run(tmp_path: Path) -> None:
    """bare metal, a container and a TCG virtual machine, stored from a real run."""
    run_dir = stored("multi-fixture", tmp_path)
    done = bench_cli("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    built = document.build(run_dir)
    assert list(built.headline["train-mlp"].index) == [
        "bare",
        "ctr",
        "vm [TCG (software emulation)]",
    ]
    env = built.environment
    assert env.loc["kind", "differs"] and env.loc["runtime", "differs"]
    assert not env.loc["CPU", "differs"]  # the VM reports the host's hardware
    assert_self_contained(run_dir / "report.html", len(FIGURES_WITHOUT_GPU))
    html = (run_dir / "report.html").read_text()
    assert html.count('<tr class="differs">') == int(env["differs"].sum())
    # the summary's headline opens the report, above everything but the run's facts
    isolation = built.isolation.set_index(["target", "workload"])
    assert list(isolation.columns) == ["start-up", "throughput", "host memory"]
    vm = isolation.loc[("vm [TCG (software emulation)]", "train-mlp")]
    assert "slower" in vm["start-up"] and "lower" in vm["throughput"]
    assert html.index('class="isolation"') < html.index('id="results"')
    markdown = (run_dir / "report.md").read_text()
    assert markdown.index("**What isolation cost against 'bare'") < markdown.index("## Results")


@pytest.mark.slow
@needs_chromium
def test_stored_gpu_run_has_gpu_timelines(tmp_path: Path) -> None:
    """Two local targets on an NVIDIA H200, stored from a real run there."""
    run_dir = stored("gpu-fixture", tmp_path)
    built = document.build(run_dir)
    titles = [title for title, _ in built.figures.items]
    assert "GPU utilisation" in titles
    document.write(run_dir)
    assert_self_contained(run_dir / "report.html", len(titles))


# --- the checks above can fail ----------------------------------------------------------------


@pytest.mark.slow
@needs_chromium
def test_chromium_check_sees_a_broken_image_and_a_fetch(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text('<img src="data:image/png;base64,AAAA"><img src="http://127.0.0.1:9/x.png">')
    widths, requests = open_in_chromium(page)
    assert widths == [0, 0]
    assert "http://127.0.0.1:9/x.png" in requests
    with pytest.raises(AssertionError):
        assert_self_contained(page, 2)


# --- tables -----------------------------------------------------------------------------------


def test_interval_and_overhead_text() -> None:
    assert frames.interval_text(0.0123, 0.0119, 0.0128, "s") == "12.3 [11.9, 12.8] ms"
    assert frames.interval_text(0.00098, 0.00095, 0.00102, "s") == "980 µs [950 µs, 1.02 ms]"
    assert frames.interval_text(5.0, float("nan"), float("nan"), "s") == "5 s (no CI: n < 5)"
    assert frames.overhead_text(1.083, 1.067, 1.151) == "+8.3% [+6.7%, +15.1%]"
    assert frames.overhead_text(0.979, 0.944, 1.062) == "-2.1% [-5.6%, +6.2%] n.s."


def test_markdown_table_escapes_pipes() -> None:
    frame = pd.DataFrame({"a": ["x|y"], "b": ["line\nbreak"]})
    assert markdown.frame_table(frame) == "| a | b |\n|---|---|\n| x\\|y | line break |"
