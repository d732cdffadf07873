"""Suite schema: valid files load, every kind of mistake is a located one-line error, and no
number, shape or file a suite can give crashes bench or exhausts it."""

from __future__ import annotations

import resource
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.errors import SuiteError, TargetError
from bench.suite import load_suite, parse_suite
from bench.targets.registry import make_target
from tests.conftest import bench_cli

GOOD = """\
name: demo
repetitions: 2
targets:
  - {name: bare, kind: local, baseline: true}
workloads:
  - {name: train, kind: train_step, model: cnn, batch_size: 8, steps: 3, warmup_steps: 1}
  - {name: infer, kind: inference, scenario: offline, batch_size: 32, min_query_count: 64}
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
    assert {w.kind for w in suite.workloads} == {"train_step", "inference"}
    assert suite.repetitions >= 5 and suite.order == "interleaved"  # intervals, drift spread
    tour = load_suite("suites/tour.yaml")
    assert {w.kind for w in tour.workloads} == {"train_step", "inference", "data_loading"}


@pytest.mark.parametrize(
    "path", sorted(p.name for p in (Path(__file__).parent.parent / "suites").glob("*.yaml"))
)
def test_every_shipped_suite_is_valid(path: str) -> None:
    assert load_suite(f"suites/{path}").targets


def test_the_runtimes_suite_sweeps_every_runtime() -> None:
    names = [t.name for t in load_suite("suites/runtimes.yaml").targets]
    for runtime in ("runc", "crun", "runsc"):
        assert f"ctr[runtime={runtime},shm_size=64m]" in names


REAL = """\
name: real
targets:
  - {name: bare, kind: local}
workloads:
  - {name: train-r18, kind: train_step, model: resnet18, image_size: 64, batch_size: 4, steps: 4,
     warmup_steps: 1, precision: bf16, compile: false, location: image,
     dataset: {format: jpeg, samples: 64}}
  - {name: gen, kind: generate, model: llama, preset: tiny, prompt_tokens: 16, new_tokens: 8,
     batch_size: 1, requests: 4}
  - {name: load-jpeg, kind: data_loading, dataset: {format: jpeg, samples: 128, image_size: 64},
     batch_size: 16, num_workers: 2, location: volume}
"""


def test_real_workloads_keep_their_published_spellings() -> None:
    """Suites written elsewhere use these keys: they must keep validating as they are."""
    suite = parse_suite(REAL, source="s.yaml")
    train, gen, load = suite.workloads
    assert (train.model, train.dataset.format, train.location) == ("resnet18", "jpeg", "image")
    assert (gen.kind, gen.preset, gen.new_tokens) == ("generate", "tiny", 8)
    assert (load.dataset.image_size, load.location) == (64, "volume")
    assert load_suite("suites/realistic.yaml").name == "realistic"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("samples: 64}", "samples: 64, colour: rgb}", "s.yaml:7: workloads[0].dataset.colour: "),
        ("location: image,", "", "s.yaml:5: workloads[0]: dataset needs location (image, volume"),
        ("preset: tiny", "preset: base", "s.yaml:8: workloads[1]: preset 'base' is not a size"),
        ("image_size: 64, batch", "image_size: 64, seq_len: 8, batch", "seq_len applies to"),
    ],
)
def test_real_workload_mistakes_are_located(old: str, new: str, message: str) -> None:
    assert message in error_of(REAL.replace(old, new, 1))


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
        ("scenario: offline", "scenario: serve", "s.yaml:7: workloads[1].scenario: "),
        ("model: cnn", "model: resnet152", "s.yaml:6: workloads[0].model: "),
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


def test_a_target_runs_only_workloads_the_suite_has() -> None:
    text = GOOD.replace("baseline: true}", "baseline: true, workloads: [train, infr]}")
    assert error_of(text).startswith(
        "s.yaml:4: targets[0].workloads[1]: no workload named 'infr' in this suite"
    )
    good = parse_suite(GOOD.replace("baseline: true}", "baseline: true, workloads: [load]}"))
    assert good.targets[0].workloads == ["load"]


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


# --- Bad numbers, shapes and files: exit 2 and one located line from the real CLI ------------

DOCKER = """\
name: s
targets:
  - name: c
    kind: docker
    image: busybox
