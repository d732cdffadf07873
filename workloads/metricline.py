"""The JSON-lines form in which a command reports its own metrics on stdout.

A line that parses as a JSON object with the key ``bench_metric`` is a metric::

    {"bench_metric": "images_per_s", "value": 1520.5, "unit": "images/s"}

and is stored as ``user.images_per_s``. Every other line is the program's ordinary output. The
form needs nothing but ``print`` in any language, and a line that merely looks like JSON is never
mistaken for a metric, because the key says what it is.

A line that claims to be a metric but is malformed (a name bench cannot store, a value that is
not a number, an unknown key) is an error rather than output: passed over silently, the metric
would just be missing from the results, and the mistake in the program would go unnoticed.
A value of NaN or infinity is well-formed but not a measurement: the metric is absent with that
reason, never stored as a number.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

KEY = "bench_metric"
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
UNIT_MAX = 32
FIELDS = frozenset({KEY, "value", "unit"})
PREFIX = "user."


class MetricLineError(ValueError):
    """A line that says it is a metric (it has the ``bench_metric`` key) but is malformed."""


@dataclass(frozen=True)
class MetricLine:
    """One metric a command printed; ``value`` may be NaN or infinite (then it is absent)."""

    name: str
    value: float
    unit: str = ""

    @property
    def metric(self) -> str:
        """The name the metric is stored under."""
        return PREFIX + self.name


def parse(line: str) -> MetricLine | None:
    """The metric on ``line``, or None when the line is ordinary output."""
    text = line.strip()
    if not text.startswith("{") or KEY not in text:
        return None  # the common case, decided without a JSON parse
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or KEY not in data:
        return None
    return _checked(data)


def _checked(data: dict[str, object]) -> MetricLine:
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise MetricLineError(f"unknown key(s) {unknown}; a metric line has {sorted(FIELDS)}")
    name = data[KEY]
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise MetricLineError(
            f"metric name {name!r} must be 1 to 64 of the characters A-Z a-z 0-9 _ . -"
        )
    value = data.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MetricLineError(f"metric {name!r}: value must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise MetricLineError(f"metric {name!r}: value {value} is too large") from None
    unit = data.get("unit", "")
    if not isinstance(unit, str) or len(unit) > UNIT_MAX:
        raise MetricLineError(
            f"metric {name!r}: unit must be a string of at most {UNIT_MAX} characters, got {unit!r}"
        )
    return MetricLine(name, number, unit)


def absent_reason(metric: MetricLine) -> str | None:
    """Why a well-formed metric has no value to store (NaN, infinity), else None."""
    if math.isfinite(metric.value):
        return None
    return f"the command reported {metric.value} for it"
