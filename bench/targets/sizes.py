"""Memory sizes in suite files: Docker's notation (``512m``, ``4g``; binary units) or bytes.

One notation for every kind that takes a size (a container's limit, a VM's RAM), so a suite
that gives both the same ``memory: 4g`` gives both the same number of bytes. The text is
checked to be a plain decimal number with an optional unit first (``infg``, ``nang`` or
``1e999g`` would read as infinity), then converted the way docker-py's ``parse_bytes`` does
(``float(number) * unit``, truncated), without importing the Docker SDK to validate a suite.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from bench.limits import MAX_SIZE

NOTATION = re.compile(r"\s*\d+(\.\d+)?\s*([kmg]b?|b)?\s*", re.IGNORECASE)
UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _size(value: Any) -> Any:
    if isinstance(value, str):
        problem = f"invalid size {value!r}: use bytes or a number with k, m or g"
        if not NOTATION.fullmatch(value):
            raise ValueError(problem)
        try:
            return parse_bytes(value.strip())
        except ValueError:  # a number float() refuses: "0\x1fg" (\s matches \x1f)
            raise ValueError(problem) from None
    return value


def parse_bytes(text: str) -> int:
    """Bytes of a size in the notation (``NOTATION``, stripped): ``4g``, ``512mb``, ``100``;
    ValueError where docker-py raises its DockerException."""
    if text[-2:-1].isalpha() and text[-1:].lower() == "b":
        text = text[:-1]  # 512mb -> 512m
    unit = text[-1].lower()
    if unit.isdigit():
        return int(float(text))
    return int(float(text[:-1]) * UNITS[unit])


Size = Annotated[int, Field(gt=0, le=MAX_SIZE), BeforeValidator(_size)]
"""A positive size in bytes, at most 16 TiB."""