workloads:
  - {name: t, kind: train_step, steps: 3}
"""
STATIC = """\
name: s
targets:
  - name: v
    kind: vm
    provisioner: static
    host: 127.0.0.1
    port: 1
    connect_retries: 0
    start: [/bin/true]
    stop: [/bin/true]
workloads:
  - {name: t, kind: train_step, steps: 3}
"""
QEMU = DOCKER.replace("kind: docker\n    image: busybox", "kind: vm\n    vcpus: 1")
LOCAL = """\
name: s
targets:
  - {name: b, kind: local}
workloads:
  - {name: t, kind: train_step}
"""
TARGET = "  - name: c\n    kind: docker\n    image: busybox\n"
NOT_EXECUTABLE = "start.sh"  # written beside the suite without its execute bit
BOMB = "".join(
    f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join([f'*{chr(96 + i)}' if i else 'x'] * 9)}]\n"
    for i in range(9)
)

# case: (suite text, where the error must point: ":line: key.path: message start")
BAD_SUITES = {
    "docker-memory-infg": (DOCKER, ":6: targets[0].memory: invalid size 'infg'"),
    "docker-memory-1e999g": (DOCKER, ":6: targets[0].memory: invalid size '1e999g'"),
    "vm-memory-infg": (QEMU, ":6: targets[0].memory: invalid size 'infg'"),
    "vm-memory-1e999g": (QEMU, ":6: targets[0].memory: invalid size '1e999g'"),
    "cpus-inf": (DOCKER, ":6: targets[0].cpus: Input should be a finite number"),
    "cpus-1e-12": (DOCKER, ":6: targets[0].cpus: Input should be greater than or equal to 0.01"),
    "static-start-empty": (STATIC, ":9: targets[0].start: an empty command"),
    "static-start-not-executable": (STATIC, ":9: targets[0].start: "),
    "static-start-shell-operator": (STATIC, ":9: targets[0].start: shell operator '&&' in a"),
    "timeout-inf": (DOCKER, ":7: workloads[0].timeout_s: Input should be a finite number"),
    "timeout-nan": (DOCKER, ":7: workloads[0].timeout_s: Input should be a finite number"),
    "repetitions-1e9": (DOCKER, ":2: repetitions: Input should be less than or equal to 10000"),
    "cells-over-bound": (DOCKER, ":2: repetitions: the plan has 110000 cells"),
    "duplicate-top-level-key": (DOCKER, ":6: targets: duplicate key (first on line 2)"),
    "alias-bomb": (BOMB, ":6: more than 100000 values once aliases are expanded"),
}
EDITS = {
    "docker-memory-infg": ("image: busybox", "image: busybox\n    memory: infg"),
    "docker-memory-1e999g": ("image: busybox", "image: busybox\n    memory: 1e999g"),
    "vm-memory-infg": ("vcpus: 1", "vcpus: 1\n    memory: infg"),
    "vm-memory-1e999g": ("vcpus: 1", "vcpus: 1\n    memory: 1e999g"),
    "cpus-inf": ("image: busybox", "image: busybox\n    cpus: .inf"),
    "cpus-1e-12": ("image: busybox", "image: busybox\n    cpus: 1e-12"),
    "static-start-empty": ("start: [/bin/true]", "start: []"),
    "static-start-not-executable": ("start: [/bin/true]", "start: [{dir}/" + NOT_EXECUTABLE + "]"),
    "static-start-shell-operator": ("start: [/bin/true]", "start: virsh start vm && sleep 5"),
    "timeout-inf": ("steps: 3}", "steps: 3, timeout_s: .inf}"),
    "timeout-nan": ("steps: 3}", "steps: 3, timeout_s: .nan}"),
    "repetitions-1e9": ("name: s", "name: s\nrepetitions: 1.0e+9"),
    "cells-over-bound": ("name: s", "name: s\nrepetitions: 10000"),
    "duplicate-top-level-key": ("workloads:", "targets:\n" + TARGET + "workloads:"),
}


def _limit_memory() -> None:
    """Run the CLI in 1 GiB of address space (it needs about 0.4): "bounded memory" is checked
    for every bad input, and an unbounded one fails here instead of swapping the machine."""
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def _suite_text(case: str, directory: Path) -> str:
    text, _ = BAD_SUITES[case]
    if case in EDITS:
        old, new = EDITS[case]
        assert old in text
        text = text.replace(old, new.replace("{dir}", str(directory)))
    if case == "cells-over-bound":  # 11 targets x 1 workload x 10000 repetitions
        extra = "".join(TARGET.replace("name: c", f"name: c{i}") for i in range(10))
        text = text.replace("workloads:", extra + "workloads:")
    return text


def _cli_cases(root: Path) -> dict[str, tuple[list[str], str]]:
    """Every bad input as (bench arguments, expected start of the error after 'error: ')."""
    cases: dict[str, tuple[list[str], str]] = {}
    for case, (_, where) in BAD_SUITES.items():
        directory = root / case
        directory.mkdir()
        (directory / NOT_EXECUTABLE).write_text("#!/bin/sh\nexit 0\n")
        path = directory / "suite.yaml"
        path.write_text(_suite_text(case, directory))
        cases[case] = (["validate", str(path)], f"{path}{where}")
    run_dir = root / "results"
    start_empty = cases["static-start-empty"][0][1]
    cases["run-static-start-empty"] = (
        ["run", start_empty, "--results-dir", str(run_dir)],
        cases["static-start-empty"][1],
    )
    cases["run-id-trailing-newline"] = (
        ["run", start_empty, "--results-dir", str(run_dir), "--run-id", "id\n"],
        "--run-id 'id\\n': use letters",
    )
    not_utf8 = root / "latin1.yaml"
    not_utf8.write_bytes(
        LOCAL.replace("name: s", "name: s\ndescription: caf\xe9").encode("latin-1")
    )
    cases["not-utf8"] = (["validate", str(not_utf8)], f"{not_utf8}:2: not UTF-8 text")
    cases["directory"] = (["validate", str(root)], f"{root}: cannot read suite file: Is a dir")
    huge = root / "huge.yaml"
    huge.write_text(LOCAL + "#" * (1 << 20))
    cases["huge-file"] = (["validate", str(huge)], f"{huge}: suite file larger than 1 MiB")
    return cases


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory) -> dict[str, tuple[str, subprocess.CompletedProcess[str]]]:
    """All the bad inputs through the real CLI at once (each is a 1 s interpreter start)."""
    cases = _cli_cases(tmp_path_factory.mktemp("bad"))

    def call(args: list[str]) -> subprocess.CompletedProcess[str]:
        return bench_cli(*args, timeout=120, preexec_fn=_limit_memory)

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = pool.map(call, [args for args, _ in cases.values()])
        done = dict(zip(cases, runs, strict=True))
    return {case: (cases[case][1], done[case]) for case in cases}


CLI_CASES = [
    *BAD_SUITES,
    "run-static-start-empty",
    "run-id-trailing-newline",
    "not-utf8",
    "directory",
    "huge-file",
]


@pytest.mark.slow  # about 20 interpreter starts, four at a time: 10 to 20 s in all
@pytest.mark.parametrize("case", CLI_CASES)
def test_bad_input_is_one_located_line(cli_results, case: str) -> None:
    expected, done = cli_results[case]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {expected}"), lines[0]


def test_a_start_script_that_lost_its_execute_bit_fails_the_cell_in_one_line(tmp_path) -> None:
    """Checked at validation; if the bit goes between validation and the boot, the start
    command's OSError is a TargetError (the cell fails), not a traceback."""
    script = tmp_path / "start.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    config = parse_suite(STATIC.replace("[/bin/true]", f"[{script}]", 1)).targets[0]
    script.chmod(0o644)
    with pytest.raises(TargetError, match=r"start command cannot be run: .*start.sh: Permission"):
        make_target(config)._run("start", config.start)


