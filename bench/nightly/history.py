"""A history of runs of the same suite: an index with one summary per run, which run is
comparable with which, and what changed in the targets' fingerprints.

Layout of a history directory::

    index.jsonl           one line per run, oldest first (see ``Entry``)
    runs/<suite>/<run-id> full run directories (the last ``keep`` ones; older ones are
                          summarised in the index only)
    alerts/<run-id>.md    what a nightly run found, when it found something
    metrics.prom          the latest run's key metrics, Prometheus text format
    history.parquet       every summary in the index, one row per run and metric (needs
                          pyarrow: the parquet extra)

The index holds each run's per-metric medians and quartiles, so trends, change points
(``changepoints``) and the run-to-run drift (``drift``) are computed from it alone and survive
the deletion of old run directories (``retention``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from bench import results, stats
from bench.compare import key_facts
from bench.errors import ResultsError
from bench.results.model import Manifest, TargetEntry
from bench.targets import registry

INDEX = "index.jsonl"
RUNS = "runs"


def suite_hash(manifest: Manifest) -> str:
    """A digest of the suite as run (its validated form, defaults filled in), without its
    free-text description: two runs with the same digest ran the same cells."""
    suite = {k: v for k, v in manifest.suite.as_written().items() if k != "description"}
    canonical = json.dumps(suite, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def identity(entry: TargetEntry) -> dict[str, Any]:
    """What a target ran on and with: ``compare.key_facts`` plus the ids of its built
    artefacts, as its kind records them (a rebuilt image or guest disk changes the software
    even when the versions do not)."""
    built = registry.kind(entry.kind or "").identity(entry.artefacts)
    return {**key_facts(entry), **{k: v for k, v in built.items() if v}}


@dataclass
class Entry:
    """One run in the index."""

    run_id: str
    suite: str
    suite_hash: str
    path: str  # relative to the history directory; "" once the run was pruned
    created_at: str
    finished_at: str | None
    status: str
    targets: dict[str, dict[str, Any]]  # target -> identity()
    summary: list[dict[str, Any]]  # stats.summarize rows: workload, target, metric, ...
    compared_with: str | None = None
    regressions: int = 0
    events: list[str] = field(default_factory=list)
    verdict: str = ""


def summarize_run(run_dir: Path, history_dir: Path) -> Entry:
    """An index entry for the stored run in ``run_dir`` (INVALID cells left out of the
    medians, as in a comparison)."""
    manifest = results.read_manifest(run_dir)
    summary = stats.summarize(results.load_valid(run_dir))[
        ["workload", "target", "metric", "unit", "n", "median", "q1", "q3", "ci_low", "ci_high"]
    ]
    return Entry(
        run_id=results.run_name(run_dir, manifest),
        suite=manifest.suite.name,
        suite_hash=suite_hash(manifest),
        path=str(run_dir.resolve().relative_to(history_dir.resolve())),
        created_at=manifest.created_at or "",
        finished_at=manifest.finished_at,
        status=manifest.status or "",
        targets={name: identity(e) for name, e in manifest.targets.items()},
        summary=json.loads(summary.to_json(orient="records")),
    )


def run_path(root: Path, entry: Entry) -> Path:
    """The run directory ``entry`` names, refused (``ResultsError``) unless it lies inside the
    history as written: relative, no ``..``, no symbolic link on the way. The index is data,
    and ``prune`` deletes what it names."""
    relative = PurePosixPath(entry.path)
    real_root = root.resolve()
    path = real_root.joinpath(*relative.parts)
    inside = relative.parts and not relative.is_absolute() and ".." not in relative.parts
    if not inside or path.resolve() != path:
        raise ResultsError(
            f"{root / INDEX}: run {entry.run_id}: path {entry.path!r} is not a run directory "
            "inside the history (absolute, '..' or a symbolic link); not touched"
        )
    return path


class History:
    """The index of one history directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.index = self.root / INDEX

    def entries(self) -> list[Entry]:
        if not self.index.exists():
            return []
        out = []
        for number, line in enumerate(self.index.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(Entry(**json.loads(line)))
            except (ValueError, TypeError) as exc:
                raise ResultsError(
                    f"{self.index}:{number}: malformed history entry: {exc}"
                ) from None
        return out

    def save(self, entries: list[Entry]) -> None:
        text = "".join(json.dumps(asdict(e), default=str) + "\n" for e in entries)
        results.write_atomic(self.index, text)

    def append(self, entry: Entry) -> None:
        self.save([*self.entries(), entry])


def previous(entries: list[Entry], new: Entry) -> tuple[Entry | None, list[str]]:
    """The newest earlier run that ``new`` can be compared with (same suite digest, same
    target identities, complete or failed but measured, its directory still kept), and the
    fingerprint events: what changed in the targets since the newest earlier run of the same
    suite."""
    same_suite = [e for e in entries if e.suite_hash == new.suite_hash and e.run_id != new.run_id]
    events = _events(same_suite[-1], new) if same_suite else []
    comparable = [e for e in same_suite if e.targets == new.targets and e.summary and e.path]
    return (comparable[-1] if comparable else None), events


def _events(before: Entry, after: Entry) -> list[str]:
    """One line per changed fact, e.g. "bare: kernel 6.1.0-17 -> 6.1.0-18"."""
    out = []
    for target in after.targets:
        old, new = before.targets.get(target), after.targets[target]
        if old is None:
            out.append(f"{target}: new target")
            continue
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                out.append(f"{target}: {key} {old.get(key)!r} -> {new.get(key)!r}")
    return out


def series(entries: list[Entry]) -> pd.DataFrame:
    """One row per run and (workload, target, metric): the run's median and quartiles, in
    run order; the frame the trend table, the plots and the change points read."""
    rows = [
        {"run_id": e.run_id, "created_at": e.created_at, "order": i, **row}
        for i, e in enumerate(entries)
        for row in e.summary
    ]
    columns = ["run_id", "created_at", "order", "workload", "target", "metric", "unit"]
    columns += ["n", "median", "q1", "q3", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns)
