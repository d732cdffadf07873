"""How long ``bench report`` takes, how big report.html gets and how much memory it needs, for
stored runs and for the same runs with every repetition replicated (to see the scaling).

    .venv/bin/python benchmarks/report_build.py tests/fixtures/runs/*/* --replicate 1 4 16

A replicated run is a copy whose cells repeat the real ones K times as extra repetitions: the
numbers are real, their count is not, so it measures the report's cost, not a benchmark.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from bench.report import document
start = time.perf_counter()
html, md = document.write(sys.argv[1])
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": elapsed, "peak_rss": peak, "html": html.stat().st_size,
                  "md": md.stat().st_size}))
"""


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def replicate(run: Path, factor: int, into: Path) -> Path:
    """A copy of ``run`` whose every cell appears ``factor`` times, as new repetitions."""
    copy = Path(shutil.copytree(run, into / f"{run.name}-x{factor}"))
    if factor == 1:
        return copy
    cells, samples = _rows(run / "cells.jsonl"), _rows(run / "samples.jsonl")
    reps = 1 + max(c["repetition"] for c in cells)
    stride = 1 + max(c["cell"] for c in cells)
    raw = {int(f.name.split("-", 1)[0]): f for f in (run / "raw").glob("*.json")}
    out_cells, out_samples = [], []
    for k in range(factor):
        for cell in cells:
            number, rep = cell["cell"] + k * stride, cell["repetition"] + k * reps
            out_cells.append({**cell, "cell": number, "repetition": rep})
            source = raw.get(cell["cell"])
            if k and source is not None:
                name = f"{number:04d}-{cell['target']}-{cell['workload']}-r{rep}.json"
                (copy / "raw" / name).write_text(source.read_text())
        for sample in samples:
            out_samples.append(
                {**sample, "cell": sample["cell"] + k * stride,
                 "repetition": sample["repetition"] + k * reps}
            )  # fmt: skip
    _write(copy / "cells.jsonl", out_cells)
    _write(copy / "samples.jsonl", out_samples)
    return copy


def measure(run: Path) -> dict:
    """One report written in a fresh interpreter, so imports and peak memory are counted."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(run)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--replicate", nargs="+", type=int, default=[1, 4])
    args = parser.parse_args()
    print(f"{'run':<34} {'cells':>6} {'samples':>8} {'time':>7} {'peak RSS':>9} {'html':>9}")
    with tempfile.TemporaryDirectory() as scratch:
        for run in args.runs:
            for factor in args.replicate:
                copy = replicate(run, factor, Path(scratch))
                cells = len(_rows(copy / "cells.jsonl"))
                samples = len(_rows(copy / "samples.jsonl"))
                found = measure(copy)
                print(
                    f"{run.parent.name + '/x' + str(factor):<34.34} {cells:>6} {samples:>8} "
                    f"{found['seconds']:>6.1f}s {found['peak_rss'] / 2**20:>7.0f}MiB "
                    f"{found['html'] / 2**10:>7.0f}KiB"
                )


if __name__ == "__main__":
    main()
