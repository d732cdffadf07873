"""``bench compare``: the decision rule on synthetic samples, stored runs written with the real
``ResultStore``, and real runs of the local target end to end (one slowed on purpose)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import compare
from bench.compare import (
    IMPROVEMENT,
    INFORMATIONAL,
    NO_CHANGE,
    REGRESSION,
    TOO_FEW,
    WITHIN,
    compare_runs,
    decide,
    parse_overrides,
    parse_threshold,
)
from bench.errors import IncomparableRunsError, InputError
from bench.report import regressions as render
from bench.results import CellRecord, ResultStore, Sample, load_cells, load_manifest
from bench.stats import MIN_FOR_CI
from tests.conftest import bench_cli
from tests.test_run_e2e import run_dir_of


def noisy(median: float, n: int = 8, spread: float = 0.01, seed: int = 0) -> np.ndarray:
    """``n`` values around ``median`` with a relative spread (a quiet machine)."""
    rng = np.random.default_rng(seed)
    return median * (1 + spread * rng.standard_normal(n))


# --- the decision rule ---------------------------------------------------------------------


def test_significant_but_under_the_threshold_is_not_a_regression() -> None:
    base, new = noisy(100.0), noisy(102.0, seed=1)  # +2%, clearly separated
    found = decide(base, new, "train.step_time_s", threshold=0.05)
    assert found.status == WITHIN
    assert found.p_value is not None and found.p_value < 0.05 and found.ratio.measurable


def test_beyond_the_threshold_but_not_significant_is_not_a_regression() -> None:
    base = np.array([80.0, 95.0, 100.0, 105.0, 120.0])
    new = np.array([85.0, 100.0, 110.0, 115.0, 130.0])  # median +10%, but overlapping
    found = decide(base, new, "train.step_time_s", threshold=0.05)
    assert found.status == NO_CHANGE
    assert found.ratio.ratio == pytest.approx(1.10)


@pytest.mark.parametrize(
    ("metric", "factor", "status"),
    [
        ("train.throughput", 0.8, REGRESSION),  # throughput down is bad
        ("train.throughput", 1.2, IMPROVEMENT),
        ("data.bandwidth", 0.8, REGRESSION),
        ("infer.latency_p99_s", 1.2, REGRESSION),  # latency up is bad
        ("infer.latency_p99_s", 0.8, IMPROVEMENT),
        ("train.step_time_s", 1.2, REGRESSION),
        ("startup.total_s", 1.2, REGRESSION),
        ("mem.host_bytes", 1.2, REGRESSION),
        ("mem.host_bytes", 0.8, IMPROVEMENT),
    ],
)
def test_direction_decides_regression_or_improvement(metric, factor, status) -> None:
    found = decide(noisy(100.0), noisy(100.0 * factor, seed=1), metric, threshold=0.05)
    assert found.status == status


@pytest.mark.parametrize(
    "metric",
    ["gpu.util_mean_pct", "gpu.util_max_pct", "cpu.util_pct", "gpu.power_mean_w",
     "gpu.sm_clock_mean_mhz", "some.new_metric"],
)  # fmt: skip
@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_informational_metrics_never_regress(metric: str, factor: float) -> None:
    found = decide(noisy(100.0), noisy(100.0 * factor, seed=1), metric, threshold=0.05)
    assert found.status == INFORMATIONAL
    assert found.ratio.ratio == pytest.approx(factor, rel=0.05)  # still shown


@pytest.mark.parametrize(("n_base", "n_new"), [(4, 4), (4, 10), (10, 3)])
def test_too_few_repetitions_is_said_not_hidden(n_base: int, n_new: int) -> None:
    found = decide(noisy(100.0, n_base), noisy(200.0, n_new, seed=1), "train.step_time_s", 0.05)
    assert found.status == TOO_FEW  # a doubling, but no test with so few values
    assert found.p_value is None and found.ratio.low is None
    assert found.ratio.ratio == pytest.approx(2.0, rel=0.05)


def test_identical_values_are_no_change() -> None:
    same = np.full(6, 3.0)
    found = decide(same, same, "train.step_time_s", threshold=0.05)
    assert found.status == NO_CHANGE and found.p_value == 1.0


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5%", 0.05),
        ("0.05", 0.05),
        (" 2.5 % ", 0.025),
        ("150%", 1.5),
        ("0", 0.0),
        (0.1, 0.1),
        (1.5, 1.5),
    ],
)
def test_threshold_parsing(text, value) -> None:
    assert parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["5 percent", "5", "-5%", "", "five%", "1.5", -0.1])
def test_bad_threshold_text_is_refused(text: str) -> None:
    with pytest.raises(InputError, match="--threshold"):
        parse_threshold(text)


def test_metric_threshold_parsing() -> None:
    found = parse_overrides(["infer.latency_p99_s=10%", "train.throughput = 0.02"])
    assert found == pytest.approx({"infer.latency_p99_s": 0.10, "train.throughput": 0.02})
    with pytest.raises(InputError, match="METRIC=THRESHOLD"):
        parse_overrides(["infer.latency_p99_s"])
    with pytest.raises(InputError, match=r"infer\.latency_p99_s"):
        parse_overrides(["infer.latency_p99_s=ten"])


# --- stored runs, written by the real store ---------------------------------------------------

FINGERPRINT = {
    "cpu_model": "AMD EPYC",
    "cores": {"logical": 2, "usable": 2, "physical": 2},
    "memory_bytes": 25 * 2**30,
    "kernel": "6.1.0",
    "os": "Debian GNU/Linux 12 (bookworm)",
    "python": {"version": "3.11.7", "implementation": "CPython", "executable": "/x/python"},
    "torch": "2.13.0+cpu",
    "torch_cuda": None,
    "gpu_names": [],
    "nvml": {"available": False},
}


def write_run(
    root: Path,
    run_id: str,
    metrics: dict[str, np.ndarray],
    fingerprint: dict[str, Any] | None = None,
    invalid: set[int] = frozenset(),
) -> Path:
    """A run of target ``bare``, workload ``train``: repetition r has ``metrics[m][r]``."""
    store = ResultStore(root, "suite", run_id)
    fp = {**FINGERPRINT, **(fingerprint or {})}
    store.create({"suite": {"name": "suite"}, "targets": {"bare": {"fingerprint": fp}}})
    reps = len(next(iter(metrics.values())))
    for rep in range(reps):
        samples = [
            Sample(run_id, "bare", "local", "train", "train_step", rep, m, float(v[rep]), unit, rep)
            for m, v in metrics.items()
            for unit in [_unit(m)]
        ]
        bad = rep in invalid
        record = CellRecord(
            rep, "bare", "local", "train", "train_step", rep, "ok", "t0", "t1", 1.0,
            verdict="INVALID" if bad else "VALID",
            reasons=["CPU clock fell by 30% during the measured phase"] if bad else [],
        )  # fmt: skip
        store.add_cell(record, samples, {})
    return store.path


def _unit(metric: str) -> str:
    return "samples/s" if metric.endswith("throughput") else "s"


def test_per_metric_threshold_overrides_the_default(tmp_path: Path) -> None:
    base = write_run(
        tmp_path, "a", {"infer.latency_p99_s": noisy(1.0), "train.step_time_s": noisy(1.0)}
    )
    new = write_run(tmp_path, "b", {"infer.latency_p99_s": noisy(1.08, seed=1),
                                    "train.step_time_s": noisy(1.08, seed=2)})  # fmt: skip
    plain = compare_runs(base, new)
    assert set(plain.regressions["metric"]) == {"infer.latency_p99_s", "train.step_time_s"}
    found = compare_runs(base, new, overrides={"infer.latency_p99_s": "10%"})
    rows = found.rows.set_index("metric")
    assert rows.loc["infer.latency_p99_s", "status"] == WITHIN
    assert rows.loc["infer.latency_p99_s", "threshold"] == pytest.approx(0.10)
    assert rows.loc["train.step_time_s", "status"] == REGRESSION


def test_unknown_or_informational_metric_threshold_is_refused(tmp_path: Path) -> None:
    base = write_run(tmp_path, "a", {"train.step_time_s": noisy(1.0)})
    with pytest.raises(InputError, match=r"train\.step_tme_s: unknown metric"):
        compare_runs(base, base, overrides={"train.step_tme_s": 0.1})
    with pytest.raises(InputError, match=r"cpu\.util_pct: an informational metric"):
        compare_runs(base, base, overrides={"cpu.util_pct": 0.1})
    found = compare_runs(base, base, overrides={"gpu.mem_peak_bytes": 0.1})  # a known metric
    assert not found.has_regressions


def test_metrics_in_one_run_only_are_added_or_removed(tmp_path: Path) -> None:
    base = write_run(tmp_path, "a", {"train.step_time_s": noisy(1.0), "startup.pull_s": noisy(5)})
    new = write_run(tmp_path, "b", {"train.step_time_s": noisy(1.0), "train.throughput": noisy(9)})
    rows = compare_runs(base, new).rows.set_index("metric")["status"].to_dict()
    assert rows == {
        "train.step_time_s": NO_CHANGE,
        "startup.pull_s": compare.REMOVED,
        "train.throughput": compare.ADDED,
    }


def test_invalid_cells_are_excluded_with_a_note(tmp_path: Path) -> None:
    base = write_run(tmp_path, "a", {"train.step_time_s": noisy(1.0)})
    wild = noisy(1.0, seed=1)
    wild[[0, 1]] = 9.0  # numbers of throttled cells: untrustworthy
    new = write_run(tmp_path, "b", {"train.step_time_s": wild}, invalid={0, 1})
    found = compare_runs(base, new)
    row = found.rows.iloc[0]
    assert row["n_new"] == 6 and row["status"] == NO_CHANGE
    assert [(e.run, e.cells) for e in found.excluded] == [("new", 2)]
    assert "2 INVALID cells of train on bare excluded (CPU clock fell" in render.notes(found)[0]
    # with most cells INVALID too few remain: said so, never "no change"
    new = write_run(tmp_path, "c", {"train.step_time_s": wild * 2}, invalid=set(range(5)))
    assert compare_runs(base, new).rows.iloc[0]["status"] == TOO_FEW


def test_key_fingerprint_differences_refuse_unless_allowed(tmp_path: Path) -> None:
    values = {"train.step_time_s": noisy(1.0)}
    base = write_run(tmp_path, "a", values)
    new = write_run(tmp_path, "b", values, {"torch": "2.14.0+cpu", "cores": {"logical": 4}})
    with pytest.raises(IncomparableRunsError) as caught:
        compare_runs(base, new)
    message = caught.value.one_line()
    assert "bare: torch differs: '2.13.0+cpu' vs '2.14.0+cpu'" in message
    assert "bare: cores differs" in message and "--allow-different-hosts" in message
    assert caught.value.exit_code == 2
    found = compare_runs(base, new, allow_different_hosts=True)
    assert {d.key for d in found.differences} == {"torch", "cores"}
    # usable cores (a container's cpuset) and the Python executable's path are not the host
    moved = {"python": {**FINGERPRINT["python"], "executable": "/y/python"}}
    same = write_run(
        tmp_path, "c", values, {"cores": {**FINGERPRINT["cores"], "usable": 1}, **moved}
    )
    assert compare_runs(base, same).differences == []


def test_json_is_strict_and_complete(tmp_path: Path) -> None:
    base = write_run(tmp_path, "a", {"train.step_time_s": noisy(1.0, 4)})
    doc = render.to_json(compare_runs(base, base))
    text = json.dumps(doc, allow_nan=False)  # NaN (no interval) is null, not invalid JSON
    assert json.loads(text)["rows"][0]["ci_low"] is None
    assert doc["schema"] == compare.SCHEMA_VERSION
    assert set(doc) >= {"rows", "summary", "host_differences", "excluded_invalid_cells"}


# --- real runs, end to end ------------------------------------------------------------------

# Five repetitions at least for a test, six so that one INVALID or failed cell still leaves
# enough. A command cell (no torch start-up) is a whole repetition in a fraction of a second;
# its command.wall_s is the sleep plus the launch of the program.
SUITE = """\
name: cmp
repetitions: 6
targets:
  - {{name: bare, kind: local{env}}}
