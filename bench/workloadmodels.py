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
    "samples": limits.MAX_SAMPLES,
    "sample_bytes": limits.MAX_SAMPLE_BYTES,
    "num_workers": limits.MAX_WORKERS,
    "epochs": limits.MAX_EPOCHS,
    "warmup_batches": limits.MAX_ITERATIONS,
    "lr": limits.MAX_LR,
}
"""The largest value a suite may give each numeric option (the worker itself has no ceiling)."""

CONTROLLER_ONLY = ("name", "timeout_s")
"""Workload keys the controller reads itself: the worker gets the name but not the timeout."""


def field_type(name: str, option: spec.Option) -> Any:
    """The pydantic type of an option: the worker's rule plus bench's upper bound."""
    if option.choices:
        annotation: Any = Literal[option.choices]
    elif option.type is bool:
        annotation = bool
    elif name not in UPPER:
        raise TypeError(f"workload option {name!r} has no upper bound in bench.workloadmodels")
    elif option.type is int:
        annotation = Annotated[int, Field(ge=option.ge, le=UPPER[name])]
    else:
        annotation = Annotated[float, Field(gt=option.gt, le=UPPER[name], allow_inf_nan=False)]
    return annotation | None if option.optional else annotation


def _fields(options: dict[str, spec.Option]) -> dict[str, Any]:
    """``create_model`` field definitions, in the table's order."""
    return {name: (field_type(name, o), o.default) for name, o in options.items()}


WorkloadBase: type[BaseModel] = create_model(
    "WorkloadBase",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __doc__="Options every workload kind accepts.",
    __module__=__name__,
    name=(Name, ...),
    **_fields(spec.COMMON),
    timeout_s=(Seconds, 1800.0),
)


def _dataset_fits_and_warmup_leaves_batches(self: Any) -> Any:
    """The dataset is written to disk before the cell, so its size is bounded; warmup batches
    are excluded from the statistics, so some must remain (the worker's own rule)."""
    if self.samples * self.sample_bytes > limits.MAX_DATASET_BYTES:
        raise ValueError(
            f"samples x sample_bytes is {self.samples * self.sample_bytes} bytes of dataset; "
            f"at most {limits.MAX_DATASET_BYTES >> 30} GiB"
        )
    if not spec.warmup_leaves_batches(dict(self)):
        raise ValueError(
            f"warmup_batches ({self.warmup_batches}) must be less than the number of "
            f"batches ({spec.total_batches(dict(self))} = ceil(samples / batch_size) x epochs)"
        )
    return self


VALIDATORS = {
    "data_loading": {
        "_warmup_leaves_batches": model_validator(mode="after")(
            _dataset_fits_and_warmup_leaves_batches
        )
    },
}
"""Cross-field checks of a kind, run after its fields are valid."""


def _model(kind: str, definition: spec.Kind) -> type[BaseModel]:
    """The suite model of one workload kind (``train_step`` -> ``TrainStep``)."""
    return create_model(
        kind.title().replace("_", ""),
        __base__=WorkloadBase,
        __doc__=definition.summary,
        __module__=__name__,
        __validators__=VALIDATORS.get(kind, {}),
        kind=(Literal[kind], ...),
        **_fields(definition.options),
    )


MODELS: dict[str, type[BaseModel]] = {k: _model(k, d) for k, d in spec.KINDS.items()}
WORKLOAD_KINDS = tuple(MODELS)
TrainStep = MODELS["train_step"]
Inference = MODELS["inference"]
DataLoading = MODELS["data_loading"]
Workload = Annotated[Union[tuple(MODELS.values())], Field(discriminator="kind")]  # noqa: UP007
