"""The name rule shared by suites, targets and workloads.

Names end up in directory names, file names and (for remote targets) command lines, so they are
restricted to a safe alphabet at the boundary instead of being escaped everywhere later.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
