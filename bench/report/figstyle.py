"""What every figure of a report shares: the colours, a panel's size, the axis scales."""

from __future__ import annotations

import matplotlib
import numpy as np

PALETTE = matplotlib.colormaps["tab10"].colors
PANEL_WIDTH, PANEL_HEIGHT = 4.2, 3.2
MIB = 2**20


def scale_for(unit: str, values: np.ndarray) -> tuple[float, str]:
    """A divisor and axis unit that keep tick labels short (s→ms, bytes→MiB)."""
    if unit == "s":
        top = float(np.nanmax(values)) if len(values) else 0.0
        return (1e-3, "ms") if top < 1 else (1.0, "s")
    if unit == "bytes":
        return MIB, "MiB"
    if unit == "bytes/s":
        return 1e6, "MB/s"
    return 1.0, unit
