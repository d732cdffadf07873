"""A history of runs of the same suite: an index with one summary per run, which run is
comparable with which, what changed in the targets' fingerprints, and where a metric's series
of run medians steps.

Layout of a history directory::

    index.jsonl           one line per run, oldest first (see ``Entry``)
    runs/<suite>/<run-id> full run directories (the last ``keep`` ones; older ones are
                          summarised in the index only)
    alerts/<run-id>.md    what a nightly run found, when it found something
    metrics.prom          OpenMetrics text of the latest run's key metrics
    history.parquet       every summary in the index, one row per run and metric

The index holds each run's per-metric medians and quartiles, so trends and change points are
computed from it alone and survive the deletion of old run directories.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bench import results, stats
from bench.compare import direction, key_facts
from bench.errors import ResultsError
from bench.report.terminal import invalid_numbers

INDEX = "index.jsonl"
RUNS = "runs"


def suite_hash(manifest: dict[str, Any]) -> str:
    """A digest of the suite as run (its validated form, defaults filled in), without its
    free-text description: two runs with the same digest ran the same cells."""
    suite = {k: v for k, v in manifest.get("suite", {}).items() if k != "description"}
    canonical = json.dumps(suite, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def identity(entry: dict[str, Any]) -> dict[str, Any]:
    """What a target ran on and with: ``compare.key_facts`` plus the artefacts' identities
    (a rebuilt image or guest disk changes the software even when the versions do not)."""
    artefacts = entry.get("artefacts") or {}
    image = artefacts.get("image")
    guest = artefacts.get("guest")
    built = {
        "image": image.get("id") if isinstance(image, dict) else image,
        "guest": guest.get("key") if isinstance(guest, dict) else guest,
        "qemu": artefacts.get("qemu"),
    }
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
    manifest = results.load_manifest(run_dir)
    samples, cells = results.load(run_dir), results.load_cells(run_dir)
    samples = samples[~samples["cell"].isin(invalid_numbers(cells))]
    summary = stats.summarize(samples)[
        ["workload", "target", "metric", "unit", "n", "median", "q1", "q3", "ci_low", "ci_high"]
    ]
    return Entry(
        run_id=str(manifest.get("run_id", run_dir.name)),
        suite=str(manifest.get("suite", {}).get("name", "")),
        suite_hash=suite_hash(manifest),
        path=str(run_dir.resolve().relative_to(history_dir.resolve())),
        created_at=str(manifest.get("created_at", "")),
        finished_at=manifest.get("finished_at"),
        status=str(manifest.get("status", "")),
        targets={name: identity(e) for name, e in manifest.get("targets", {}).items()},
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


# --- trends -----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class ChangePoint:
    """A step in a metric's series of run medians: the first run after it, and its size."""

    workload: str
    target: str
    metric: str
    run_id: str
    index: int
    before: float
    after: float
    p_value: float

    @property
    def change(self) -> float:
        return self.after / self.before - 1.0 if self.before else float("nan")

    @property
    def worse(self) -> bool | None:
        """True when the step goes the metric's bad way; None for informational metrics."""
        better = direction(self.metric)
        if better is None:
            return None
        return self.after > self.before if better == "lower" else self.after < self.before


MIN_SEGMENT = 4  # with fewer runs a side, a two-sided U test cannot reach p < 0.05


def change_points(
    values: np.ndarray, threshold: float = 0.05, alpha: float = 0.05, min_segment: int = MIN_SEGMENT
) -> list[tuple[int, float]]:
    """Indices where the series steps, by binary segmentation: the split that best fits two
    levels (least total absolute deviation from each side's median) is kept when the sides
    differ by a two-sided Mann-Whitney U test on the run medians (p below ``alpha`` divided by
    the number of candidate splits, since the best of them was picked) and their medians by
    more than ``threshold``; then each side is searched again. The levels found in a stretch
    are kept only when they fit it clearly better than a straight line: a slow drift also makes
    two halves differ, but it is no step at any one run.

    The unit is the run, not the repetition: separate runs drift by more than their
    repetitions spread, and a step must stand out against that drift to count.
    """
    values = np.asarray(values, dtype=float)
    return sorted(_segment(values, threshold, alpha, min_segment))


def _refine(
    values: np.ndarray, found: list[tuple[int, float]], min_segment: int
) -> list[tuple[int, float]]:
    """Move each step to the best split between its neighbours: the first split of a
    staircase fits two levels to three, and one odd run can pull it off its true place."""
    out = list(found)
    for k, (_, p) in enumerate(out):
        low = out[k - 1][0] if k else 0
        high = out[k + 1][0] if k + 1 < len(out) else len(values)
        candidates = range(low + min_segment, high - min_segment + 1)
        if candidates:
            best = min(candidates, key=lambda i: _cost(values[low:i]) + _cost(values[i:high]))
            out[k] = (best, p)
    return out