workloads:
  - {{name: cmd, kind: command, argv: [sleep, "0.05"]}}
"""
# The program's life five times as long: the load of other processes on a shared 2-core machine
# can move the launch of a program by several milliseconds between runs, and the test must not
# depend on a quiet machine; the stretch is a sleep, so it adds no load of its own.
SLOWED = ', env: {BENCH_INJECT_SLOWDOWN: "4"}'


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three real runs: a base, an identical twin, and one whose program takes 5x as long."""
    root = tmp_path_factory.mktemp("compare")
    found = {}
    for run_id, env in (("base", ""), ("twin", ""), ("slow", SLOWED)):
        suite = root / f"{run_id}.yaml"
        suite.write_text(SUITE.format(env=env))
        done = bench_cli(
            "run", str(suite), "--results-dir", str(root / "results"), "--run-id", run_id
        )
        found[run_id] = run_dir_of(done)
        # a failed cell is INVALID and left out of the comparison; what matters is that enough
        # repetitions remain for a test (the slowed worker's sleep can fail on a busy machine)
        cells = load_cells(found[run_id])
        assert (cells["verdict"] == "VALID").sum() >= MIN_FOR_CI, done.stderr
    return found


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return bench_cli("compare", *map(str, args))


@pytest.mark.slow
def test_identical_runs_have_no_regression(runs) -> None:
    # the same samples: nothing can differ, at the default threshold
    done = cli(runs["base"], runs["base"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no regression" in done.stdout
    # a second run of the same suite: when other processes share this 2-core machine, start-up
    # and a program's wall time move by half or more from one run to the next (a real
    # difference in the machine, which no test on two runs can tell from a regression), so no
    # verdict on the twin is asserted, only that every cell was matched; the rule that decides
    # is covered on synthetic samples with known answers above
    done = cli(runs["base"], runs["twin"], "--format", "json")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    doc = json.loads(done.stdout)
    rows = {row["metric"]: row for row in doc["rows"]}
    assert {"command.wall_s", "startup.total_s"} <= set(rows)
    assert all(row["n_base"] >= MIN_FOR_CI and row["n_new"] >= MIN_FOR_CI for row in rows.values())
    assert not {"added", "removed"} & {row["status"] for row in rows.values()}


@pytest.mark.slow
def test_injected_slowdown_is_a_regression(runs) -> None:
    done = cli(runs["base"], runs["slow"])
    assert done.returncode == 1, done.stdout + done.stderr
    line = next(ln for ln in done.stdout.splitlines() if "command.wall_s" in ln)
    assert "regression" in line
    assert re.search(r"^\d+ regressions? \(", done.stdout, re.MULTILINE)
    assert "BENCH_INJECT_SLOWDOWN" in done.stdout  # the changed target definition is noted

    done = cli(runs["base"], runs["slow"], "--format", "json")
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    wall = next(r for r in doc["rows"] if r["metric"] == "command.wall_s")
    assert wall["status"] == "regression"
    assert wall["ratio"] > 2.0 and wall["p_value"] < 0.05 and wall["ci_low"] > 1.0
    assert doc["summary"]["regressions"] >= 1

    done = cli(runs["base"], runs["slow"], "--format", "md")
    assert done.returncode == 1
    assert "| bare | cmd | command.wall_s ↓ |" in done.stdout
    assert "**regression (>5%)**" in done.stdout


@pytest.mark.slow
def test_different_hosts_are_refused_unless_allowed(runs, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(runs["base"], other)  # the same numbers, another "host"
    manifest = load_manifest(other)
    ours = manifest["targets"]["bare"]["fingerprint"]["cpu_model"]
    manifest["targets"]["bare"]["fingerprint"]["cpu_model"] = "Xeon X"
    (other / "manifest.json").write_text(json.dumps(manifest))

    done = cli(runs["base"], other)
    assert done.returncode == 2
    assert f"bare: cpu_model differs: {ours!r} vs 'Xeon X'" in done.stderr
    assert "--allow-different-hosts" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not done.stdout

    done = cli(runs["base"], other, "--allow-different-hosts", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert "WARNING" in done.stderr and "cpu_model differs" in done.stderr
    doc = json.loads(done.stdout)
    assert doc["host_differences"] == [
        {"target": "bare", "key": "cpu_model", "base": ours, "new": "Xeon X"}
    ]
    done = cli(runs["base"], other, "--allow-different-hosts", "--format", "md")
    assert "cpu_model differs" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{base}", "{missing}"], "no such run directory"),
        (["{base}", "{suite_dir}"], "not a run directory"),
        (["{base}", "{base}", "--threshold", "5 percent"], "--threshold '5 percent': not a"),
        (["{base}", "{base}", "--metric-threshold", "command.wal_s=5%"], "command.wal_s: unknown"),
    ],
)
def test_bad_input_exits_2_with_one_line(runs, tmp_path: Path, args, message) -> None:
    paths = {"base": runs["base"], "missing": tmp_path / "nope", "suite_dir": runs["base"].parent}
    done = cli(*(a.format(**paths) for a in args))
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
