"""``matrix:`` expansion: names, order, exclude, the baseline rule, and every mistake as one
located line (parse_suite on text: nothing runs)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.errors import SuiteError
from bench.estimate import header
from bench.matrix import label
from bench.plan import build_plan
from bench.suite import parse_suite

SUITE = """\
name: sweep
repetitions: 2
targets:
  - {name: bare, kind: local, baseline: true}
  - name: ctr
    kind: docker
    build: true
    matrix:
      runtime: [runc, crun, runsc]
      network: [none, bridge]
workloads:
  - {name: c, kind: command, argv: [sh, -c, "true"]}
  - name: load
    kind: data_loading
    samples: 10
    sample_bytes: 64
    batch_size: 2
    matrix: {num_workers: [0, 2]}
"""


def error(text: str) -> str:
    with pytest.raises(SuiteError) as info:
        parse_suite(text, "suite.yaml")
    return info.value.one_line()


def test_a_matrix_expands_to_one_target_per_combination_in_the_matrix_order() -> None:
    suite = parse_suite(SUITE)
    names = [t.name for t in suite.targets]
    assert names == [
        "bare",
        "ctr[runtime=runc,network=none]",
        "ctr[runtime=runc,network=bridge]",
        "ctr[runtime=crun,network=none]",
        "ctr[runtime=crun,network=bridge]",
        "ctr[runtime=runsc,network=none]",
        "ctr[runtime=runsc,network=bridge]",
    ]
    assert suite.target("ctr[runtime=crun,network=bridge]").runtime == "crun"
    assert suite.target("ctr[runtime=crun,network=bridge]").network == "bridge"
    assert [w.name for w in suite.workloads] == ["c", "load[num_workers=0]", "load[num_workers=2]"]
    assert suite.workload("load[num_workers=2]").num_workers == 2
    assert suite.swept["targets"]["ctr[runtime=runsc,network=none]"] == {
        "base": "ctr",
        "values": {"runtime": "runsc", "network": "none"},
    }
    assert "bare" not in suite.swept["targets"]
    assert suite.baseline == "bare"


def test_expanded_targets_are_interleaved_with_the_others() -> None:
    suite = parse_suite(SUITE)
    first = [c.target for c in build_plan(suite)[:7]]
    assert first == [t.name for t in suite.targets]  # round one: every target once


def test_exclude_removes_what_each_entry_matches() -> None:
    text = SUITE.replace(
        "network: [none, bridge]\n",
        "network: [none, bridge]\n      exclude:\n        - {runtime: runsc, network: bridge}\n"
        "        - {runtime: crun}\n",
    )
    names = [t.name for t in parse_suite(text).targets]
    assert names == [
        "bare",
        "ctr[runtime=runc,network=none]",
        "ctr[runtime=runc,network=bridge]",
        "ctr[runtime=runsc,network=none]",
    ]


def test_any_key_of_the_kind_can_be_swept_and_values_name_it_safely() -> None:
    text = SUITE.replace(
        "network: [none, bridge]",
        "network: [none]\n      cpus: [1, 2.5]\n      shm_size: [64m]\n"
        "      volumes: [['/data:/data:ro']]\n      env: [{A: '1', B: x}]",
    )
    suite = parse_suite(text)
    name = "ctr[runtime=runc,network=none,cpus=2.5,shm_size=64m,volumes=data:_data:ro,env=A:1+B:x]"
    assert suite.target(name).cpus == 2.5
    assert list(suite.target(name).volumes) == ["/data:/data:ro"]
    assert label(True) == "true" and label(None) == "null" and label(["a b", "c"]) == "a_b+c"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # a bad value fails as the same value on the target would, at the value's line
        (("cpus: [1, -2]", None), "suite.yaml:10: targets[1].matrix.cpus[1]: Input should be"),
        (("runtime: [runc, crun, runsc]", "runtime: [runc, 7]"), "suite.yaml:9: targets[1]"),
        (("runtime: [runc", "runtimez: [runc"), "suite.yaml:9: targets[1].matrix.runtimez: not a "
         "key of kind 'docker'"),
        (("runtime: [runc, crun, runsc]", "runtime: []"), "suite.yaml:9: targets[1].matrix."
         "runtime: an empty list"),
        (("runtime: [runc, crun, runsc]", "runtime: runc"), "targets[1].matrix.runtime: a list"),
        (("runtime: [runc", "name: [runc"), "suite.yaml:9: targets[1].matrix.name: 'name' cannot "
         "be swept"),
        (("runtime: [runc", "kind: [runc"), "targets[1].matrix.kind: 'kind' cannot be swept"),
        (("runtime: [runc", "matrix: [runc"), "targets[1].matrix.matrix: 'matrix' cannot be"),
        (("runtime: [runc, crun, runsc]", "runtime: [runc, crun, runc]"), "suite.yaml:9: "
         "targets[1].matrix.runtime[2]: duplicate name 'ctr[runtime=runc,network=none]'"),
        (("build: true", "build: true\n    runtime: runc"), "suite.yaml:10: targets[1].matrix."
         "runtime: 'runtime' is set on the entry too"),
        (("network: [none, bridge]", "network: [none, bridge]\n      exclude: [{runtime: kata}]"),
         "suite.yaml:11: targets[1].matrix.exclude[0]: matches no combination"),
        (("network: [none, bridge]", "network: [none, bridge]\n      exclude: [{cpus: 1}]"),
         "suite.yaml:11: targets[1].matrix.exclude[0].cpus: not a swept key"),
        (("network: [none, bridge]", "network: [none, bridge]\n      exclude: [{network: none},"
          " {network: bridge}]"), "suite.yaml:11: targets[1].matrix.exclude: excludes every"),
        (("matrix: {num_workers: [0, 2]}", "matrix: {num_workers: [0, 1000]}"),
         "suite.yaml:18: workloads[1].matrix.num_workers[1]: Input should be less than or equal"),
        (("matrix: {num_workers: [0, 2]}", "matrix: {}"), "workloads[1].matrix: a mapping"),
        (("matrix: {num_workers: [0, 2]}", "matrix: {steps: [1]}"), "suite.yaml:18: workloads[1]."
         "matrix.steps: not a key of kind 'data_loading'"),
    ],
)  # fmt: skip
def test_every_mistake_is_one_located_line(change: tuple[str, str | None], expected: str) -> None:
    old, new = change
    text = SUITE.replace("network: [none", f"{old}\n      network: [none") if new is None else (
        SUITE.replace(old, new, 1)
    )  # fmt: skip
    assert text != SUITE
    found = error(text)
    assert found.startswith(expected) if expected.startswith("suite") else expected in found, found


def test_a_bad_value_reads_as_it_does_written_on_the_target() -> None:
    direct = error(SUITE.replace("    build: true\n    matrix:", "    cpus: -2\n    matrix:", 1))
    swept = error(SUITE.replace("network: [none", "cpus: [-2]\n      network: [none"))
    assert direct.split(": ", 2)[2] == swept.split(": ", 2)[2]


def test_names_that_collide_with_another_entry_are_refused() -> None:
    text = SUITE.replace("  - {name: c, kind", "  - {name: load, kind: command, argv: [a]}\n"
                         "  - {name: c, kind")  # fmt: skip
    assert "workloads[2].name: duplicate name 'load'" in error(text)


def test_baseline_true_on_a_matrix_target_is_ambiguous() -> None:
    text = SUITE.replace("{name: bare, kind: local, baseline: true}", "{name: bare, kind: local}")
    found = error(text.replace("build: true\n", "build: true\n    baseline: true\n"))
    assert found.startswith("suite.yaml:8: targets[1].baseline: a matrix target is 6 targets")
    assert "baseline: {runtime: runc, network: none}" in found


def test_baseline_names_one_combination() -> None:
    text = SUITE.replace("{name: bare, kind: local, baseline: true}", "{name: bare, kind: local}")
    chosen = text.replace(
        "build: true\n", "build: true\n    baseline: {runtime: runc, network: none}\n"
    )
    suite = parse_suite(chosen)
    assert suite.baseline == "ctr[runtime=runc,network=none]"
    assert sum(t.baseline for t in suite.targets) == 1
    partial = text.replace("build: true\n", "build: true\n    baseline: {runtime: runc}\n")
    assert "targets[1].baseline: matches 2 combinations" in error(partial)
    wrong = text.replace(
        "build: true\n", "build: true\n    baseline: {runtime: kata, network: none}\n"
    )
    assert "targets[1].baseline: matches no combination" in error(wrong)
    two = chosen.replace("{name: bare, kind: local}", "{name: bare, kind: local, baseline: true}")
    assert "only one target can be baseline" in error(two)


def test_a_matrix_too_large_is_refused_before_it_is_enumerated() -> None:
    values = ", ".join(str(n) for n in range(1, 40))
    text = SUITE.replace(
        "network: [none, bridge]", f"network: [none, bridge]\n      cpus: [{values}]\n"
        f"      shm_size: [{', '.join(f'{n}m' for n in range(1, 40))}]",
    )  # fmt: skip
    assert "targets[1].matrix: the matrix makes 9126 combinations; at most 1000" in error(text)


def test_the_header_counts_cells_and_says_when_nothing_was_run_before(tmp_path) -> None:
    suite = parse_suite(SUITE)
    text = header(suite, build_plan(suite), tmp_path)
    assert (
        text
        == "42 cells (7 targets x 3 workloads x 2 repetitions), no earlier run to estimate from"
    )


def test_validate_lists_what_each_matrix_expands_to(tmp_path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    done = CliRunner().invoke(main, ["validate", str(suite)], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "7 targets × 3 workloads × 2 repetitions = 42 cells" in done.output
    assert "  target ctr[runtime=runsc,network=bridge]\n" in done.output
    assert "  workload load[num_workers=2]\n" in done.output


def test_a_bad_matrix_exits_2_with_one_line(tmp_path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.replace("[runc, crun, runsc]", "[]"))
    done = CliRunner().invoke(main, ["validate", str(suite)])
    assert done.exit_code == 2
    assert done.output.strip().endswith(
        "targets[1].matrix.runtime: an empty list: give at least one value to sweep"
    )
    assert len(done.output.strip().splitlines()) == 1
