"""Human-readable numbers: the unit decides the scale, so a table column reads at a glance."""

from __future__ import annotations

import math


def number(value: float) -> str:
    """Four significant digits without exponents for the magnitudes benchmarks produce."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _scaled(value: float, steps: list[tuple[float, str]]) -> str:
    """Three significant digits in the largest unit the value reaches. A value that rounds up
    to 1000 of its unit (999.7 MiB) is written in the next larger one (0.976 GiB), and one
    beyond the largest unit with separators, never in exponent notation ('1e+03 MiB')."""
    for i, (factor, suffix) in enumerate(steps):
        if abs(value) < factor and i < len(steps) - 1:
            continue
        text = f"{value / factor:.3g}"
        if "e" not in text or abs(value) < factor:  # a value below the smallest unit
            return f"{text} {suffix}"
        if i == 0:
            return f"{value / factor:,.0f} {suffix}"
        larger, name = steps[i - 1]
        return f"{value / larger:.3g} {name}"
    raise AssertionError("unreachable: the last step always formats")


def fmt(value: float, unit: str) -> str:
    """``value`` in ``unit``, scaled to a readable magnitude (e.g. 0.0123 s -> '12.3 ms')."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s":
        return _scaled(value, [(1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")])
    if unit == "bytes":
        return _scaled(value, [(2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "B")])
    if unit == "bytes/s":
        return _scaled(value, [(1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s"), (1, "B/s")])
    if unit == "%":
        return f"{value:.1f} %"
    return f"{number(value)} {unit}"
