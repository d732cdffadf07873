"""What does the harness itself cost a measurement?

Runs one training workload two ways, alternating so that machine drift hits both equally:

* through ``bench run`` (a fresh worker process per repetition, events streamed to the
  controller, host memory probe, progress display, results written to disk);
* by calling the same workload function directly in this process.

Prints each pair and two ratios (harness / direct): of the median throughputs, and of the
median step time over every measured step (robust to a pair disturbed by other tenants of
the machine). 1.00 means the harness adds nothing to what it measures; the target is 2%.

    .venv/bin/python benchmarks/harness_overhead.py [--pairs 7] [--steps 150] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results import load, load_raw  # noqa: E402
from workloads import run_workload  # noqa: E402

WORKLOAD = {"name": "train-mlp", "kind": "train_step", "model": "mlp", "batch_size": 64}


def workload(steps: int, threads: int | None) -> dict:
    """The workload both paths run; ``threads`` None leaves torch's default."""
    extra = {"threads": threads} if threads else {}
    return {**WORKLOAD, "steps": steps, "warmup_steps": 10, **extra}


def suite_text(options: dict) -> str:
    fields = ", ".join(f"{k}: {v}" for k, v in options.items())
    return (
        "name: overhead\nrepetitions: 1\n"
        "targets: [{name: bare, kind: local}]\n"
        f"workloads:\n  - {{{fields}}}\n"
    )


def through_harness(suite: Path, results: Path, index: int) -> tuple[float, list[float]]:
    """Throughput and step times of one ``bench run`` repetition."""
    cmd = [sys.executable, "-m", "bench.cli", "run", str(suite), "--results-dir", str(results)]
    cmd += ["--run-id", f"pair{index}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    run_dir = done.stdout.strip().splitlines()[-1]
    df = load(run_dir)
    throughput = float(df[df.metric == "train.throughput"]["value"].iloc[0])
    (raw,) = load_raw(run_dir).values()
    return throughput, raw["step_time_s"]


def direct(options: dict) -> tuple[float, list[float]]:
    """Throughput and step times of the same workload function called in this process."""
    result = run_workload({"workload": options, "seed": 0})
    return float(result["metrics"]["train.throughput"]["value"]), result["raw"]["step_time_s"]


def ratio_line(label: str, harness: float, inproc: float, unit: str) -> str:
    return (
        f"{label}: harness {harness:.6g} {unit}, direct {inproc:.6g} {unit}, "
        f"ratio {harness / inproc:.4f} ({(harness / inproc - 1) * 100:+.2f}%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    options = workload(args.steps, args.threads)
    harness: list[float] = []
    inproc: list[float] = []
    steps: dict[str, list[float]] = {"harness": [], "direct": []}
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "overhead.yaml"
        suite.write_text(suite_text(options))
        direct(options)  # warm this process's imports and allocator once, unmeasured
        for i in range(args.pairs):
            value, times = through_harness(suite, Path(tmp) / "results", i)
            harness.append(value)
            steps["harness"] += times
            value, times = direct(options)
            inproc.append(value)
            steps["direct"] += times
            print(f"pair {i}: harness {harness[-1]:9.1f}  direct {inproc[-1]:9.1f} samples/s")
    print(f"workload: {options}")
    print(ratio_line("median throughput", *map(statistics.median, (harness, inproc)), "samples/s"))
    step_medians = (statistics.median(steps["harness"]), statistics.median(steps["direct"]))
    print(ratio_line("median step time", *(t * 1e3 for t in step_medians), "ms"))


if __name__ == "__main__":
    main()
