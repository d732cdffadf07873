"""Reading the rows of a run's JSON-lines files without trusting them.

bench writes every file atomically, so a corrupt line comes from outside (a disk error, a
hand edit, a copy cut short). One such line must not cost the rest of the run: each line is
parsed and checked on its own, the bad ones are skipped and reported, file and line, in one
``ResultsWarning``, and the good ones load. Only a file with content and no readable row at
all is an error, since there is nothing left to show.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bench.errors import ResultsError

INT64 = 1 << 63
_reported: set[str] = set()


class ResultsWarning(UserWarning):
    """Part of a run directory could not be read; what could was loaded. ``bench summary``
    and ``bench report`` print it as one ``warning:`` line."""


def read_rows(
    path: Path, check: Callable[[Any], dict[str, Any]], unique: str | None = None
) -> list[dict[str, Any]]:
    """The rows of ``path`` (none when it does not exist) that parse and pass ``check``;
    with ``unique``, only the first row for each value of that key."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    rows: list[dict[str, Any]] = []
    seen: set[Any] = set()
    problems: list[tuple[int, str]] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = check(json.loads(line.decode("utf-8")))
        except (ValueError, RecursionError) as exc:
            problems.append((number, _reason(exc)))
            continue
        if unique is not None:
            if row[unique] in seen:
                problems.append((number, f"{unique} {row[unique]} appears again"))
                continue
            seen.add(row[unique])
        rows.append(row)
    if problems:
        _report(path, problems, len(rows))
    return rows


def _report(path: Path, problems: list[tuple[int, str]], kept: int) -> None:
    number, reason = problems[0]
    if not kept:
        raise ResultsError(f"{path}:{number}: {reason} (no readable row in the file)")
    others = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
    message = f"{path}:{number}: {reason}; skipped this line{others}, loaded the other {kept} rows"
    if message not in _reported:  # load() and load_cells() both read cells.jsonl: say it once
        _reported.add(message)
        warnings.warn(message, ResultsWarning, stacklevel=4)


def _reason(exc: Exception) -> str:
    """One short line for why a line was refused."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "row"
        return f"invalid row: {where}: {first['msg']}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 (byte {exc.start})"
    if isinstance(exc, RecursionError):
        return "malformed JSON: nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON: {exc.msg} (character {exc.pos})"
    return f"invalid row: {' '.join(str(exc).split())}"


def index(value: int, name: str) -> int:
    """A cell number or repetition: a non-negative 64-bit integer (pandas stores int64)."""
    if not 0 <= value < INT64:
        raise ValueError(f"{name} {value} is out of range")
    return value


def read_json(path: Path, what: str) -> Any:
    """One JSON document (a manifest, a raw file); every failure is one ``ResultsError``."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: not found") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise ResultsError(f"{path}: {what}: {_reason(exc)}") from None
