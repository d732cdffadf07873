"""Plan ordering: interleaved alternates targets, blocked groups them, random is seeded."""

from __future__ import annotations

from bench.plan import build_plan, limited
from bench.suite import parse_suite

SUITE = """\
name: p
repetitions: 2
order: {order}
seed: {seed}
targets:
  - {{name: A, kind: local}}
  - {{name: B, kind: local}}
  - {{name: C, kind: local}}
workloads:
  - {{name: w1, kind: train_step}}
  - {{name: w2, kind: inference}}
"""


def plan(order: str, seed: int = 0):
    return build_plan(parse_suite(SUITE.format(order=order, seed=seed)))


def test_interleaved_alternates_targets_and_rotates_their_positions() -> None:
    cells = plan("interleaved")
    assert [c.target for c in cells[:6]] == ["A", "B", "C", "A", "B", "C"]
    assert [c.target for c in cells[6:]] == ["B", "C", "A", "B", "C", "A"]
    assert [c.workload for c in cells[:6]] == ["w1"] * 3 + ["w2"] * 3
    assert [c.repetition for c in cells] == [0] * 6 + [1] * 6
    assert [c.index for c in cells] == list(range(12))


def test_blocked_runs_each_target_to_completion() -> None:
    cells = plan("blocked")
    assert [c.target for c in cells] == ["A"] * 4 + ["B"] * 4 + ["C"] * 4
    assert [(c.workload, c.repetition) for c in cells[:4]] == [
        ("w1", 0),
        ("w1", 1),
        ("w2", 0),
        ("w2", 1),
    ]


def test_every_order_covers_every_cell_once() -> None:
    expected = {(t, w, r) for t in "ABC" for w in ("w1", "w2") for r in (0, 1)}
    for order in ("interleaved", "blocked", "random"):
        cells = plan(order)
        assert {(c.target, c.workload, c.repetition) for c in cells} == expected
        assert len(cells) == len(expected)


def test_random_is_reproducible_per_seed_and_differs_across_seeds() -> None:
    key = lambda cells: [(c.target, c.workload, c.repetition) for c in cells]  # noqa: E731
    assert key(plan("random", 1)) == key(plan("random", 1))
    assert key(plan("random", 1)) != key(plan("random", 2))
    assert key(plan("random", 1)) != key(plan("interleaved"))


def test_a_target_can_run_only_some_workloads() -> None:
    text = SUITE.format(order="interleaved", seed=0).replace(
        "{name: C, kind: local}", "{name: C, kind: local, workloads: [w2]}"
    )
    cells = build_plan(parse_suite(text))
    assert {(c.target, c.workload) for c in cells if c.target == "C"} == {("C", "w2")}
    assert len(cells) == 10  # A and B: 2 workloads x 2 repetitions; C: 1 x 2
    assert [c.index for c in cells] == list(range(10))
    assert [c.target for c in cells[:5]] == ["A", "B", "A", "B", "C"]  # rounds still rotate


def test_a_target_limited_to_fewer_repetitions_keeps_the_order_of_the_rest() -> None:
    cells = limited(plan("interleaved"), {"C": 1})
    assert [c.index for c in cells] == list(range(10))
    assert [(c.target, c.repetition) for c in cells if c.target == "C"] == [("C", 0)] * 2
    assert [c.target for c in cells[6:]] == ["B", "A", "B", "A"]  # round 2 without C
