"""Validation of run specs, done before torch is imported.

A spec that cannot run (unknown kind, model or option, a size of zero) is
rejected here so the worker fails fast with exit code 2 and a message naming
the bad field, instead of failing deep inside torch after seconds of import.
Options missing from the spec take documented defaults; options a kind does
not know are rejected, because a misspelled option silently replaced by its
default would measure something other than what was asked for.
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


MODEL = choice("mlp", "cnn", "transformer")

COMMON: dict[str, tuple[Any, Check]] = {
    "device": ("auto", choice("auto", "cpu", "cuda")),
    "threads": (None, optional(integer(1))),
    "dtype": ("float32", choice("float32", "bfloat16", "float16")),
}

KINDS: dict[str, dict[str, tuple[Any, Check]]] = {
    "train_step": {
        "model": ("mlp", MODEL),
        "batch_size": (64, integer(1)),
        "steps": (30, integer(1)),
        "warmup_steps": (5, integer(0)),
        "optimizer": ("sgd", choice("sgd", "adam")),
        "lr": (0.01, positive_number),
    },
    "inference": {
        "model": ("mlp", MODEL),
        "batch_size": (1, integer(1)),
        "requests": (200, integer(1)),
        "warmup_requests": (20, integer(0)),
        "scenario": ("single_stream", choice("single_stream", "offline")),
    },
    "data_loading": {
        "samples": (2000, integer(1)),
        "sample_bytes": (65536, integer(1)),
        "batch_size": (64, integer(1)),
        "num_workers": (2, integer(0)),
        "epochs": (1, integer(1)),
        "warmup_batches": (2, integer(0)),
        "shuffle": (True, boolean),
        "cold_cache": (False, boolean),
    },
}


def _workload(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise SpecError("spec.workload must be an object")
    kind = choice(*KINDS)("workload.kind", raw.get("kind"))
    options = {**COMMON, **KINDS[kind]}
    unknown = sorted(set(raw) - set(options) - {"name", "kind"})
    if unknown:
        raise SpecError(f"unknown option(s) {unknown} for kind {kind!r}; known: {sorted(options)}")
    workload: dict[str, Any] = {
        "name": text("workload.name", raw.get("name", kind)),
        "kind": kind,
    }
    for key, (default, check) in options.items():
        workload[key] = check(f"workload.{key}", raw.get(key, default))
    return workload


def total_batches(workload: Mapping[str, Any]) -> int:
    """Batches a data-loading run reads: every epoch, last partial batch kept."""
    per_epoch = -(-workload["samples"] // workload["batch_size"])
    return per_epoch * workload["epochs"]


def _check_data_loading(workload: Mapping[str, Any]) -> None:
    total = total_batches(workload)
    if workload["warmup_batches"] >= total:
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
