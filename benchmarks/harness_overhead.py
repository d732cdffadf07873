"""What does the harness itself cost a measurement?

Runs one training workload two ways, alternating so that machine drift hits both equally:

* through ``bench run`` (a fresh worker process per repetition, events streamed to the
  controller, memory probe sampling, progress display, results written to disk);
* by calling the same workload function directly in this process.

Prints each measurement and the ratio of median throughputs (harness / direct). A ratio of
1.00 means the harness adds nothing to what it measures; the target is within 2%.

    .venv/bin/python benchmarks/harness_overhead.py [--pairs 7] [--steps 150]
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

from bench.results import load  # noqa: E402
from workloads import run_workload  # noqa: E402

WORKLOAD = {
    "name": "train-mlp",
    "kind": "train_step",
    "model": "mlp",
    "batch_size": 64,
    "warmup_steps": 10,
}


def suite_text(steps: int) -> str:
    options = ", ".join(f"{k}: {v}" for k, v in {**WORKLOAD, "steps": steps}.items())
    return (
        "name: overhead\nrepetitions: 1\n"
        "targets: [{name: bare, kind: local}]\n"
        f"workloads:\n  - {{{options}}}\n"
    )


def through_harness(suite: Path, results: Path, index: int) -> float:
    """Train throughput of one ``bench run`` repetition."""
    cmd = [sys.executable, "-m", "bench.cli", "run", str(suite), "--results-dir", str(results)]
    cmd += ["--run-id", f"pair{index}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    df = load(done.stdout.strip().splitlines()[-1])
    return float(df[df.metric == "train.throughput"]["value"].iloc[0])


def direct(steps: int, seed: int) -> float:
    """Train throughput of the same workload function called in this process."""
    spec = {"workload": {**WORKLOAD, "steps": steps}, "seed": seed}
    return float(run_workload(spec)["metrics"]["train.throughput"]["value"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    harness, inproc = [], []
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "overhead.yaml"
        suite.write_text(suite_text(args.steps))
        direct(args.steps, 0)  # warm this process's imports and allocator once, unmeasured
        for i in range(args.pairs):
            harness.append(through_harness(suite, Path(tmp) / "results", i))
            inproc.append(direct(args.steps, 0))
            print(f"pair {i}: harness {harness[-1]:9.1f}  direct {inproc[-1]:9.1f} samples/s")
    h, d = statistics.median(harness), statistics.median(inproc)
    print(f"median harness {h:.1f} samples/s, median direct {d:.1f} samples/s")
    print(f"ratio harness/direct = {h / d:.4f} ({(h / d - 1) * 100:+.2f}%)")


if __name__ == "__main__":
    main()
