"""Names a matrix makes (``box[env=A:1]``) are shown as they are wherever bench prints a
table or a progress bar: square brackets are markup to rich, which would eat them."""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console

from bench.report.terminal import summary_table

NAME = "box[env=A:1]"


def rendered(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def samples(target: str) -> pd.DataFrame:
    rows = [
        {"run_id": "r", "target": target, "kind": "local", "workload": "c[argv=a]",
         "workload_kind": "command", "repetition": r, "metric": "command.wall_s",
         "value": 0.1 + r / 100, "unit": "s", "cell": r}
        for r in range(3)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_the_summary_table_shows_expanded_names_verbatim() -> None:
    text = rendered(summary_table(samples(NAME), "title"))
    assert NAME in text and "c[argv=a]" in text
