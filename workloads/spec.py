"""Validation of run specs, done before torch is imported.

A spec that cannot run (unknown kind, model or option, a size of zero) is
rejected here so the worker fails fast with exit code 2 and a message naming
the bad field, instead of failing deep inside torch after seconds of import.
Options missing from the spec take documented defaults; options a kind does
not know are rejected, because a misspelled option silently replaced by its
default would measure something other than what was asked for. The option
table (``COMMON``, ``KINDS``) is also what the controller's suite schema is
built from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Check = Callable[[str, Any], Any]


class SpecError(ValueError):
    """The spec is malformed or asks for something this worker cannot run."""


@dataclass(frozen=True)
class Spec:
    """A validated spec with every workload option filled in."""

    workload: dict[str, Any]
    seed: int
    progress_every_s: float
    samplers: bool = True  # false only to measure what the samplers themselves cost

    @property
    def kind(self) -> str:
        return str(self.workload["kind"])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def choice(*allowed: str) -> Check:
    def check(name: str, value: Any) -> Any:
        if value not in allowed:
            raise SpecError(f"{name} must be one of {list(allowed)}, got {value!r}")
        return value

    return check


def integer(minimum: int) -> Check:
    def check(name: str, value: Any) -> Any:
        if not _is_int(value) or value < minimum:
            raise SpecError(f"{name} must be an integer >= {minimum}, got {value!r}")
        return value

    return check


def positive_number(name: str, value: Any) -> float:
    ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
    if not ok or value <= 0:
        raise SpecError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{name} must be true or false, got {value!r}")
    return value


def text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(f"{name} must be a non-empty string, got {value!r}")
    return value


def optional(check: Check) -> Check:
    def wrapped(name: str, value: Any) -> Any:
        return None if value is None else check(name, value)

    return wrapped


@dataclass(frozen=True)
class Option:
    """One workload option as data: its default and the values the worker accepts.

    This table is the only definition of the options: the worker checks specs with it and the
    controller derives its suite schema from it (adding its own upper bounds), so the two
    cannot drift apart. ``ge`` is an inclusive minimum (integers), ``gt`` an exclusive one
    (floats, which must also be finite); ``optional`` also accepts null.
    """

    default: Any
    type: type[bool] | type[int] | type[float] | type[str]
    choices: tuple[str, ...] = ()
    ge: int | None = None
    gt: float | None = None
    optional: bool = False

    def __post_init__(self) -> None:
        self._check()  # an option the worker could not check fails on import, on both sides

    def check(self, name: str, value: Any) -> Any:
        """``value`` if this option accepts it, else a ``SpecError`` naming ``name``."""
        return (optional(self._check()) if self.optional else self._check())(name, value)

    def _check(self) -> Check:
        if self.choices:
            return choice(*self.choices)
        if self.type is bool:
            return boolean
        if self.type is int and self.ge is not None:
            return integer(self.ge)
        if self.type is float and self.gt == 0:
            return positive_number
        raise TypeError(f"no check for an option of type {self.type.__name__}: {self}")


@dataclass(frozen=True)
class Kind:
    """A workload kind: what it measures, and its own options (besides ``COMMON``). Its code
    is the module ``workloads/<kind>.py``, whose ``run(ctx)`` the worker calls."""

    summary: str
    options: dict[str, Option]


MODELS = ("mlp", "cnn", "transformer")

COMMON: dict[str, Option] = {
    "device": Option("auto", str, choices=("auto", "cpu", "cuda")),
    "dtype": Option("float32", str, choices=("float32", "bfloat16", "float16")),
    "threads": Option(None, int, ge=1, optional=True),
}

KINDS: dict[str, Kind] = {
    "train_step": Kind(
        "Forward, backward and optimizer step on synthetic data.",
        {
            "model": Option("mlp", str, choices=MODELS),
            "batch_size": Option(64, int, ge=1),
            "steps": Option(30, int, ge=1),
            "warmup_steps": Option(5, int, ge=0),
            "optimizer": Option("sgd", str, choices=("sgd", "adam")),
            "lr": Option(0.01, float, gt=0),
        },
    ),
    "inference": Kind(
        "An inference loop: one request at a time, or large batches for throughput.",
        {
            "model": Option("mlp", str, choices=MODELS),
            "scenario": Option("single_stream", str, choices=("single_stream", "offline")),
            "batch_size": Option(1, int, ge=1),
            "requests": Option(200, int, ge=1),
            "warmup_requests": Option(20, int, ge=0),
        },
    ),
    "data_loading": Kind(
        "A synthetic on-disk dataset read through torch's DataLoader.",
        {
            "samples": Option(2000, int, ge=1),
            "sample_bytes": Option(65536, int, ge=1),
            "batch_size": Option(64, int, ge=1),
            "num_workers": Option(2, int, ge=0),
            "epochs": Option(1, int, ge=1),
            "warmup_batches": Option(2, int, ge=0),
            "shuffle": Option(True, bool),
            "cold_cache": Option(False, bool),
        },
    ),
}


def _workload(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise SpecError("spec.workload must be an object")
    kind = choice(*KINDS)("workload.kind", raw.get("kind"))
    known = options(kind)
    unknown = sorted(set(raw) - set(known) - {"name", "kind"})
    if unknown:
        raise SpecError(f"unknown option(s) {unknown} for kind {kind!r}; known: {sorted(known)}")
    workload: dict[str, Any] = {
        "name": text("workload.name", raw.get("name", kind)),
        "kind": kind,
    }
    for key, option in known.items():
        workload[key] = option.check(f"workload.{key}", raw.get(key, option.default))
    return workload


def options(kind: str) -> dict[str, Option]:
    """Every option of ``kind``, common ones first, in the order a filled spec lists them."""
    return {**COMMON, **KINDS[kind].options}


def total_batches(workload: Mapping[str, Any]) -> int:
    """Batches a data-loading run reads: every epoch, last partial batch kept."""
    per_epoch = -(-workload["samples"] // workload["batch_size"])
    return per_epoch * workload["epochs"]


def warmup_leaves_batches(workload: Mapping[str, Any]) -> bool:
    """Whether a data-loading run measures anything: its warmup batches are left out of the
    statistics, so it must read more batches than that. The controller's suite check calls
    this too."""
    return workload["warmup_batches"] < total_batches(workload)


def _check_data_loading(workload: Mapping[str, Any]) -> None:
    if not warmup_leaves_batches(workload):
        total = total_batches(workload)
        raise SpecError(
            f"workload.warmup_batches ({workload['warmup_batches']}) leaves no "
            f"measured batches: the run reads only {total} batch(es)"
        )


def validate(raw: Any) -> Spec:
    """Check a decoded spec and fill in defaults."""
    if not isinstance(raw, Mapping):
        raise SpecError("spec must be a JSON object")
    if "workload" not in raw:
        raise SpecError("spec.workload is missing")
    workload = _workload(raw["workload"])
    if workload["kind"] == "data_loading":
        _check_data_loading(workload)
    seed = integer(0)("spec.seed", raw.get("seed", 0))
    every = raw.get("progress_every_s")
    every = 0.5 if every is None else positive_number("spec.progress_every_s", every)
    samplers = boolean("spec.samplers", raw.get("samplers", True))
    return Spec(workload=workload, seed=seed, progress_every_s=every, samplers=samplers)


def parse(source: str) -> Spec:
    """Decode and validate a JSON spec."""
    try:
        raw = json.loads(source)
    except json.JSONDecodeError as exc:
        raise SpecError(f"spec is not valid JSON: {exc}") from exc
    return validate(raw)
