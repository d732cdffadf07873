"""The suite's workload models and the worker's option table agree.

The worker (``workloads/spec.py``) is the definition; bench derives its pydantic models from it
and adds upper bounds and the keys only the controller reads. These tests fail when the two
drift apart: an option on one side only, another default or choice, a bound that refuses a
default, or a value one side accepts and the other refuses.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError, create_model

from bench import limits, workloadmodels
from bench.suite import WORKLOAD_KINDS, DataLoading, Inference, TrainStep, Workload
from bench.workloadmodels import Generate
from workloads import spec

SUITE = TypeAdapter(Workload)


def suite_accepts(workload: dict[str, Any]) -> dict[str, Any] | None:
    """What the controller sends the worker for ``workload``, or None if the suite refuses it."""
    try:
        model = SUITE.validate_python({"name": "w", **workload})
    except ValidationError:
        return None
    return model.model_dump(mode="json", exclude={"timeout_s"})


def worker_accepts(workload: dict[str, Any]) -> dict[str, Any] | None:
    """The worker's filled-in workload, or None if it refuses it."""
    raw: dict[str, Any] = {"workload": {"name": "w", **workload}}
    if workload.get("location") in spec.LOCATIONS:  # as the runner does: where it staged them
        raw["assets"] = {"location": workload["location"]}
    try:
        return spec.validate(raw).workload
    except spec.SpecError:
        return None


def test_the_suite_has_a_model_for_each_of_the_workers_kinds() -> None:
    assert tuple(spec.KINDS) == WORKLOAD_KINDS
    named = (TrainStep, Inference, Generate, DataLoading)
    assert named == tuple(workloadmodels.MODELS[k] for k in list(spec.KINDS)[: len(named)])
    for kind, model in workloadmodels.MODELS.items():
        assert typing.get_args(model.model_fields["kind"].annotation) == (kind,)
        assert model.__doc__ == spec.KINDS[kind].summary


@pytest.mark.parametrize("kind", list(spec.KINDS))
def test_every_option_is_a_suite_key_with_the_workers_default_and_choices(kind: str) -> None:
    model = workloadmodels.MODELS[kind]
    options = spec.options(kind)
    fields = model.model_fields
    own = {"kind", *workloadmodels.CONTROLLER_ONLY}
    assert set(fields) - own == set(options), "an option exists on one side only"
    assert [f for f in fields if f not in own] == list(options), "options in another order"
    for name, option in options.items():
        if option.default is None and not option.optional:
            assert fields[name].is_required(), f"{name} has no default, so the suite needs it"
            continue
        default = fields[name].default
        assert (type(default), default) == (type(option.default), option.default), name
        if option.choices:
            annotation = fields[name].annotation
            if option.optional:
                annotation, none = typing.get_args(annotation)
                assert none is type(None), name
            assert typing.get_args(annotation) == option.choices, name


def every_option(options: dict[str, spec.Option]) -> dict[str, spec.Option]:
    """``options`` and the options of the objects among them, flattened by name."""
    out = {}
    for name, option in options.items():
        out.update(every_option(option.fields) if option.fields else {name: option})
    return out


def test_every_number_has_a_bench_bound_and_no_bound_is_stale() -> None:
    numbers = {
        name
        for kind in spec.KINDS
        for name, option in every_option(spec.options(kind)).items()
        if option.type in (int, float) and not option.choices
    }
    assert set(workloadmodels.UPPER) == numbers


REQUIRED = {
    "python": {"path": "/srv/code", "entry": "bench_entry:run"},
    "command": {"argv": ["true"]},
}
"""Valid values of the options a kind cannot do without, the base each case varies."""


def samples(kind: str) -> list[dict[str, Any]]:
    """Values at and around each option's limits, from the worker's table; with the kind's
    defaults, some combinations also cross the warmup rule (``samples: 1``)."""
    base = {"kind": kind, **REQUIRED.get(kind, {})}
    out: list[dict[str, Any]] = [{"kind": kind}, base, {**base, "no_such_option": 1}]
    for name, option in spec.options(kind).items():
        if option.fields:
            values = [{}, {"format": "raw"}, {"format": "tokens"}, {"no_such_key": 1}, 1]
        elif option.choices:
            values = [*option.choices, "no-such-choice", 1]
        elif option.type is bool:
            values = [True, False, 2, "maybe"]
        elif option.type is str:
            values = ["x", "", 1]
        elif option.type is list:
            values = [["a", "b"], [], "a", [1], [""]]
        elif option.type is dict:
            values = [{}, {"a": [1, {"b": None}]}, [1], "x"]
        elif option.type is int:
            assert option.ge is not None
            values = [option.ge, option.ge + 1, option.ge - 1, 1.5, "x"]
        else:
            assert option.gt is not None
            values = [option.gt + 0.5, 1, option.gt, option.gt - 1, math.inf, math.nan, "x"]
        values.append(None)
        out += [{**base, name: value} for value in values]
    return out


