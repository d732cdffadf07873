"""The time left in a run, from the cells finished so far."""

from __future__ import annotations

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
