"""Does bench see a 5% slowdown, and does it stay quiet when there is none?

Each trial is one ``bench run`` of a suite with three bare-metal targets running the same
training workload, with the suite's default repetitions, interleaved:

* ``base``, the baseline;
* ``twin``, identical to ``base``: its overhead CI must contain 1.0 ("no measurable difference");
* ``slow``, whose worker stretches every iteration by 5% (``BENCH_INJECT_SLOWDOWN=0.05``): its
  overhead CI must exclude 1.0, on the slow side.

Prints the overhead table rows of every trial (ratio of medians with its bootstrap 95% CI, the
same computation the summary uses), then how many trials detected the slowdown and how many
reported a difference between the twins.

    .venv/bin/python benchmarks/sensitivity.py [--trials 3] [--steps 200] [--slowdown 0.05]
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


def suite_text(steps: int, slowdown: float) -> str:
    return f"""\
name: sensitivity
targets:
  - {{name: base, kind: local, baseline: true}}
  - {{name: twin, kind: local}}
  - {{name: slow, kind: local, env: {{BENCH_INJECT_SLOWDOWN: "{slowdown}"}}}}
workloads:
  - {{name: train, kind: train_step, model: mlp, batch_size: 64, steps: {steps},
     warmup_steps: 20}}
"""


def trial(suite: Path, results: Path, index: int):
    cmd = [sys.executable, "-m", "bench.cli", "run", str(suite), "--results-dir", str(results)]
    cmd += ["--run-id", f"trial{index}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    samples = load(done.stdout.strip().splitlines()[-1])
    table = overhead(samples[samples.metric.isin(METRICS)], "base")
    return table, int(samples["repetition"].max()) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--slowdown", type=float, default=0.05)
    args = parser.parse_args()
    detected = {m: 0 for m in METRICS}
    false_alarms = {m: 0 for m in METRICS}
    with tempfile.TemporaryDirectory(prefix="bench-sensitivity-") as tmp:
        suite = Path(tmp) / "sensitivity.yaml"
        suite.write_text(suite_text(args.steps, args.slowdown))
        for index in range(args.trials):
            table, reps = trial(suite, Path(tmp) / "results", index)
            print(f"trial {index + 1} ({reps} repetitions per target)")
            for row in table.itertuples(index=False):
                print(f"  {row.target:5s} {row.metric:18s} {row.verdict}")
                measurable = not pd_isna(row.ci_low) and not row.ci_low <= 1.0 <= row.ci_high
                if row.target == "slow":
                    slower = row.ratio < 1.0 if row.metric == "train.throughput" else row.ratio > 1
                    detected[row.metric] += measurable and slower
                else:
                    false_alarms[row.metric] += measurable
    for metric in METRICS:
        print(
            f"{metric}: {args.slowdown:.0%} slowdown detected in {detected[metric]}/{args.trials}"
            f" trials; identical targets reported different in "
            f"{false_alarms[metric]}/{args.trials}"
        )


def pd_isna(value: object) -> bool:
    return value is None or value != value


if __name__ == "__main__":
    main()
