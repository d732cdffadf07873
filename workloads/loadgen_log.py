"""Reading what MLPerf LoadGen wrote, and its early-stopping rule, with the standard library.

LoadGen is the judge of an inference run: its detail log (``:::MLLOG`` JSON lines) holds the
verdict, the reasons and the percentiles, and its trace holds every sample's latency as LoadGen
itself measured it. Reading the numbers back from those files, rather than re-timing the
samples in Python, keeps the cell's metrics identical to what an MLPerf submitter would see.

The early-stopping rule is ported here (from ``loadgen/early_stopping.cc``) so the cell can say,
for every percentile it reports, how many queries LoadGen would need before trusting it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

MLLOG = ":::MLLOG "
DETAIL_FILE = "mlperf_log_detail.txt"
SUMMARY_FILE = "mlperf_log_summary.txt"
TRACE_FILE = "mlperf_log_trace.json"
KEPT_FILES = (SUMMARY_FILE, DETAIL_FILE)
"""What the controller stores beside the cell's raw file (the trace is read here instead: it
grows by a line per sample)."""

PERCENTILES = {
    "infer.latency_p50_s": 0.50,
    "infer.latency_p90_s": 0.90,
    "infer.latency_p99_s": 0.99,
    "infer.latency_p999_s": 0.999,
}
"""The latency metrics and the percentile LoadGen reports each as."""
CONFIDENCE = 0.99  # LoadGen's early-stopping confidence
NS = 1e-9


def read_detail(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Every key of the detail log with its (last) value, and the errors LoadGen logged."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith(MLLOG):
            continue
        try:
            entry = json.loads(line[len(MLLOG) :])
        except json.JSONDecodeError:
            continue
        values[entry["key"]] = entry.get("value")
        if (entry.get("metadata") or {}).get("is_error"):
            errors.append(f"{entry['key']}: {entry.get('value')}")
    return values, errors


def percentile_key(fraction: float, per_query: bool) -> str:
    """The detail-log key of a latency percentile (LoadGen prints it with two decimals)."""
    kind = "per_query_latency_ns" if per_query else "latency_ns"
    return f"result_{fraction * 100:.2f}_percentile_{kind}"


def _sample_events(path: Path) -> Iterator[dict[str, Any]]:
    """The trace's "Sample" begin events, one per sample, each with LoadGen's own latency
    (``args.complete_ns``). The trace is one event per line but not always valid JSON as a
    whole (some other events' arguments are not escaped), so it is read line by line."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.startswith('{"name":"Sample"') or '"ph":"b"' not in line:
                continue
            try:
                yield json.loads(line.rstrip().rstrip(","))
            except json.JSONDecodeError:
                continue


def trace_latencies(path: Path, per_query: bool) -> tuple[list[float], list[float]]:
    """Latencies in seconds, in issue order, and when each was scheduled (seconds from the
    first). ``per_query``: one value per query, its slowest sample (multi_stream's latency);
    otherwise one per sample."""
    latency: dict[int, int] = {}
    scheduled: dict[int, float] = {}
    for event in _sample_events(path):
        args = event["args"]
        key = args["query_seq"] if per_query else args["sample_seq"]
        latency[key] = max(latency.get(key, 0), int(args["complete_ns"]))
        scheduled.setdefault(key, float(event["ts"]) * 1e-6)
    order = sorted(latency)
    start = scheduled[order[0]] if order else 0.0
    return [latency[k] * NS for k in order], [scheduled[k] - start for k in order]


def _odds(h: int, t: int, p: float) -> float:
    """The chance of at most ``t`` queries over the ``p`` percentile among ``h + t`` when the
    true share under it is ``p`` (the binomial CDF LoadGen writes as BetaRegularized)."""
    n = h + t
    total = 0.0
    for x in range(t + 1):
        log_term = (
            math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1)
            + (n - x) * math.log(p) + x * math.log1p(-p)
        )  # fmt: skip
        total += math.exp(log_term)
    return total


@cache
def min_passing(t: int, p: float, confidence: float = CONFIDENCE) -> int:
    """The fewest queries under the percentile, given ``t`` over it, for LoadGen to bound the
    ``p`` percentile with ``confidence`` (``find_min_passing``: least h with odds < 1 - c)."""
    high = 1
    while _odds(high, t, p) >= 1 - confidence:
        high *= 2
    low = high // 2 + 1 if high > 1 else 1
    while low < high:
        middle = (low + high) // 2
        if _odds(middle, t, p) < 1 - confidence:
            high = middle
        else:
            low = middle + 1
    return low


def queries_needed(p: float) -> int:
    """How many queries LoadGen's early-stopping rule needs before it estimates the ``p``
    percentile at all: one over it, and enough under it (p90: 64, p99: 662)."""
    return min_passing(1, p) + 1


def needed_per_percentile() -> dict[str, int]:
    """For every reported latency percentile, the queries the early-stopping rule needs."""
    return {name: queries_needed(p) for name, p in PERCENTILES.items()}


def one_line(text: Any) -> str:
    """LoadGen's multi-line texts (already flattened in the detail log) with the runs of
    spaces squeezed, to sit in a table cell."""
    return " ".join(str(text or "").split())
