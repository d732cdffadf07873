"""Workload options as data, and the checks that go with them.

An option is declared once (its default, type, allowed values, minimum) and that declaration
is both the worker's check and, on the controller, the source of the suite schema. Only the
standard library is imported here, so the controller can read the tables without torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Check = Callable[[str, Any], Any]


class SpecError(ValueError):
    """The spec is malformed or asks for something this worker cannot run."""


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


def strings(minimum: int) -> Check:
    """A list of strings, at least ``minimum`` long (an argv, a requirements list); an item may
    be empty, as a program's argument can be."""

    def check(name: str, value: Any) -> Any:
        if not isinstance(value, list) or len(value) < minimum:
            least = f" of at least {minimum} item(s)" if minimum else ""
            raise SpecError(f"{name} must be a list{least} of strings, got {value!r}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise SpecError(f"{name}[{index}] must be a string, got {item!r}")
        return list(value)

    return check


def mapping(name: str, value: Any) -> dict[str, Any]:
    """A free-form JSON object (a user's parameters): string keys, any JSON values."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise SpecError(f"{name} must be an object with string keys, got {value!r}")
    return dict(value)


def optional(check: Check) -> Check:
    def wrapped(name: str, value: Any) -> Any:
        return None if value is None else check(name, value)

    return wrapped


def fill(name: str, raw: Mapping[str, Any], known: Mapping[str, Option]) -> dict[str, Any]:
    """``raw`` checked against ``known`` with defaults filled in; unknown keys are errors."""
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SpecError(f"unknown option(s) {unknown} in {name}; known: {sorted(known)}")
    return {key: o.check(f"{name}.{key}", raw.get(key, o.default)) for key, o in known.items()}


def nested(fields: Mapping[str, Option]) -> Check:
    def check(name: str, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise SpecError(f"{name} must be an object, got {value!r}")
        return fill(name, value, fields)

    return check


@dataclass(frozen=True)
class Option:
    """One workload option as data: its default and the values the worker accepts.

    This table is the only definition of the options: the worker checks specs with it and the
    controller derives its suite schema from it (adding its own upper bounds), so the two
    cannot drift apart. ``ge`` is an inclusive minimum (integers), ``gt`` an exclusive one
    (floats, which must also be finite); ``optional`` also accepts null.
    """

    default: Any
    type: type[bool] | type[int] | type[float] | type[str] | type[list] | type[dict]
    choices: tuple[str, ...] = ()
    ge: int | None = None
    gt: float | None = None
    optional: bool = False
    fields: dict[str, Option] | None = None  # a nested object's own options (type dict)
    items: type[str] | None = None  # a list's items (type list; ``ge``: its least length)

    def __post_init__(self) -> None:
        self._check()  # an option the worker could not check fails on import, on both sides

    def check(self, name: str, value: Any) -> Any:
        """``value`` if this option accepts it, else a ``SpecError`` naming ``name``."""
        return (optional(self._check()) if self.optional else self._check())(name, value)

    def _check(self) -> Check:
        if self.fields is not None:
            return nested(self.fields)
        if self.type is dict:
            return mapping
        if self.type is list and self.items is str:
            return strings(self.ge or 0)
        if self.choices:
            return choice(*self.choices)
        if self.type is bool:
            return boolean
        if self.type is int and self.ge is not None:
            return integer(self.ge)
        if self.type is float and self.gt == 0:
            return positive_number
        if self.type is str:
            return text
        raise TypeError(f"no check for an option of type {self.type.__name__}: {self}")


@dataclass(frozen=True)
class Kind:
    """A workload kind: what it measures, and its own options (besides ``COMMON``). Its code
    is the module ``workloads/<kind>.py``, whose ``run(ctx)`` the worker calls."""

    summary: str
    options: dict[str, Option]
    torch: bool = True  # False: the worker runs it without importing torch (a user's program)
