"""How often ``bench history``'s change-point search raises a false alarm on a flat series
or on a slow drift with no step, and how often it finds a real step at the right run, on
synthetic series of run medians with log-normal run-to-run noise (the noise of separate runs,
not of repetitions).

    .venv/bin/python benchmarks/change_points.py --trials 500 --noise 0.05
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.nightly.changepoints import change_points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--noise", type=float, default=0.05, help="run-to-run spread (fraction)")
    parser.add_argument("--runs", type=int, default=30, help="length of the flat series")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    def noisy(count: int, level: float = 1.0) -> np.ndarray:
        return level * np.exp(rng.normal(0.0, args.noise, count))

    flat = sum(bool(change_points(noisy(args.runs))) for _ in range(args.trials))
    print(f"flat, {args.runs} runs: a false change point in {flat / args.trials:.1%} of trials")
    for total in (0.10, 0.20, 0.40):
        drift = sum(
            bool(change_points(noisy(args.runs) * np.linspace(1.0, 1.0 + total, args.runs)))
            for _ in range(args.trials)
        )
        print(
            f"drift of {total:.0%} over {args.runs} runs, no step: a change point in "
            f"{drift / args.trials:.1%} of trials"
        )
    for step in (0.10, 0.20, 0.40):
        exact = sum(
            [i for i, _ in change_points(np.r_[noisy(10), noisy(10, 1 + step)])] == [10]
            for _ in range(args.trials)
        )
        print(f"{step:.0%} step after 10 of 20 runs: found at run 10 in {exact / args.trials:.1%}")
    back = sum(
        [i for i, _ in change_points(np.r_[noisy(8), noisy(6, 1.25), noisy(8)])] == [8, 14]
        for _ in range(args.trials)
    )
    print(f"25% for 6 runs, then back: both steps found in {back / args.trials:.1%}")


if __name__ == "__main__":
    main()
