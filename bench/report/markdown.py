"""GitHub-flavoured Markdown tables (pandas' ``to_markdown`` needs an extra package)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd


def escape(value: Any) -> str:
    """One table cell's text: pipes escaped, line breaks flattened."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(columns: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    head = "| " + " | ".join(escape(c) for c in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(escape(v) for v in r) + " |" for r in rows)])


def frame_table(frame: pd.DataFrame, index: bool = False) -> str:
    """``frame`` as a table; ``index``: its index becomes the first column."""
    if index:
        frame = frame.reset_index()
    return table(list(frame.columns), frame.itertuples(index=False))