def test_bounds_hold_for_every_number() -> None:
    """In-process (no interpreter start): the limits of the other numeric options."""
    workload = "{name: t, kind: data_loading}"
    over = {
        "threads: 5000": "threads",
        "batch_size: 100000": "batch_size",
        "samples: 100000000": "samples",
        "sample_bytes: 2147483648": "sample_bytes",
        "num_workers: 1000": "num_workers",
        "epochs: 100000": "epochs",
        "warmup_batches: 10000000": "warmup_batches",
    }
    for setting, key in over.items():
        text = LOCAL.replace("{name: t, kind: train_step}", workload.replace("}", f", {setting}}}"))
        assert f"workloads[0].{key}: Input should be less than or equal to" in error_of(text)
    big = workload.replace("}", ", samples: 1000000, sample_bytes: 1073741824}")
    assert "at most 256 GiB" in error_of(LOCAL.replace("{name: t, kind: train_step}", big))
    for setting, key in {
        "lr: .inf": "lr",
        "steps: 2000000": "steps",
        "warmup_steps: -1": "warmup_steps",
        "timeout_s: 1e9": "timeout_s",
    }.items():
        text = LOCAL.replace("kind: train_step}", f"kind: train_step, {setting}}}")
        assert f"workloads[0].{key}: " in error_of(text)
    for text, key in {
        DOCKER.replace("busybox", "busybox\n    shm_size: 17t"): "shm_size",
        DOCKER.replace("busybox", "busybox\n    memory: 100000g"): "memory",
        DOCKER.replace("busybox", "busybox\n    gpus: 100000"): "gpus",
        QEMU.replace("vcpus: 1", "vcpus: 100000"): "vcpus",
        QEMU.replace("vcpus: 1", "vcpus: 1\n    boot_timeout_s: .inf"): "boot_timeout_s",
        STATIC.replace("port: 1", "port: 1\n    command_timeout_s: 1e300"): "command_timeout_s",
        STATIC.replace("connect_retries: 0", "connect_retries: 1000"): "connect_retries",
        STATIC.replace("port: 1", "port: 1\n    connect_timeout_s: .nan"): "connect_timeout_s",
        LOCAL.replace("name: s", "name: s\nseed: 1e30"): "seed",
        LOCAL.replace("name: s", "name: s\nmin_iterations: 1e10"): "min_iterations",
    }.items():
        assert f"{key}: " in error_of(text), key


