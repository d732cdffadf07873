"""Does bench see a 5% slowdown, and does it stay quiet when there is none?

Each trial is one ``bench run`` of a suite with three bare-metal targets running the same
training workload, with the suite's default repetitions, interleaved:

* ``base``, the baseline;
* ``twin``, identical to ``base``: its overhead CI must contain 1.0 ("no measurable difference");
* ``slow``, whose worker stretches every iteration by 5% (``BENCH_INJECT_SLOWDOWN=0.05``): its
  overhead CI must exclude 1.0, on the slow side.

Prints the overhead table rows of every trial as the summary shows them (the median of the
per-repetition ratios, paired by repetition because the run is interleaved, with its bootstrap
95% CI), then, for that method and for comparing the two groups as independent samples (ratio
of medians), how many trials detected the slowdown and how many reported a difference between
the twins.

    .venv/bin/python benchmarks/sensitivity.py [--trials 3] [--steps 200] [--slowdown 0.05]
        [--threads N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results import load  # noqa: E402
from bench.stats import overhead  # noqa: E402

METRICS = ("train.throughput", "train.step_time_s")


def suite_text(steps: int, slowdown: float, threads: int | None) -> str:
    pinned = f", threads: {threads}" if threads else ""
    return f"""\
name: sensitivity
targets:
  - {{name: base, kind: local, baseline: true}}
  - {{name: twin, kind: local}}
  - {{name: slow, kind: local, env: {{BENCH_INJECT_SLOWDOWN: "{slowdown}"}}}}
workloads:
  - {{name: train, kind: train_step, model: mlp, batch_size: 64, steps: {steps},
     warmup_steps: 20{pinned}}}
"""


METHODS = {"paired": True, "independent": False}


def trial(suite: Path, results: Path, index: int):
    """Overhead tables of one ``bench run``, by each method, and its repetitions."""
    cmd = [sys.executable, "-m", "bench.cli", "run", str(suite), "--results-dir", str(results)]
    cmd += ["--run-id", f"trial{index}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    samples = load(done.stdout.strip().splitlines()[-1])
    samples = samples[samples.metric.isin(METRICS)]
    tables = {name: overhead(samples, "base", paired=p) for name, p in METHODS.items()}
    return tables, int(samples["repetition"].max()) + 1


def judge(row) -> tuple[bool, bool]:
    """(a difference was established, and it is a slowdown)."""
    measurable = not pd_isna(row.ci_low) and not row.ci_low <= 1.0 <= row.ci_high
    slower = row.ratio < 1.0 if row.metric == "train.throughput" else row.ratio > 1.0
    return measurable, slower


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--slowdown", type=float, default=0.05)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    detected = {(m, metric): 0 for m in METHODS for metric in METRICS}
    false_alarms = dict.fromkeys(detected, 0)
    with tempfile.TemporaryDirectory(prefix="bench-sensitivity-") as tmp:
        suite = Path(tmp) / "sensitivity.yaml"
        suite.write_text(suite_text(args.steps, args.slowdown, args.threads))
        for index in range(args.trials):
            tables, reps = trial(suite, Path(tmp) / "results", index)
            print(f"trial {index + 1} ({reps} repetitions per target)", flush=True)
            for method, table in tables.items():
                for row in table.itertuples(index=False):
                    if method == "paired":
                        print(f"  {row.target:5s} {row.metric:18s} {row.verdict}", flush=True)
                    measurable, slower = judge(row)
                    if row.target == "slow":
                        detected[method, row.metric] += measurable and slower
                    else:
                        false_alarms[method, row.metric] += measurable
    for method, metric in detected:
        print(
            f"{method:11s} {metric}: {args.slowdown:.0%} slowdown detected in "
            f"{detected[method, metric]}/{args.trials} trials; identical targets reported "
            f"different in {false_alarms[method, metric]}/{args.trials}"
        )


def pd_isna(value: object) -> bool:
    return value is None or value != value


if __name__ == "__main__":
    main()