def _segment(
    values: np.ndarray, threshold: float, alpha: float, min_segment: int
) -> list[tuple[int, float]]:
    """The steps in ``values`` (indices into it): one split, else a stretch that left and came
    back (a regression fixed a few nights later, which no single split separates); then the
    steps inside each part; all of it dropped when a line explains the stretch as well."""
    splits = list(range(min_segment, len(values) - min_segment + 1))
    if not splits:
        return []
    split = min(splits, key=lambda k: _cost(values[:k]) + _cost(values[k:]))
    p = _differ(values[:split], values[split:], threshold, alpha, len(splits))
    if p is not None:
        found = _within(values, [split], p, threshold, alpha, min_segment)
        if not _drift(values, found):
            return found
    # a stretch values[a:b] between two outer parts, each part at least min_segment long
    pairs = [(a, b) for a in splits for b in splits if b - a >= min_segment]
    if not pairs:
        return []
    a, b = min(pairs, key=lambda ab: sum(_cost(part) for part in np.split(values, ab)))
    p = _differ(np.r_[values[:a], values[b:]], values[a:b], threshold, alpha, len(pairs))
    if p is None:
        return []
    found = _within(values, [a, b], p, threshold, alpha, min_segment)
    return [] if _drift(values, found) else found


def _within(
    values: np.ndarray, edges: list[int], p: float, threshold: float, alpha: float, minimum: int
) -> list[tuple[int, float]]:
    """The steps at ``edges`` (all with p-value ``p``) and those found inside the parts."""
    found = [(edge, p) for edge in edges]
    for start, end in itertools.pairwise([0, *edges, len(values)]):
        found += [(start + i, q) for i, q in _segment(values[start:end], threshold, alpha, minimum)]
    return _refine(values, sorted(found), minimum)


def _differ(
    left: np.ndarray, right: np.ndarray, threshold: float, alpha: float, tried: int
) -> float | None:
    """The U test's p-value when the two sides differ in median by more than ``threshold``
    and significantly after a Bonferroni correction for the ``tried`` candidates; else None."""
    base = float(np.median(left))
    if base == 0 or abs(float(np.median(right)) / base - 1.0) <= threshold:
        return None
    p = float(scipy_stats.mannwhitneyu(left, right, alternative="two-sided").pvalue)
    return p if p * tried < alpha else None


# The levels between the steps found must leave at most this share of what the best straight
# line leaves unexplained: splits chosen among many always fit a little better than a line, even
# on a slow drift (rates measured on synthetic series by benchmarks/change_points.py).
STEP_GAIN = 0.8


def _drift(values: np.ndarray, found: list[tuple[int, float]]) -> bool:
    """True when a straight line (Theil-Sen, robust to a few odd runs) explains ``values``
    nearly as well as the levels between the steps ``found``: a machine or stack that drifts
    slowly also makes its two halves differ, and naming one run as the change would send
    people looking for a cause at the wrong night."""
    levels = sum(_cost(part) for part in np.split(values, [i for i, _ in found]))
    slope, intercept, _, _ = scipy_stats.theilslopes(values)
    line = intercept + slope * np.arange(len(values))
    return levels > STEP_GAIN * float(np.abs(values - line).sum())


def _cost(segment: np.ndarray) -> float:
    """Total absolute deviation from the segment's median: the L1 fit of one level."""
    return float(np.abs(segment - np.median(segment)).sum())


def detect(frame: pd.DataFrame, threshold: float = 0.05, alpha: float = 0.05) -> list[ChangePoint]:
    """Change points of every (workload, target, metric) series in ``series()``'s frame."""
    out = []
    for (workload, target, metric), group in frame.groupby(
        ["workload", "target", "metric"], sort=False
    ):
        group = group.sort_values("order")
        values = group["median"].to_numpy(dtype=float)
        found = change_points(values, threshold, alpha)
        edges = [0, *(i for i, _ in found), len(values)]
        for k, (index, p) in enumerate(found):  # sizes between the neighbouring steps
            before = float(np.median(values[edges[k] : index]))
            after = float(np.median(values[index : edges[k + 2]]))
            run_id = str(group["run_id"].iloc[index])
            out.append(ChangePoint(workload, target, metric, run_id, index, before, after, p))
    return out
