"""The bare-metal side of the matched software: a venv installed from the wheelhouse.

Comparing a container against whatever happens to be installed on the host would measure two
software stacks, not two isolation layers; this venv holds exactly the wheelhouse's files.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from bench.build import cache
from bench.build.wheelhouse import Wheelhouse
from bench.errors import BuildError

DONE_FILE = ".bench-complete"


def interpreter_identity(python: str) -> str:
    """Version and path of the base interpreter (a venv is only valid for the one it copies)."""
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print(sys.version); print(sys.base_prefix)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"venv: cannot run base interpreter {python!r}: {exc}") from None
    return done.stdout.strip()


def ensure(wheelhouse: Wheelhouse, python: str, note: Callable[[str], None]) -> Path:
    """The matched venv's interpreter, creating the venv when it is not in the cache yet."""
    key = cache.digest("venv-v1", wheelhouse.key, interpreter_identity(python))[:16]
    with cache.locked("venv") as root:
        final = root / "venv" / key
        if (final / DONE_FILE).is_file():
            return final / "bin" / "python"
        note(f"installing the wheelhouse into a venv at {final}")
        shutil.rmtree(final, ignore_errors=True)
        with cache.unfinished(final):
            _run([python, "-m", "venv", str(final)], "create the venv")
            _run(
                [
                    str(final / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    "--no-index",
                    "--find-links",
                    str(wheelhouse.path),
                    "-r",
                    str(wheelhouse.requirements),
                ],
                "install the wheelhouse",
            )
            (final / DONE_FILE).write_text(wheelhouse.key + "\n")
        return final / "bin" / "python"


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"venv: cannot {what}: {last}")
