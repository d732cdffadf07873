"""A run's key metrics as Prometheus gauges, built once and published two ways: written for
node_exporter's textfile collector (the nightly history's ``metrics.prom``) or pushed to a
Pushgateway (``bench nightly --pushgateway``, ``bench export --pushgateway``).

Both carry the same series, so a dashboard reads either source the same way:
``bench_metric_median{suite,target,workload,metric,unit}`` (the median over the run's VALID
cells, as the nightly index and comparisons take it), ``bench_last_run_timestamp_seconds``
and ``bench_run_info{run_id}`` (which run the values are from), and for a nightly run
``bench_regressions`` and ``bench_fingerprint_changes``, all labelled with the suite.

A push goes to job ``bench`` grouped by suite. The Pushgateway replaces a group as a whole,
so it holds each suite's latest pushed run (nightly's or an export's): the latest value per
series that a Prometheus query expects, and a gateway that never grows with the number of
runs. A run id in the grouping key would keep every run's group, and Prometheus would scrape
all of them as current, forever.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from bench import results, stats
from bench.errors import InputError, PushError
from bench.metrics import KEY_METRICS
from bench.nightly.webhook import describe, malformed

JOB = "bench"
TIMEOUT_S = 10.0  # each connect and read; a push is one small request
METRIC_LABELS = ("suite", "target", "workload", "metric", "unit")


@dataclass(frozen=True)
class Published:
    """What is published of one run. ``regressions`` and ``fingerprint_changes`` are known
    only to a nightly run (compared with the history): None leaves their gauges out."""

    suite: str
    run_id: str
    finished: float  # Unix seconds: when the run finished, or started if it never did
    summary: list[dict[str, Any]]  # stats.summarize rows: workload, target, metric, unit, median
    regressions: int | None = None
    fingerprint_changes: int | None = None


def timestamp(finished_at: str | None, created_at: str | None) -> float:
    """A run's finish (else start) time, ISO 8601 as manifests store it, in Unix seconds."""
    return round(pd.Timestamp(finished_at or created_at).timestamp(), 3)


def of_run(run_dir: Path) -> Published:
    """A stored run's medians (VALID cells only) ready to publish; ``ResultsError`` when
    ``run_dir`` is not one run."""
    path = results.run_dir(run_dir)
    manifest = results.read_manifest(path)
    summary = stats.summarize(results.load_valid(path))
    return Published(
        suite=manifest.suite.name,
        run_id=results.run_name(path, manifest),
        finished=timestamp(manifest.finished_at, manifest.created_at),
        summary=summary.to_dict("records"),
    )


_HELP = {
    "bench_regressions": "Regressions found against the previous comparable run.",
    "bench_fingerprint_changes": "Target fingerprint changes since the previous run.",
    "bench_last_run_timestamp_seconds": "When the suite's latest run finished.",
    "bench_run_info": "The suite's latest run (always 1; its id is the run_id label).",
}


def registry(run: Published) -> CollectorRegistry:
    """The run's gauges in a registry of their own (never the process-wide default one)."""
    found = CollectorRegistry()
    medians = Gauge(
        "bench_metric_median",
        "Median of a key metric over the repetitions of the suite's latest run.",
        METRIC_LABELS,
        registry=found,
    )
    for row in run.summary:
        if row["metric"] in KEY_METRICS:
            labels = {k: str(row[k]) for k in METRIC_LABELS if k != "suite"}
            medians.labels(suite=run.suite, **labels).set(row["median"])
    _suite_gauge(found, run, "bench_regressions", run.regressions)
    _suite_gauge(found, run, "bench_fingerprint_changes", run.fingerprint_changes)
    _suite_gauge(found, run, "bench_last_run_timestamp_seconds", run.finished)
    info = Gauge("bench_run_info", _HELP["bench_run_info"], ("suite", "run_id"), registry=found)
    info.labels(suite=run.suite, run_id=run.run_id).set(1)
    return found


def _suite_gauge(into: CollectorRegistry, run: Published, name: str, value: float | None) -> None:
    if value is not None:
        Gauge(name, _HELP[name], ("suite",), registry=into).labels(suite=run.suite).set(value)


def check_url(url: str) -> str:
    """``url`` when a push can be addressed to it, else ``InputError`` saying what is wrong.
    Credentials are refused: the URL is printed in messages and stored in schedules."""
    problem = malformed(url)
    if problem is None:
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None or parts.password is not None:
            problem = "credentials in the URL are not supported"
        elif parts.query or parts.fragment:
            problem = "a query or fragment has no place in a Pushgateway address"
    if problem is not None:
        raise InputError(
            f"--pushgateway {shown(url)!r}: {problem}",
            hint="give the gateway's address, e.g. http://pushgateway.example.com:9091",
        )
    return url


def shown(url: str) -> str:
    """``url`` with any user name and password masked, for messages."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def push(url: str, run: Published, timeout_s: float = TIMEOUT_S) -> int:
    """Push the run's gauges to the Pushgateway at ``url`` (job ``bench``, grouped by suite),
    replacing the suite's previous push; the number of series pushed. ``PushError`` names
    the gateway and the cause when it cannot be reached or refuses."""
    gauges = registry(run)
    try:
        push_to_gateway(url, JOB, gauges, {"suite": run.suite}, timeout=timeout_s)
    except Exception as exc:  # urllib's and the socket's, translated here once
        raise PushError(
            f"Pushgateway {shown(url)}: run {run.run_id} not pushed: {_cause(exc)}",
            hint="check that the gateway runs and the address is right",
        ) from None
    return sum(len(family.samples) for family in gauges.collect())


def _cause(exc: BaseException) -> str:
    """Why a push failed: the HTTP status and the gateway's own first line (it says which
    metric it refused), else the kind of network failure."""
    if isinstance(exc, urllib.error.HTTPError):
        try:
            said = exc.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            said = []
        return f"HTTP {exc.code}" + (f" ({said[0][:200]})" if said else "")
    return describe(exc)
