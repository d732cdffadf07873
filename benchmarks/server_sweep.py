"""The server scenario's p99 latency against the offered load, bare metal vs a container.

MLPerf LoadGen offers Poisson-distributed queries at each ``target_qps`` to the same model
(mlp, one thread, up to ``--batch`` queued samples per forward) on bare metal and in a
container built from the same wheels, under the same CPU limit; the suite interleaves the
targets, so each repetition of both ran within seconds of each other. Where the container's
p99 rises earlier than bare metal's, isolation costs latency under load even when it costs no
throughput.

Prints, per offered load: each target's median p99 with its bootstrap 95% interval, how many
repetitions LoadGen ruled VALID (p99 under ``--bound-ms`` and enough queries for early
stopping), and the container/bare ratio of the paired repetitions' p99.

    .venv/bin/python benchmarks/server_sweep.py [--qps 500,1000,2000,4000,8000] [--reps 5]
        [--queries 500] [--bound-ms 10] [--batch 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import stats  # noqa: E402
from bench.results import load, load_cells  # noqa: E402

METRIC = "infer.latency_p99_s"


def suite_text(loads: list[int], reps: int, queries: int, bound_s: float, batch: int) -> str:
    cpus = len(os.sched_getaffinity(0))
    lines = [
        f"name: server-sweep\nrepetitions: {reps}\nmin_iterations: 1",
        "targets:",
        "  - {name: bare, kind: local, baseline: true, build: true}",
        f"  - {{name: ctr, kind: docker, build: true, cpus: {cpus}}}",
        "workloads:",
    ]
    for qps in loads:
        lines.append(
            f"  - {{name: qps-{qps}, kind: inference, model: mlp, device: cpu, threads: 1, "
            f"scenario: server, target_qps: {qps}, target_latency_s: {bound_s}, "
            f"batch_size: {batch}, min_query_count: {queries}, warmup_queries: 50}}"
        )
    return "\n".join(lines) + "\n"


def run_suite(tmp: Path, text: str) -> Path:
    suite = tmp / "server-sweep.yaml"
    suite.write_text(text)
    cmd = [sys.executable, "-m", "bench.cli", "run", str(suite)]
    cmd += ["--results-dir", str(tmp / "results")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bench run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _median_with_interval(values: np.ndarray) -> str:
    interval = stats.median_ci(values)
    text = f"{np.median(values) * 1e3:7.2f} ms"
    return text + (f" [{interval[0] * 1e3:.2f}, {interval[1] * 1e3:.2f}]" if interval else "")


def row(samples: pd.DataFrame, cells: pd.DataFrame, workload: str) -> str:
    """One offered load: each target's p99 and VALID count, and the paired ratio."""
    rows = samples[(samples.workload == workload) & (samples.metric == METRIC)]
    table = rows.pivot_table(index="repetition", columns="target", values="value").dropna()
    if table.empty:
        return f"  {workload:10s} not measured"
    ours = cells[cells.workload == workload]
    valid = ours[ours.verdict == "VALID"].groupby("target").size()
    parts = [f"  {workload:10s}"]
    for target in ("bare", "ctr"):
        count = f"{valid.get(target, 0)}/{(ours.target == target).sum()} VALID"
        parts.append(f"{target} {_median_with_interval(table[target].to_numpy())} {count}")
    found = stats.paired_ratio(table["ctr"].to_numpy(), table["bare"].to_numpy())
    parts.append(f"ctr/bare {'n/a' if found is None else found.describe()}")
    return "  ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--qps", default="500,1000,2000,4000,8000", help="offered loads, comma list"
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--bound-ms", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    loads = [int(q) for q in args.qps.split(",") if q]
    text = suite_text(loads, args.reps, args.queries, args.bound_ms / 1e3, args.batch)
    with tempfile.TemporaryDirectory() as name:
        run_dir = run_suite(Path(name), text)
        samples, cells = load(run_dir), load_cells(run_dir)
        print(
            f"server scenario, mlp on 1 thread, batches up to {args.batch}, {args.queries} "
            f"queries, p99 bound {args.bound_ms:g} ms, {args.reps} interleaved repetitions\n"
            "p99 latency: median [95% CI]; VALID: LoadGen's verdict per repetition\n"
        )
        for qps in loads:
            print(row(samples, cells, f"qps-{qps}"))
        print(f"\n  run directory: {run_dir} (removed)")


if __name__ == "__main__":
    main()
