"""Suite settings that hand a workload, or anyone on the network, power over a host.

bench runs what a suite says, as root. Some settings are legitimate for a benchmark yet give
the container the host (``network: host``, a volume of ``/`` or of the Docker socket) or give
the engine to anyone who can reach a port (``tcp://`` without TLS). They are not refused; they
are said loudly, in the run header and in the report, so nobody runs them by accident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.targets import registry

if TYPE_CHECKING:
    from bench.suite import Suite


def warnings(suite: Suite) -> list[str]:
    """One line per risky setting of the suite's targets (each said once); each target's kind
    knows what its own settings expose."""
    out: list[str] = []
    for config in suite.targets:
        out += registry.kind(config.kind).exposure(config)
    return list(dict.fromkeys(out))
