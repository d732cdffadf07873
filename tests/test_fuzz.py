"""Property-based tests of the two loaders that read files from outside: the suite loader and
the results loader. Whatever bytes they are given, the answer is a value or one bench error
(exit 2, one line), never another exception, and it comes in bounded time and memory."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import tracemalloc
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bench import limits
from bench.errors import ResultsError, SuiteError
from bench.plan import build_plan
from bench.results import (
    CellRecord,
    ResultStore,
    Sample,
    load,
    load_cells,
    load_manifest,
    load_raw,
    tag_raw,
)
from bench.suite import Suite, load_suite, parse_suite
from bench.suitefile import MAX_NODES
from tests.conftest import bench_cli

FUZZ = settings(
    max_examples=150,
    deadline=5000,  # ms; generous for a loaded CI machine, a hang still fails
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow],
)

GOOD = """\
name: fuzz
repetitions: 2
targets:
  - {name: bare, kind: local, baseline: true}
  - {name: box, kind: docker, image: busybox, cpus: 1.5, memory: 512m}
workloads:
  - {name: train, kind: train_step, batch_size: 8, steps: 3, warmup_steps: 1}
  - {name: load, kind: data_loading, samples: 10, sample_bytes: 64, batch_size: 2}
"""


def suite_or_error(text: str) -> Suite | None:
    """The suite, or None after checking that the error is one located line."""
    try:
        suite = parse_suite(text, source="f.yaml")
    except SuiteError as exc:
        line = exc.one_line()
        assert exc.exit_code == 2 and "\n" not in line and line.startswith("f.yaml")
        event("refused")
        return None
    event("valid")
    return suite


def assert_sane(suite: Suite) -> None:
    """A suite that validates has only finite numbers and a plan that fits the bound."""

    def walk(value: Any) -> None:
        if isinstance(value, float):
            assert math.isfinite(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(suite.model_dump())
    cells = len(suite.targets) * len(suite.workloads) * suite.repetitions
    assert cells <= limits.MAX_CELLS
    assert len(build_plan(suite)) == cells


# --- the suite loader -------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2048))
def test_any_bytes_in_a_suite_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "s.yaml")
        path.write_bytes(data)
        try:
            assert_sane(load_suite(path))
        except SuiteError as exc:
            assert "\n" not in exc.one_line() and exc.one_line().startswith(str(path))


@FUZZ
@given(st.text(max_size=1024))
def test_any_text(text: str) -> None:
    suite = suite_or_error(text)
    if suite is not None:
        assert_sane(suite)


@FUZZ
@given(st.data())
def test_a_good_suite_cut_spliced_and_repeated(data: st.DataObject) -> None:
    """Edits of a valid suite: what a hand edit gone wrong looks like."""
    text = GOOD
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(at, min(len(text), at + 40)))
        insert = data.draw(
            st.one_of(
                st.text(alphabet=" \n-:[]{}&*!|>'\",#?<%@`0123456789.eE+", max_size=12),
                st.sampled_from(["\n  - ", ": .inf", ": .nan", ": 1e999", ": -1", "&a ", "*a"]),
                st.just(text[at:end]),  # a repeated span: duplicate keys, lines, items
            )
        )
        text = text[:at] + insert + text[end:]
    suite = suite_or_error(text)
    if suite is not None:
        assert_sane(suite)


NUMBERS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["inf", "nan", "1e999", "infg", "1e999g", "0x10", "-1", "4g", "1.5", ""]),
    st.booleans(),
    st.none(),
)
WORKLOAD_KEYS = ["batch_size", "steps", "warmup_steps", "timeout_s", "threads", "lr", "requests"]
TARGET_KEYS = ["cpus", "memory", "shm_size", "gpus", "connect_timeout_s", "vcpus"]


@FUZZ
@given(
    st.dictionaries(st.sampled_from(WORKLOAD_KEYS), NUMBERS, max_size=3),
    st.dictionaries(st.sampled_from(TARGET_KEYS[:4]), NUMBERS, max_size=3),
    st.dictionaries(st.sampled_from(["repetitions", "seed", "min_iterations"]), NUMBERS),
)
def test_any_number_anywhere(workload: dict, target: dict, top: dict) -> None:
    """Every kind of number in every numeric key: refused in one line, or finite and bounded."""
    doc = yaml.safe_load(GOOD)
    doc["workloads"][0].update(workload)
    doc["targets"][1].update(target)
    doc.update(top)
    suite = suite_or_error(yaml.safe_dump(doc))
    if suite is not None:
        assert_sane(suite)


@settings(FUZZ, max_examples=60)
@given(st.integers(1, 12), st.integers(1, 12), st.booleans())
def test_alias_bombs_are_refused_before_they_expand(depth: int, width: int, flow: bool) -> None:
    """``&a [x, x…]``, ``&b [*a, *a…]``…: width**depth values once expanded. Refused by count,
    in memory proportional to the text (measured with tracemalloc, not with a clock)."""
    lines = ["name: bomb", "l0: &l0 [" + ", ".join(["x"] * width) + "]"]
    for level in range(1, depth):
        refs = [f"*l{level - 1}"] * width
        body = "[" + ", ".join(refs) + "]" if flow else "\n" + "".join(f"  - {r}\n" for r in refs)
        lines.append(f"l{level}: &l{level} {body.rstrip()}")
    text = "\n".join(lines) + "\n"
    tracemalloc.start()
    try:
        with pytest.raises(SuiteError) as info:
            parse_suite(text, source="b.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expanded = sum(width**level for level in range(1, depth + 1))
    if expanded > MAX_NODES:
        assert "once aliases are expanded" in info.value.one_line()
    assert peak < 2_000_000 + 20_000 * len(text)


@settings(FUZZ, max_examples=40)
@given(st.integers(40, 3000), st.sampled_from(["[", "{a: ", "- ", "? "]))
def test_deep_nesting_is_refused(depth: int, opener: str) -> None:
    closer = {"[": "]", "{a: ": "}"}.get(opener, "")
    text = "a: " + opener * depth + "x" + closer * depth if closer else opener * depth + "x"
    suite = suite_or_error(text)
    assert suite is None


def test_suite_files_the_loader_must_refuse(tmp_path: Path) -> None:
    """A directory, an empty file, more than 1 MiB, and bytes that are not UTF-8."""
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(GOOD.encode() + b"#" * (1 << 20))
    empty = tmp_path / "empty.yaml"
    empty.write_bytes(b"")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(GOOD.replace("fuzz", "caf\xe9").encode("latin-1"))
    expected = {
        tmp_path: "cannot read suite file",
        empty: "a suite must be a mapping",
        huge: "suite file larger than 1 MiB",
        latin: ":1: not UTF-8 text",
    }
    for path, message in expected.items():
        with pytest.raises(SuiteError, match=message):
            load_suite(path)


# --- the results loader -----------------------------------------------------------------------


@cache
def good_run() -> Path:
    """A run directory of three committed cells (built once, copied per example)."""
    root = Path(tempfile.mkdtemp(prefix="fuzz-run-"))
    store = ResultStore(root, "s", "r1")
    store.create({"status": "complete", "suite": {"name": "s"}})
    for cell in range(3):
        record = CellRecord(cell, "bare", "local", "w", "train_step", cell, "ok", "t0", "t1", 1.0)
        sample = Sample("r1", "bare", "local", "w", "train_step", cell, "m", 1.0 + cell, "s", cell)
        store.add_cell(record, [sample], {"step_time_s": [0.1, 0.2]})
    return store.path


def loads(run: Path) -> tuple[Any, Any] | None:
    """(samples, cells) of ``run``, or None after checking the error is one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            samples, cells = load(run), load_cells(run)
            tag_raw(load_raw(run), cells)
            return samples, cells
    except ResultsError as exc:
        assert exc.exit_code == 2 and "\n" not in exc.one_line()
        return None


