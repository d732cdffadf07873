"""``bench doctor``'s table: this machine's environment checks, each with its fix. Only rich:
the checks come from ``workloads.environment`` and need neither pandas nor scipy."""

from __future__ import annotations

from typing import Any

from rich.table import Table

STYLES = {"ok": "green", "warn": "yellow", "info": "cyan", "n/a": "dim"}


def checks_table(checks: list[dict[str, Any]]) -> Table:
    """One row per check: its status (coloured), what was found, and how to fix it."""
    table = Table(title="environment checks (this machine)")
    for column in ("check", "status", "value", "fix"):
        table.add_column(column, overflow="fold")
    for found in checks:
        status = found["status"]
        table.add_row(
            found["check"],
            f"[{STYLES.get(status, '')}]{status}[/]",
            str(found["value"]),
            found["fix"] or "",
        )
    return table
