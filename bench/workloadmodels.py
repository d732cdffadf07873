"""The suite's workload models, derived from the worker's option table.

``workloads/spec.py`` defines every workload kind's options (default, type, allowed values,
minimum) and the rule that warmup leaves measured iterations; the worker checks specs with it on
the target. The suite models are built from that table, so a default or a choice cannot differ
between what the suite file promises and what the worker runs. What bench adds on top is its
own: an upper bound for every number (``bench/limits.py``, by option name below), the bound on
the dataset a data-loading cell writes, and the options only the controller reads (the
workload's ``name`` and its ``timeout_s``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from bench import limits
from bench.limits import Seconds
from bench.names import Name
from workloads import spec

UPPER: dict[str, int | float] = {
    "threads": limits.MAX_THREADS,
    "batch_size": limits.MAX_BATCH,
    "steps": limits.MAX_ITERATIONS,
    "warmup_steps": limits.MAX_ITERATIONS,
    "requests": limits.MAX_ITERATIONS,
    "warmup_requests": limits.MAX_ITERATIONS,
    "min_query_count": limits.MAX_ITERATIONS,
    "warmup_queries": limits.MAX_ITERATIONS,
    "samples_per_query": limits.MAX_BATCH,
    "min_duration_s": limits.DAY_S,
    "max_duration_s": limits.DAY_S,
    "target_latency_s": limits.DAY_S,
    "target_qps": 1e7,  # queries per second; far beyond any single system under test
    "samples": limits.MAX_SAMPLES,
    "sample_bytes": limits.MAX_SAMPLE_BYTES,
    "num_workers": limits.MAX_WORKERS,
    "epochs": limits.MAX_EPOCHS,
    "warmup_batches": limits.MAX_ITERATIONS,
    "lr": limits.MAX_LR,
    "image_size": limits.MAX_IMAGE_EDGE,
    "seq_len": limits.MAX_SEQUENCE,
    "prompt_tokens": limits.MAX_SEQUENCE,
    "new_tokens": limits.MAX_SEQUENCE,
    "shard_samples": limits.MAX_SAMPLES,
    "layers": limits.MAX_LAYERS,
    "hidden": limits.MAX_WIDTH,
    "heads": limits.MAX_WIDTH,
    "kv_heads": limits.MAX_WIDTH,
    "vocab": limits.MAX_WIDTH,
}
"""The largest value a suite may give each numeric option (the worker itself has no ceiling)."""

NonEmpty = Annotated[str, Field(min_length=1)]
"""A string option with no fixed choices (a path, an entry point, an argument)."""

CONTROLLER_ONLY = ("name", "timeout_s")
"""Workload keys the controller reads itself: the worker gets the name but not the timeout."""


def field_type(name: str, option: spec.Option) -> Any:
    """The pydantic type of an option: the worker's rule plus bench's upper bound."""
    if option.fields is not None:
        annotation: Any = _nested(name, option.fields)
    elif option.choices:
        annotation = Literal[option.choices]
    elif option.type is bool:
        annotation = bool
    elif option.type is str:
        annotation = NonEmpty
    elif option.type is list:
        annotation = Annotated[list[str], Field(min_length=option.ge or 0)]
    elif option.type is dict:
        annotation = dict[str, Any]
    elif name not in UPPER:
        raise TypeError(f"workload option {name!r} has no upper bound in bench.workloadmodels")
    elif option.type is int:
        annotation = Annotated[int, Field(ge=option.ge, le=UPPER[name])]
    else:
        annotation = Annotated[float, Field(gt=option.gt, le=UPPER[name], allow_inf_nan=False)]
    return annotation | None if option.optional else annotation


def _fields(options: dict[str, spec.Option]) -> dict[str, Any]:
    """``create_model`` field definitions, in the table's order."""
    return {name: (field_type(name, o), _default(o)) for name, o in options.items()}


def _default(option: spec.Option) -> Any:
    """The option's default; none (a required key) where the worker has no usable one."""
    return ... if option.default is None and not option.optional else option.default


def _nested(name: str, options: dict[str, spec.Option]) -> type[BaseModel]:
    """A nested object option (``dataset``) as its own strict model."""
    return create_model(
        name.title().replace("_", ""),
        __config__=ConfigDict(extra="forbid", frozen=True),
        __module__=__name__,
        **_fields(options),
    )


WorkloadBase: type[BaseModel] = create_model(
    "WorkloadBase",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __doc__="Options every workload kind accepts.",
    __module__=__name__,
    name=(Name, ...),
    **_fields(spec.COMMON),
    timeout_s=(Seconds, 1800.0),
)


def dataset_bytes(workload: dict[str, Any]) -> int:
    """The most bytes a workload's dataset takes on disk (a JPEG is far smaller than its
    pixels, so this bounds it from above)."""
    dataset = workload.get("dataset")
    if dataset is None:
        return workload["samples"] * workload["sample_bytes"] if "sample_bytes" in workload else 0
    if dataset["format"] == "raw":
        return dataset["samples"] * dataset["sample_bytes"]
    if dataset["format"] == "tokens":
        return dataset["samples"] * (dataset["seq_len"] + 1) * 4
    return dataset["samples"] * dataset["image_size"] ** 2 * 3


def _worker_rules(self: Any) -> Any:
    """The worker's own rules across options (``spec.check_workload``), and the bound on the
    dataset bench writes to disk before a cell."""
    workload = self.model_dump()
    size = dataset_bytes(workload)
    if size > limits.MAX_DATASET_BYTES:
        raise ValueError(
            f"the dataset takes up to {size} bytes; at most {limits.MAX_DATASET_BYTES >> 30} GiB"
        )
    try:
        spec.check_workload(workload)
    except spec.SpecError as exc:
        raise ValueError(str(exc).replace("workload.", "").removeprefix("workload: ")) from None
    return self


def _model(kind: str, definition: spec.Kind) -> type[BaseModel]:
    """The suite model of one workload kind (``train_step`` -> ``TrainStep``)."""
    return create_model(
        kind.title().replace("_", ""),
        __base__=WorkloadBase,
        __doc__=definition.summary,
        __module__=__name__,
        __validators__={"_worker_rules": model_validator(mode="after")(_worker_rules)},
        kind=(Literal[kind], ...),
        **_fields(definition.options),
    )


MODELS: dict[str, type[BaseModel]] = {k: _model(k, d) for k, d in spec.KINDS.items()}
WORKLOAD_KINDS = tuple(MODELS)
TrainStep = MODELS["train_step"]
Inference = MODELS["inference"]
DataLoading = MODELS["data_loading"]
Generate = MODELS["generate"]
Workload = Annotated[Union[tuple(MODELS.values())], Field(discriminator="kind")]  # noqa: UP007
