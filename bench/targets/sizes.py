"""Memory sizes in suite files: Docker's notation (``512m``, ``4g``; binary units) or bytes.

One notation for every kind that takes a size (a container's limit, a VM's RAM), so a suite
that gives both the same ``memory: 4g`` gives both the same number of bytes.
"""

from __future__ import annotations

from typing import Annotated, Any

import docker.errors
import docker.utils
from pydantic import BeforeValidator, PositiveInt


def _size(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return docker.utils.parse_bytes(value)
        except docker.errors.DockerException as exc:
            raise ValueError(
                f"invalid size {value!r}: use bytes or a number with k, m or g"
            ) from exc
    return value


Size = Annotated[PositiveInt, BeforeValidator(_size)]
