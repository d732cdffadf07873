"""Suite schema: valid files load, every kind of mistake is a located one-line error."""

from __future__ import annotations

import pytest

from bench.errors import SuiteError
from bench.suite import load_suite, parse_suite

GOOD = """\
name: demo
repetitions: 2
targets:
  - {name: bare, kind: local, baseline: true}
workloads:
  - {name: train, kind: train_step, model: cnn, batch_size: 8, steps: 3, warmup_steps: 1}
  - {name: infer, kind: inference, scenario: offline, batch_size: 32, requests: 5}
  - {name: load, kind: data_loading, samples: 10, sample_bytes: 64, batch_size: 2, num_workers: 0}
"""


def test_valid_suite_loads_with_defaults() -> None:
    suite = parse_suite(GOOD)
    assert suite.name == "demo"
    assert suite.order == "interleaved"
    assert suite.baseline == "bare"
    assert [w.kind for w in suite.workloads] == ["train_step", "inference", "data_loading"]
    assert suite.workload("train").warmup_steps == 1
    assert suite.workload("load").epochs == 1
    assert suite.target("bare").kind == "local"


def test_quickstart_suite_is_valid() -> None:
    suite = load_suite("suites/quickstart.yaml")
    assert {w.kind for w in suite.workloads} == {"train_step", "inference", "data_loading"}


def error_of(text: str) -> str:
    with pytest.raises(SuiteError) as info:
        parse_suite(text, source="s.yaml")
    assert info.value.exit_code == 2
    message = info.value.one_line()
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        (
            "{name: bare, kind: local, baseline: true}",
            "{name: bare, kind: lcoal}",
            "s.yaml:4: targets[0].kind: unknown target kind 'lcoal' (available: local",
        ),
        ("baseline: true}", "baseline: true, hots: x}", "s.yaml:4: targets[0].hots: unknown key"),
        ("batch_size: 8,", "batch_size: 0,", "s.yaml:6: workloads[0].batch_size: "),
        ("steps: 3,", "steps: -3,", "s.yaml:6: workloads[0].steps: "),
        (
            "kind: inference",
            "kind: inferense",
            "s.yaml:7: workloads[1].kind: unknown kind 'inferense'",
        ),
        ("scenario: offline", "scenario: server", "s.yaml:7: workloads[1].scenario: "),
        ("model: cnn", "model: resnet50", "s.yaml:6: workloads[0].model: "),
        ("repetitions: 2", "repetitions: 0", "s.yaml:2: repetitions: "),
        ("repetitions: 2", "repetitons: 2", "s.yaml:2: repetitons: unknown key"),
        ("name: infer,", "name: train,", "s.yaml:7: workloads[1].name: duplicate name 'train'"),
        ("name: demo", "name: ../evil", "s.yaml:1: name: "),
    ],
)
def test_mistakes_are_located(replace: str, by: str, expected: str) -> None:
    assert replace in GOOD
    assert error_of(GOOD.replace(replace, by)).startswith(expected)


def test_missing_key_names_the_path() -> None:
    message = error_of(
        GOOD.replace("  - {name: load, kind: data_loading,", "  - {kind: data_loading,")
    )
    assert message.startswith("s.yaml:8: workloads[2].name: required key is missing")


def test_missing_workload_kind() -> None:
    message = error_of(GOOD.replace("kind: train_step, ", ""))
    assert message.startswith("s.yaml:6: workloads[0].kind: required key is missing")


def test_duplicate_target_names() -> None:
    text = GOOD.replace("baseline: true}", "baseline: true}\n  - {name: bare, kind: local}")
    assert error_of(text).startswith("s.yaml:5: targets[1].name: duplicate name 'bare'")


def test_two_baselines_rejected() -> None:
    text = GOOD.replace(
        "baseline: true}", "baseline: true}\n  - {name: b2, kind: local, baseline: true}"
    )
    assert "targets[1].baseline: only one target can be baseline" in error_of(text)


def test_overhead_without_baseline() -> None:
    text = GOOD.replace(", baseline: true", "").replace(
        "repetitions: 2", "repetitions: 2\noverhead: true"
    )
    assert error_of(text).startswith("s.yaml:3: overhead: overhead: true needs one target")


def test_overhead_with_baseline_is_fine() -> None:
    assert parse_suite(GOOD.replace("repetitions: 2", "overhead: true")).overhead is True


def test_yaml_syntax_error_has_line() -> None:
    assert error_of("name: x\ntargets: [\n").startswith("s.yaml:3: invalid YAML")


def test_top_level_must_be_mapping() -> None:
    assert "a suite must be a mapping" in error_of("- a\n- b\n")


def test_missing_file(tmp_path) -> None:
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(tmp_path / "nope.yaml")


def test_empty_lists_rejected() -> None:
    assert error_of(GOOD.split("workloads:")[0] + "workloads: []\n").startswith(
        "s.yaml:5: workloads: "
    )


def test_data_loading_warmup_must_leave_measured_batches() -> None:
    text = GOOD.replace(
        "batch_size: 2, num_workers: 0}", "batch_size: 5, num_workers: 0, warmup_batches: 2}"
    )
    message = error_of(text)
    assert message.startswith("s.yaml:8: workloads[2]: ")
    assert "warmup_batches (2) must be less than the number of batches (2 " in message
