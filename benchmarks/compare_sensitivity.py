"""What ``bench compare`` detects between separate runs on this machine: per trial, a base
run, an identical run, and a run whose worker is slowed by a known fraction
(``BENCH_INJECT_SLOWDOWN``), all with the same suite; then compare identical vs base (a
regression here is a false alarm) and slowed vs base (a regression here is a detection).

    .venv/bin/python benchmarks/compare_sensitivity.py --trials 3 --slowdown 0.10

Runs are separate processes minutes apart, so unlike a paired interleaved run the machine's
drift between them is part of the noise; this measures that, on purpose.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SUITE = """\
name: sensitivity-{name}
repetitions: {repetitions}
targets:
  - {{name: bare, kind: local, baseline: true, env: {{BENCH_INJECT_SLOWDOWN: "{slowdown}"}}}}
workloads:
  - {{name: train, kind: train_step, model: mlp, batch_size: 32, steps: 60, warmup_steps: 10,
     threads: 1}}
"""
METRIC = "train.step_time_s"


def run(root: Path, name: str, repetitions: int, slowdown: float) -> Path:
    suite = root / f"{name}.yaml"
    suite.write_text(SUITE.format(name=name, repetitions=repetitions, slowdown=slowdown))
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", str(suite), "--results-dir", str(root),
         "--run-id", name, "--no-report"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"bench run failed:\n{done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def compare(base: Path, new: Path) -> dict:
    """The step-time row of ``bench compare --format json`` (suites differ only in name and
    the slowdown, which the comparison notes)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", "compare", str(base), str(new), "--format", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode not in (0, 1):
        raise SystemExit(f"bench compare failed:\n{done.stderr}")
    rows = json.loads(done.stdout)["rows"]
    return next(r for r in rows if r["metric"] == METRIC)


def describe(row: dict) -> str:
    if row["ci_low"] is None:
        return f"{row['change']:+.1%} (no CI), p={row['p_value']:.3f}: {row['status']}"
    return (
        f"{row['change']:+.1%} [{row['ci_low'] - 1:+.1%}, {row['ci_high'] - 1:+.1%}], "
        f"p={row['p_value']:.3f}: {row['status']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--slowdown", type=float, default=0.10)
    args = parser.parse_args()
    alarms = detections = 0
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for trial in range(args.trials):
            base = run(root, f"base{trial}", args.repetitions, 0.0)
            same = run(root, f"same{trial}", args.repetitions, 0.0)
            slow = run(root, f"slow{trial}", args.repetitions, args.slowdown)
            twin, slowed = compare(base, same), compare(base, slow)
            alarms += twin["status"] == "regression"
            detections += slowed["status"] == "regression"
            print(f"trial {trial}: identical {describe(twin)}")
            print(f"trial {trial}: slowed {args.slowdown:.0%} {describe(slowed)}")
    print(
        f"{METRIC}, {args.repetitions} repetitions per run: false alarms {alarms}/{args.trials}, "
        f"{args.slowdown:.0%} slowdown detected {detections}/{args.trials}"
    )


if __name__ == "__main__":
    main()