def test_more_located_refusals() -> None:
    """The same mechanisms as the CLI cases above, in-process."""
    cpus = DOCKER.replace("busybox", "busybox\n    cpus: .nan")
    assert error_of(cpus).startswith("s.yaml:6: targets[0].cpus: Input should be a finite")
    stop = STATIC.replace("stop: [/bin/true]", "stop: [virsh, shutdown, vm, ';', sleep, 5]")
    assert error_of(stop).startswith("s.yaml:10: targets[0].stop: shell operator ';' in a")
    redirect = STATIC.replace("stop: [/bin/true]", "stop: virsh shutdown vm 2>/dev/null")
    assert "start: [/path/to/script.sh, arg]" in error_of(redirect)
    twice = DOCKER.replace("busybox", "busybox\n    image: alpine")
    assert error_of(twice).startswith("s.yaml:6: targets[0].image: duplicate key (first on line 5)")
    deep = "a: " + "[" * 200 + "]" * 200
    assert "nested deeper than 50 levels" in error_of(deep)
    wide = "a: [" + ", ".join(["x"] * 100_001) + "]"
    assert "more than 100000 values" in error_of(wide)


def test_merge_keys_may_override_but_plain_keys_may_not_repeat() -> None:
    text = LOCAL.replace(
        "  - {name: b, kind: local}\n",
        "  - &base {name: b, kind: local}\n  - {<<: *base, name: b2}\n",
    )
    assert [t.name for t in parse_suite(text).targets] == ["b", "b2"]
    assert "duplicate key" in error_of(LOCAL + "name: again\n")


def test_a_cycle_of_aliases_is_refused() -> None:
    assert "an alias refers to a node that contains it" in error_of(LOCAL + "x: &a [*a]\n")


def test_start_and_stop_accept_words_without_operators(tmp_path) -> None:
    script = tmp_path / "boot vm.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    text = STATIC.replace("[/bin/true]", f"['{script}', --name, 'a b']", 1)
    assert parse_suite(text).targets[0].start == [str(script), "--name", "a b"]
    assert "no such file" in error_of(STATIC.replace("[/bin/true]", "[./missing.sh]", 1))
