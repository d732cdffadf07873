"""The time left in a run, from the cells finished so far."""

from __future__ import annotations

import json
from pathlib import Path

from bench.estimate import fewer_repetitions
from bench.eta import Remaining, say
from bench.plan import Cell


def plan() -> list[Cell]:
    pairs = [("bare", "train"), ("vm", "train")] * 3
    return [Cell(i, t, w, i // 2) for i, (t, w) in enumerate(pairs)]


def test_nothing_known_says_nothing() -> None:
    assert Remaining(plan()).seconds() is None
    assert say(None) == ""


def test_each_pair_expects_its_own_median() -> None:
    cells = plan()
    left = Remaining(cells)
    left.finished(cells[0], 2.0)  # bare
    left.finished(cells[1], 60.0)  # vm
    # two bare cells at 2 s and two vm cells at 60 s remain
    assert left.seconds() == 2 * 2.0 + 2 * 60.0


def test_an_unseen_pair_takes_earlier_runs_then_this_runs_median() -> None:
    cells = plan()
    left = Remaining(cells, earlier={("vm", "train"): 50.0})
    left.finished(cells[0], 4.0)
    assert left.seconds() == 2 * 4.0 + 3 * 50.0
    without = Remaining(cells)
    without.finished(cells[0], 4.0)
    assert without.seconds() == 5 * 4.0  # the vm pair is guessed from the one cell seen


def test_a_running_cell_counts_only_what_it_has_left() -> None:
    cells = plan()
    left = Remaining(cells)
    left.finished(cells[0], 10.0)
    left.started(cells[2])
    left.running[cells[2].index] -= 4.0  # started four seconds ago
    assert abs(left.seconds() - (6.0 + 10.0 + 3 * 10.0)) < 0.5


def test_said_in_plain_words() -> None:
    assert say(42.0) == "about 40 s left"
    assert say(2.0) == "about 5 s left"
    assert say(600.0) == "about 10 min left"


def stored(root: Path, run_id: str, status: str, reps: dict[str, int]) -> None:
    run = root / run_id
    run.mkdir(parents=True)
    cells = [
        {"target": t, "workload": "w", "repetition": r} for t, n in reps.items() for r in range(n)
    ]
    (run / "manifest.json").write_text(json.dumps({"status": status, "plan": cells}))


def test_the_header_expects_what_the_latest_complete_run_cut(tmp_path: Path) -> None:
    stored(tmp_path, "20260101T000000Z-a", "complete", {"bare": 5, "vm": 1})
    assert fewer_repetitions(tmp_path, 5) == {"vm": 1}  # a VM that fell back to TCG
    stored(tmp_path, "20260102T000000Z-b", "interrupted", {"bare": 2, "vm": 0})
    assert fewer_repetitions(tmp_path, 5) == {"vm": 1}  # an unfinished run says nothing
    stored(tmp_path, "20260103T000000Z-c", "complete", {"bare": 2, "vm": 2})
    assert fewer_repetitions(tmp_path, 5) == {}  # the suite had 2 then: nobody ran fewer
