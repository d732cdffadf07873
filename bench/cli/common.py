"""What every command shares: the two consoles, and the one place where ``BenchError`` and
Ctrl-C become exit codes and one-line messages."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from bench.errors import BenchError

F = TypeVar("F", bound=Callable[..., Any])

# Tables are records, not decoration: never truncate them to 80 columns when piped.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


def fail(exc: BenchError) -> NoReturn:
    """Print one line and exit with the error's status."""
    click.echo(f"error: {exc.one_line()}", err=True)
    sys.exit(exc.exit_code)


def translate(fn: F) -> F:
    """Run a command, turning ``BenchError`` and Ctrl-C into the documented exit codes."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BenchError as exc:
            fail(exc)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def warn(line: str) -> None:
    """A warning line on stderr (what happened and where; the command goes on)."""
    err.print(f"warning: {line}", style="yellow", highlight=False, markup=False, soft_wrap=True)


def line(text: str) -> None:
    """One plain line of the stdout record (a path, a count): no markup, no highlighting."""
    out.print(text, highlight=False, soft_wrap=True)
