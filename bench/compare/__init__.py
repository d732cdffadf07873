"""Run against run: did anything get worse between BASE and NEW, and is that evidence or noise?

Cells are matched by (target, workload, metric). For each, the change is the ratio of the two
medians, NEW / BASE, with its bootstrap 95% interval (``stats.ratio``), and the two samples go
through a Mann-Whitney U test (``decide``). Two runs are only compared when their key
fingerprints agree (``facts``); thresholds are parsed and checked in ``thresholds``;
``runs.compare_runs`` puts it together and returns plain data.
"""

from __future__ import annotations

from bench.compare.decide import (
    ADDED,
    ALPHA,
    DRIFT,
    IMPROVEMENT,
    INFORMATIONAL,
    NO_CHANGE,
    NO_RATIO,
    REGRESSION,
    REMOVED,
    STATUSES,
    TOO_FEW,
    WITHIN,
    Decision,
    decide,
    mann_whitney,
)
from bench.compare.facts import (
    Difference,
    definition_notes,
    fingerprint_differences,
    key_facts,
)
from bench.compare.runs import COLUMNS, KEY, Comparison, Excluded, Key, compare_runs
from bench.compare.thresholds import DEFAULT_THRESHOLD, parse_overrides, parse_threshold
from bench.metrics import direction

SCHEMA_VERSION = 1  # of the JSON document ``bench compare --format json`` writes

__all__ = [
    "ADDED",
    "ALPHA",
    "COLUMNS",
    "DEFAULT_THRESHOLD",
    "DRIFT",
    "IMPROVEMENT",
    "INFORMATIONAL",
    "KEY",
    "NO_CHANGE",
    "NO_RATIO",
    "REGRESSION",
    "REMOVED",
    "SCHEMA_VERSION",
    "STATUSES",
    "TOO_FEW",
    "WITHIN",
    "Comparison",
    "Decision",
    "Difference",
    "Excluded",
    "Key",
    "compare_runs",
    "decide",
    "definition_notes",
    "direction",
    "fingerprint_differences",
    "key_facts",
    "mann_whitney",
    "parse_overrides",
    "parse_threshold",
]
