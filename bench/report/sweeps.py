"""Matrix groups in a report: what each swept value costs, per combination.

A ``matrix:`` turns one target (or workload) into several; reading them as unrelated rows of
the headline table hides the question they were made to answer. Each group gets its own table:
one row per combination, a column per swept key, then each headline metric's median with its
95% CI and, where the run has a baseline, the change against it. The groups come from the
manifest (``matrix``), never from parsing names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table

from bench.matrix import label
from bench.metrics import OVERHEAD_METRICS
from bench.report import frames
from bench.results.model import Manifest, as_manifest


@dataclass(frozen=True)
class Group:
    """The entries one ``matrix:`` made: ``of`` is 'targets' or 'workloads'."""

    of: str
    base: str
    keys: list[str]
    members: dict[str, dict[str, Any]]  # name -> swept values, in the suite's order

    @property
    def column(self) -> str:
        """The samples column the members are found in ('target' or 'workload')."""
        return self.of[:-1]

    @property
    def across(self) -> str:
        """The other column: a group's table is drawn once per value of it."""
        return "workload" if self.of == "targets" else "target"

    def title(self, context: str) -> str:
        return f"{self.column} {self.base} by {' × '.join(self.keys)}, {self.across} {context}"

    def values(self, key: str) -> list[str]:
        """The labels of ``key``'s values, in the matrix's order."""
        return list(dict.fromkeys(label(v[key]) for v in self.members.values() if key in v))


def groups(manifest: Manifest | dict[str, Any]) -> list[Group]:
    """Every matrix group of a run, targets first."""
    manifest = as_manifest(manifest)
    out = []
    for of in ("targets", "workloads"):
        made: dict[str, dict[str, dict[str, Any]]] = {}
        for name, entry in getattr(manifest.matrix, of).items():
            made.setdefault(entry.base, {})[name] = entry.values
        for base, members in made.items():
            keys = list(dict.fromkeys(k for v in members.values() for k in v))
            out.append(Group(of, base, keys, members))
    return out


def tables(samples: pd.DataFrame, manifest: Manifest | dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Per group and per workload (target group) or target (workload group), a display table:
    a column per swept key, then each headline metric as 'median [95% CI]', each key metric
    followed by its change against the baseline."""
    manifest = as_manifest(manifest)
    found = frames.headline(samples, manifest)
    out: dict[str, pd.DataFrame] = {}
    for group in groups(manifest):
        part = found[found[group.column].isin(group.members)]
        for context, rows in part.groupby(group.across, sort=False):
            out[group.title(str(context))] = _table(group, rows, manifest.baseline)
    return out


def _table(group: Group, rows: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """One row per combination present in ``rows``, in the matrix's order."""
    records: dict[str, dict[str, str]] = {}
    for name, values in group.members.items():
        if name in set(rows[group.column]):
            records[name] = {key: label(values[key]) if key in values else "" for key in group.keys}
    for row in rows.itertuples(index=False):
        record = records[getattr(row, group.column)]
        record[row.metric] = frames.interval_text(row.median, row.ci_low, row.ci_high, row.unit)
        if baseline is not None and row.metric in OVERHEAD_METRICS:
            change = "baseline" if row.target == baseline else ""
            change = change or frames.overhead_text(row.ratio, row.ratio_low, row.ratio_high)
            record[f"{row.metric} vs {baseline}"] = change
    return pd.DataFrame(list(records.values())).fillna("")


def rich_tables(samples: pd.DataFrame, manifest: Manifest | dict[str, Any]) -> list[Table]:
    """The same tables for the terminal summary."""
    out = []
    for title, frame in tables(samples, manifest).items():
        table = Table(title=escape(title))
        for column in frame.columns:
            table.add_column(escape(str(column)), no_wrap=True)
        for row in frame.itertuples(index=False):
            table.add_row(*(escape(str(v)) for v in row))
        out.append(table)
    return out
