"""The ``bench`` command line: parses, calls, maps ``BenchError`` to exit codes.

Exit status: 0 success, 1 a benchmark failed, 2 bad input (suite, flags, paths), 130 Ctrl-C.
Errors are a single line on stderr saying what and where, plus the fix when known.

One module per group of commands (``run``, ``analysis``, ``nightly``, ``maintenance``); what
they share (the consoles, error translation) is in ``common``.
"""

from __future__ import annotations

import warnings
from gc import freeze as freeze_heap  # (``gc`` is also a command)
from typing import Any

import click

from bench.cli import analysis, maintenance, nightly, run
from bench.cli.common import fail, translate
from bench.cli.nightly import nightly_arguments, nightly_limits

__all__ = ["entry", "fail", "main", "nightly_arguments", "nightly_limits", "translate"]


def _warning_line(message: Warning | str, *_: Any, **__: Any) -> str:
    """A warning (e.g. a corrupt line skipped in a run directory) as one line, like errors."""
    return f"warning: {' '.join(str(message).split())}\n"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bench")
def main() -> None:
    """Measure what isolation costs AI workloads.

    Runs the same training, inference and data-loading workloads on bare metal (and other
    targets), records start-up, throughput, latency and memory, and summarises the differences.
    """
    warnings.formatwarning = _warning_line


for _command in (
    run.run,
    analysis.report,
    analysis.summary,
    analysis.compare,
    analysis.history_command,
    analysis.export_command,
    nightly.nightly,
    nightly.schedule,
    maintenance.validate,
    maintenance.build,
    maintenance.gc,
    maintenance.doctor,
    maintenance.targets,
):
    main.add_command(_command)


def entry() -> None:
    """The console script: the command line, then an exit that skips the collector's last
    pass over every object pandas, scipy and matplotlib made (about 0.35 s on a small host,
    after all output is written). Objects are still released and atexit handlers still run."""
    try:
        main()
    finally:
        freeze_heap()
