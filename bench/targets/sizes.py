"""Memory sizes in suite files: Docker's notation (``512m``, ``4g``; binary units) or bytes.

One notation for every kind that takes a size (a container's limit, a VM's RAM), so a suite
that gives both the same ``memory: 4g`` gives both the same number of bytes. Docker's parser
reads the number with ``float()``, so ``infg``, ``nang`` or ``1e999g`` reach it as infinity and
crash it: the text is checked to be a plain decimal number first.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import docker.errors
import docker.utils
from pydantic import BeforeValidator, Field

from bench.limits import MAX_SIZE

NOTATION = re.compile(r"\s*\d+(\.\d+)?\s*([kmg]b?|b)?\s*", re.IGNORECASE)


def _size(value: Any) -> Any:
    if isinstance(value, str):
        problem = f"invalid size {value!r}: use bytes or a number with k, m or g"
        if not NOTATION.fullmatch(value):
            raise ValueError(problem)
        try:
            return docker.utils.parse_bytes(value.strip())
        except docker.errors.DockerException as exc:
            raise ValueError(problem) from exc
    return value


Size = Annotated[int, Field(gt=0, le=MAX_SIZE), BeforeValidator(_size)]
"""A positive size in bytes, at most 16 TiB."""
