"""A nightly regression no larger than the history's run-to-run drift is labelled drift: the
floors come from the index (``drift.floors``) and ``record`` passes them to ``compare_runs``.

On a stored fixture run and a copy of it whose step time is 1.5x slower, with earlier nights
made from its own summary (no runs are executed)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from bench.compare import DRIFT, REGRESSION
from bench.nightly import drift, history, record
from tests.conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "runs" / "gpu-fixture" / "20261126T033359Z"
KEY = ("bare", "train-mlp", "train.step_time_s")


def _key(row: dict) -> tuple[str, str, str]:
    return row["target"], row["workload"], row["metric"]


def slower(run: Path, factor: float) -> None:
    """``run`` as another night whose step time on ``KEY`` is ``factor`` times the fixture's."""
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "run_id": "new"}))
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    for row in rows:
        if _key(row) == KEY:
            row["value"] *= factor
    (run / "samples.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def night_after(tmp_path: Path, medians: list[float]) -> record.Outcome:
    """Record the slower night in a history whose earlier nights had these ``KEY`` medians
    (relative to the fixture's), then the fixture run itself."""
    root = tmp_path / "history"
    base = Path(shutil.copytree(FIXTURE, root / "runs" / "base"))
    new = Path(shutil.copytree(FIXTURE, root / "runs" / "new"))
    slower(new, 1.5)
    first = history.summarize_run(base, root)
    earlier = [
        dataclasses.replace(
            first,
            run_id=f"night{i}",
            path="",
            summary=[
                {**r, "median": r["median"] * m} if _key(r) == KEY else r for r in first.summary
            ],
        )
        for i, m in enumerate(medians)
    ]
    history.History(root).save([*earlier, first])
    return record.record(root, new)


def status(outcome: record.Outcome) -> str:
    assert outcome.comparison is not None
    rows = outcome.comparison.rows
    found = rows[
        (rows["target"] == KEY[0]) & (rows["workload"] == KEY[1]) & (rows["metric"] == KEY[2])
    ]
    return str(found["status"].iloc[0])


def test_a_step_within_the_drift_of_earlier_nights_is_drift(tmp_path: Path) -> None:
    outcome = night_after(tmp_path, [1.0, 1.6, 1.0, 1.6, 1.0, 1.6])  # nights wander by 60%
    assert status(outcome) == DRIFT
    assert outcome.regressions == 0 and outcome.entry.regressions == 0
    assert outcome.entry.verdict.startswith("no regression (")


def test_the_same_step_over_a_steady_history_is_a_regression(tmp_path: Path) -> None:
    outcome = night_after(tmp_path, [1.0, 1.01, 0.99, 1.0, 1.01, 0.99])
    assert status(outcome) == REGRESSION
    assert outcome.entry.regressions == 1 and outcome.failing and outcome.noteworthy


def test_floors_need_six_earlier_nights(tmp_path: Path) -> None:
    entry = history.Entry("r", "s", "h", "", "", None, "complete", {}, [])
    rows = [{"target": "t", "workload": "w", "metric": "m", "median": m} for m in (1, 2)]
    nights = [dataclasses.replace(entry, run_id=str(i), summary=[rows[i % 2]]) for i in range(6)]
    assert drift.floors(nights[:5]) == {}
    assert drift.floors(nights) == {("t", "w", "m"): drift.drift(nights, ("t", "w", "m"))}
