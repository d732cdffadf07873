"""One error tree for the whole controller.

Third-party exceptions (pydantic, yaml, OS errors, subprocess failures) are translated into
these at the module that meets them, so the CLI maps exactly one family of exceptions to exit
codes and every message a user sees is a single line that says what and where.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Described(Protocol):
    """Something that says in one line what it is (e.g. ``compare.Difference``)."""

    def describe(self) -> str: ...


class BenchError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message as printed by the CLI: what, where and, when known, the fix."""
        text = " ".join(self.message.split())
        if self.hint:
            text += f" (hint: {' '.join(self.hint.split())})"
        return text


class InputError(BenchError):
    """Bad input from the user: suite file, flags, paths. Exit status 2."""

    exit_code = 2


class SuiteError(InputError):
    """A suite file that does not validate; the message names the key path and line."""


class ResultsError(InputError):
    """A results directory that is missing, malformed or would be overwritten."""


class ResultsWriteError(BenchError):
    """Results could not be written (disk full, quota, I/O error). Not bad input: the run
    stops with exit status 1, keeping every cell committed before."""


class TargetError(BenchError):
    """A target could not be deployed to or reached (the cell fails, the run goes on)."""


class BuildError(BenchError):
    """A matched artefact (wheelhouse, venv, base system, image) could not be built."""


class PushError(BenchError):
    """A Pushgateway could not be reached or refused a push. Not bad input (the URL was
    well formed): exit status 1, and the results it was to publish are untouched."""


class WorkerError(BenchError):
    """The worker on a target failed: crashed, timed out, or reported an error."""

    def __init__(self, message: str, *, stderr_tail: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.stderr_tail = stderr_tail


class Interrupted(BenchError):
    """The user pressed Ctrl-C; finished cells are kept. Exit status 130 like a shell."""

    exit_code = 130


class IncomparableRunsError(InputError):
    """Two runs whose key fingerprints differ: comparing them would measure the machines (or
    the kernel, driver, torch…) rather than the change. Carries the differences."""

    def __init__(self, differences: Sequence[Described], *, hint: str | None = None) -> None:
        found = "; ".join(d.describe() for d in differences)
        super().__init__(
            f"cannot compare runs from different hosts: {found}",
            hint=hint or "pass --allow-different-hosts to compare anyway",
        )
        self.differences = differences