LOADING = [  # the warmup rule at its edge: 5 samples in batches of 2 read 3 batches per epoch
    {"samples": 5, "batch_size": 2, "warmup_batches": 2},
    {"samples": 5, "batch_size": 2, "warmup_batches": 3},
    {"samples": 5, "batch_size": 2, "epochs": 2, "warmup_batches": 5},
    {"samples": 5, "batch_size": 2, "epochs": 2, "warmup_batches": 6},
    {"samples": 1, "warmup_batches": 0},
]


@pytest.mark.parametrize("kind", list(spec.KINDS))
def test_suite_and_worker_accept_and_refuse_the_same_workloads(kind: str) -> None:
    """Within bench's upper bounds and for values of the JSON type the option asks for, both
    sides give the same verdict, and what the suite sends is what the worker fills in."""
    cases = samples(kind)
    if kind == "data_loading":
        cases += [{"kind": kind, **case} for case in LOADING]
    verdicts = set()
    for case in cases:
        sent, filled = suite_accepts(case), worker_accepts(case)
        assert (sent is None) == (filled is None), case
        assert sent is None or worker_accepts(sent) == filled == sent, case
        verdicts.add(sent is None)
    assert verdicts == {True, False}


def test_defaults_are_within_benchs_bounds() -> None:
    """Every default, given explicitly, passes the suite's bounds (pydantic does not check
    defaults, so an upper bound below one would go unnoticed)."""
    for kind in spec.KINDS:
        defaults = {name: o.default for name, o in spec.options(kind).items()}
        assert suite_accepts({"kind": kind, **defaults}) == worker_accepts({"kind": kind})


def test_bench_refuses_what_the_worker_would_run_only_above_its_bounds() -> None:
    """The one intended difference: the suite caps numbers (and a data-loading cell's dataset);
    the worker has no ceiling."""
    room = {  # so that only the bound is crossed, not the dataset size or the warmup rule
        "sample_bytes": {"samples": 200},
        "warmup_batches": {"samples": 2 * limits.MAX_ITERATIONS, "batch_size": 1},
        "image_size": {"model": "resnet18"},
        "seq_len": {"model": "llama"},
        "samples_per_query": {"scenario": "multi_stream"},
        "target_qps": {"scenario": "server", "target_latency_s": 0.1},
        "target_latency_s": {"scenario": "server", "target_qps": 10},
        **{key: {"model": "llama"} for key in spec.SIZING},
        # one head over the whole width, so that the heads still divide the hidden size
        "hidden": {"model": "llama", "heads": 1, "kv_heads": 1},
        "heads": {"model": "llama", "hidden": limits.MAX_WIDTH + 1, "kv_heads": 1},
        "kv_heads": {
            "model": "llama",
            "hidden": limits.MAX_WIDTH + 1,
            "heads": 1 + limits.MAX_WIDTH,
        },
    }
    for name, upper in workloadmodels.UPPER.items():
        kind = next((k for k in spec.KINDS if name in spec.options(k)), None)
        if kind is None:  # an option of the dataset object only
            over = {"kind": "data_loading", "location": "image", "dataset": {name: upper + 1}}
        else:
            over = {"kind": kind, name: upper + 1, **room.get(name, {})}
        assert suite_accepts(over) is None and worker_accepts(over) is not None, name
    huge = {"kind": "data_loading", "samples": 1_000_000, "sample_bytes": 1 << 30}
    assert suite_accepts(huge) is None and worker_accepts(huge) is not None


def test_lists_of_strings_and_free_form_objects_are_checked_on_both_sides() -> None:
    """A required argv-like list, a free-form object and a free string: the worker's check and
    the suite's model accept and refuse the same values, naming the option."""
    argv, params, path = (
        spec.Option(None, list, items=str, ge=1),
        spec.Option(None, dict, optional=True),
        spec.Option(None, str),
    )
    assert argv.check("w.argv", ["sh", "-c", "x"]) == ["sh", "-c", "x"]
    assert params.check("w.params", {"k": {"n": [1]}}) == {"k": {"n": [1]}}
    assert params.check("w.params", None) is None
    assert argv.check("w.argv", ["ssh-keygen", "-N", ""]) == ["ssh-keygen", "-N", ""]
    for option, bad in ((argv, []), (argv, "ls"), (argv, [1]), (params, [1])):
        with pytest.raises(spec.SpecError, match=r"w\.x"):
            option.check("w.x", bad)
    with pytest.raises(spec.SpecError, match="non-empty string"):
        path.check("w.x", "")
    fields = {
        "argv": (workloadmodels.field_type("argv", argv), ...),
        "params": (workloadmodels.field_type("params", params), None),
        "path": (workloadmodels.field_type("path", path), ...),
    }
    model = create_model("M", **fields)
    assert model(argv=["x"], params={"a": 1}, path="p").params == {"a": 1}
    for bad in ({"argv": [], "path": "p"}, {"argv": ["x"], "params": 1, "path": ""}, {}):
        with pytest.raises(ValidationError):
            model(**bad)


def test_every_kind_has_its_worker_module() -> None:
    """The worker runs ``workloads/<kind>.py``'s ``run``: a kind declared without one would
    validate in a suite and fail on every target."""
    root = Path(spec.__file__).parent
    for kind in spec.KINDS:
        module = root / f"{kind}.py"
        assert module.is_file(), kind
        assert "\ndef run(" in module.read_text(), kind