GARBAGE_LINES = st.lists(
    st.one_of(
        st.binary(max_size=80).filter(lambda b: b"\n" not in b),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
            max_leaves=6,
        ).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"cell": st.one_of(st.integers(), st.text(max_size=3)), "value": st.floats()}
        ).map(lambda v: json.dumps(v).encode()),
        st.just(b"[" * 100_000),
    ),
    min_size=1,
    max_size=4,
)


@FUZZ
@given(st.sampled_from(["cells.jsonl", "samples.jsonl"]), st.integers(0, 3), GARBAGE_LINES)
def test_corrupt_lines_cost_only_themselves(name: str, at: int, garbage: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        run = Path(shutil.copytree(good_run(), Path(directory, "r1")))
        lines = (run / name).read_bytes().splitlines()
        (run / name).write_bytes(b"\n".join(lines[:at] + garbage + lines[at:]) + b"\n")
        loaded = loads(run)
        assert loaded is not None  # the good rows are there: never an error
        samples, cells = loaded
        assert set(cells["cell"]) >= {0, 1, 2}
        assert set(samples["cell"]) == {0, 1, 2}


@FUZZ
@given(st.sampled_from(["manifest.json", "cells.jsonl", "samples.jsonl", "raw"]), st.binary())
def test_a_whole_file_replaced_by_garbage(name: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        run = Path(shutil.copytree(good_run(), Path(directory, "r1")))
        target = run / name
        if name == "raw":
            target = next(target.iterdir())
        target.write_bytes(data)
        loads(run)
        try:
            assert isinstance(load_manifest(run), dict)
        except ResultsError as exc:
            assert "\n" not in exc.one_line()


def test_a_file_that_is_a_directory(tmp_path: Path) -> None:
    run = Path(shutil.copytree(good_run(), tmp_path / "r1"))
    (run / "cells.jsonl").unlink()
    (run / "cells.jsonl").mkdir()
    with pytest.raises(ResultsError, match=r"cells\.jsonl: cannot read"):
        load(run)


def test_a_corrupt_line_is_named_and_the_rest_loads(tmp_path: Path) -> None:
    run = Path(shutil.copytree(good_run(), tmp_path / "r1"))
    lines = (run / "cells.jsonl").read_text().splitlines()
    lines[1] = lines[1][:30]
    (run / "cells.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=rf"{run / 'cells.jsonl'}:2: malformed JSON"):
        assert list(load_cells(run)["cell"]) == [0, 2]
    assert list(load(run)["cell"]) == [0, 2]


MANIFESTS = {
    b"\xff\xfe{}": "malformed manifest: not UTF-8",
    b"[]": "malformed manifest: not a JSON object",
    b'{"suite": 1}': "malformed manifest: suite is not a JSON object",
    b'{"run_id": 1}': "malformed manifest: run_id is not a JSON string",
    b"[" * 100_000: "malformed manifest: malformed JSON: nested too deeply",
}


def test_garbage_manifests(tmp_path: Path) -> None:
    """In-process for each, through ``bench summary`` for two."""
    run = Path(shutil.copytree(good_run(), tmp_path / "r1"))
    for data, expected in MANIFESTS.items():
        (run / "manifest.json").write_bytes(data)
        with pytest.raises(ResultsError) as info:
            load_cells(run)
        assert info.value.one_line().startswith(f"{run / 'manifest.json'}: {expected}")
        if data in (b"\xff\xfe{}", b"[" * 100_000):
            done = bench_cli("summary", str(run))
            assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
            assert done.stderr.startswith(f"error: {run / 'manifest.json'}: {expected}")
            assert len(done.stderr.strip().splitlines()) == 1
