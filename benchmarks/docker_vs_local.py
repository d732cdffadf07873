"""Container vs bare metal, built from the same wheelhouse: start-up and training throughput.

Runs one suite with a ``local`` target (the matched venv) and a ``docker`` target (the matched
image) under equal CPU limits (the container gets every core the host has), interleaved, then
times ``docker run --rm IMAGE true`` with hyperfine in the same invocation, so that bench's
``startup.provision_s`` for a container can be checked against an independent tool.

Prints: the container's start-up phases next to hyperfine's figure, and the container/bare
throughput ratio per repetition pair (same repetition index, adjacent in time) with its median
and a bootstrap 95% confidence interval.

    .venv/bin/python benchmarks/docker_vs_local.py [--reps 10] [--steps 300] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results import load, load_manifest  # noqa: E402


def run_suite(tmp: Path, reps: int, steps: int, threads: int | None) -> Path:
    cpus = len(os.sched_getaffinity(0))
    extra = f", threads: {threads}" if threads else ""
    suite = tmp / "docker-vs-local.yaml"
    suite.write_text(
        f"name: docker-vs-local\nrepetitions: {reps}\n"
        "targets:\n  - {name: bare, kind: local, baseline: true, build: true}\n"
        f"  - {{name: ctr, kind: docker, build: true, cpus: {cpus}, network: none}}\n"
        "workloads:\n  - {name: train, kind: train_step, model: mlp, batch_size: 64, "
        f"steps: {steps}, warmup_steps: 20{extra}}}\n"
    )
    cmd = [sys.executable, "-m", "bench.cli", "run", str(suite)]
    cmd += ["--results-dir", str(tmp / "results")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bench run failed:\n{done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def hyperfine(command: str, runs: int, tmp: Path, prepare: str | None = None) -> dict[str, Any]:
    """hyperfine's median of ``command`` (``prepare`` runs before each timing, untimed)."""
    if shutil.which("hyperfine") is None:
        sys.exit("hyperfine is not installed (apt-get install hyperfine)")
    out = tmp / "hyperfine.json"
    args = ["hyperfine", "--warmup", "3", "--runs", str(runs), "--export-json", str(out)]
    args += ["--prepare", prepare] if prepare else []
    subprocess.run([*args, command], check=True, capture_output=True)
    result = json.loads(out.read_text())["results"][0]
    return {"command": command, "median": result["median"]}


def independent(image: str, runs: int, tmp: Path) -> list[dict[str, Any]]:
    """The docker CLI timed by hyperfine: create, start, and a whole ``docker run --rm``."""
    flags = f"--network none --cpus {len(os.sched_getaffinity(0))}"
    fresh = "docker rm -f bench-hyperfine >/dev/null 2>&1 || true"
    created = f"{fresh}; docker create --name bench-hyperfine {flags} {image} true >/dev/null"
    try:
        return [
            hyperfine(
                f"docker create --name bench-hyperfine {flags} {image} true", runs, tmp, fresh
            ),
            hyperfine("docker start bench-hyperfine", runs, tmp, created),
            hyperfine(f"docker run --rm {flags} {image} true", runs, tmp),
            hyperfine(f"docker run --rm {image} true", runs, tmp),
        ]
    finally:
        subprocess.run(fresh, shell=True, check=False)


def paired_ratios(df, metric: str) -> np.ndarray:
    rows = df[df.metric == metric].pivot_table(index="repetition", columns="target", values="value")
    return (rows["ctr"] / rows["bare"]).to_numpy()


def median_ci(values: np.ndarray) -> tuple[float, float]:
    res = stats.bootstrap((values,), np.median, confidence_level=0.95, random_state=0)
    return res.confidence_interval.low, res.confidence_interval.high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--runs", type=int, default=20, help="hyperfine runs")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        run_dir = run_suite(tmp, args.reps, args.steps, args.threads)
        df = load(run_dir)
        image = load_manifest(run_dir)["targets"]["ctr"]["artefacts"]["image"]["tag"]
        timed = independent(image, args.runs, tmp)
    medians = df.groupby(["metric", "target"])["value"].median().unstack()
    print(f"image {image}, {args.reps} interleaved repetitions per target\n")
    for metric in ("startup.create_s", "startup.start_s", "startup.provision_s"):
        print(f"  ctr {metric:22s} {medians.loc[metric, 'ctr'] * 1e3:8.1f} ms (median)")
    print(
        f"  bare startup.provision_s     {medians.loc['startup.provision_s', 'bare'] * 1e3:8.1f} ms"
    )
    for result in timed:
        print(f"  hyperfine '{result['command']}': median {result['median'] * 1e3:.1f} ms")
    print()
    for metric in ("train.throughput", "train.step_time_s"):
        ratios = paired_ratios(df, metric)
        low, high = median_ci(ratios)
        print(
            f"  {metric:18s} bare {medians.loc[metric, 'bare']:10.4g}  ctr "
            f"{medians.loc[metric, 'ctr']:10.4g}  ctr/bare median {np.median(ratios):.4f} "
            f"[95% CI {low:.4f}, {high:.4f}]"
        )
    print(f"\n  run directory: {run_dir} (removed)")


if __name__ == "__main__":
    main()
