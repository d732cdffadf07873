"""Where the data lives: a JPEG loader and a checkpoint load, container vs bare metal, with the
dataset and checkpoint in the image layer, on a volume and in RAM.

One suite, interleaved and with the page cache dropped before every repetition (``cache:
cold``), so each read of the image layer (overlayfs) and of the volume (a bind mount of the
host's directory) comes from the disk; ``tmpfs`` copies the files into RAM first. Both
targets run the same matched wheels, under the same CPU limit.

Prints, per location: the bare and container medians of ``data.throughput`` (JPEGs decoded
and augmented per second) and ``startup.load_weights_s`` (ResNet-50's 100 MB checkpoint read
and loaded), and the container/bare ratio of the paired repetitions with bench's bootstrap 95%
interval.

    .venv/bin/python benchmarks/io_paths.py [--reps 8] [--samples 512] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import stats  # noqa: E402
from bench.results import load  # noqa: E402

LOCATIONS = ("image", "volume", "tmpfs")


def suite_text(reps: int, samples: int, workers: int) -> str:
    cpus = len(os.sched_getaffinity(0))
    lines = [
        f"name: io-paths\nrepetitions: {reps}\ncache: cold\nmin_iterations: 3",
        "targets:",
        "  - {name: bare, kind: local, baseline: true, build: true}",
        f"  - {{name: ctr, kind: docker, build: true, cpus: {cpus}, shm_size: 1g}}",
        "workloads:",
    ]
    for where in LOCATIONS:
        lines.append(
            f"  - {{name: jpeg-{where}, kind: data_loading, location: {where}, "
            f"dataset: {{format: jpeg, samples: {samples}, image_size: 128}}, "
            f"batch_size: 16, num_workers: {workers}, warmup_batches: 2}}"
        )
        lines.append(
            f"  - {{name: ckpt-{where}, kind: inference, model: resnet50, image_size: 64, "
            f"location: {where}, min_query_count: 3, warmup_queries: 1, device: cpu}}"
        )
    return "\n".join(lines) + "\n"


def run_suite(tmp: Path, reps: int, samples: int, workers: int) -> Path:
    suite = tmp / "io-paths.yaml"
    suite.write_text(suite_text(reps, samples, workers))
    cmd = [sys.executable, "-m", "bench.cli", "run", str(suite)]
    cmd += ["--results-dir", str(tmp / "results")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bench run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def report(df, workload: str, metric: str) -> str:
    rows = df[(df.workload == workload) & (df.metric == metric)]
    table = rows.pivot_table(index="repetition", columns="target", values="value").dropna()
    if table.empty:
        return f"  {workload:13s} {metric:24s} not measured"
    bare, ctr = table["bare"].to_numpy(), table["ctr"].to_numpy()
    found = stats.paired_ratio(ctr, bare)
    said = "n/a" if found is None else found.describe()
    return (
        f"  {workload:13s} {metric:24s} bare {np.median(bare):10.4g}  ctr {np.median(ctr):10.4g}"
        f"  ctr/bare {said}  (n={len(table)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        run_dir = run_suite(Path(name), args.reps, args.samples, args.workers)
        df = load(run_dir)
        print(f"{args.reps} interleaved repetitions per target, page cache dropped before each\n")
        for where in LOCATIONS:
            print(report(df, f"jpeg-{where}", "data.throughput"))
            print(report(df, f"jpeg-{where}", "data.bandwidth"))
            print(report(df, f"ckpt-{where}", "startup.load_weights_s"))
        print(f"\n  run directory: {run_dir} (removed)")


if __name__ == "__main__":
    main()
