"""Do bench's samplers disturb what they measure?

Runs one training workload as a real worker process two ways, alternating in one run so that
machine drift hits both equally:

* samplers on: the worker's own samplers (memory of its process tree at 10 Hz, NVML where a GPU
  is used, CPU state around the measured phase) and the controller's host-side memory probe of
  the worker's process tree at 10 Hz, exactly as ``kind: local`` runs them;
* samplers off: the same worker with ``"samplers": false`` in its spec and no host probe.

Prints each pair, then two estimates of on / off with bootstrap 95% CIs: the ratio of the median
throughputs of the two groups (``bench.stats.ratio``), and the median of the per-pair ratios
(``bench.stats.median_ci``; the two runs of a pair are seconds apart, so slow drift of the
machine cancels within a pair). The same for the median step time. The target is a
perturbation under 1%.

    .venv/bin/python benchmarks/sampler_perturbation.py [--pairs 10] [--steps 300] [--blocks 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.probes.process import TreeMemorySampler, pss_bytes, tree_bytes  # noqa: E402
from bench.stats import median_ci, ratio  # noqa: E402
from bench.targets import worker  # noqa: E402

WORKLOAD = {"name": "train-mlp", "kind": "train_step", "model": "mlp", "batch_size": 64}


def start_worker() -> subprocess.Popen[str]:
    """A worker process as ``kind: local`` starts one, waiting for its spec on stdin."""
    return subprocess.Popen(
        worker.run_args(sys.executable),
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def run_worker(spec: dict, host_probe: bool) -> tuple[float, list[float], int]:
    """Throughput, step times and host samples taken for one worker process."""
    proc = start_worker()
    probe = TreeMemorySampler(proc.pid).start() if host_probe else None
    out, _ = proc.communicate(json.dumps(spec))
    if probe is not None:
        probe.stop()
    if proc.returncode != 0:
        raise SystemExit(f"worker failed with status {proc.returncode}")
    result = next(e for e in map(json.loads, out.splitlines()) if e.get("event") == "result")
    throughput = result["metrics"]["train.throughput"]["value"]
    return throughput, result["raw"]["step_time_s"], probe.samples if probe else 0


PROBES = {  # what each sampler reads per sample, and how often
    "process-tree memory (host probe and worker, 10 Hz)": (tree_bytes, 10.0),
    "QEMU PSS (vm host probe, 2 Hz)": (pss_bytes, 2.0),
}


def probe_costs(calls: int = 300) -> None:
    """CPU time per reading of each probe against a live torch worker, and its duty cycle."""
    spec = {"workload": {**WORKLOAD, "steps": 100_000, "warmup_steps": 1}, "seed": 0}
    proc = start_worker()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        for line in proc.stdout:  # measure against the worker once torch and the model exist
            if json.loads(line).get("event") == "first_step":
                break
        for name, (read, hz) in PROBES.items():
            started = time.thread_time()
            for _ in range(calls):
                read(proc.pid)
            cost = (time.thread_time() - started) / calls
            print(f"{name}: {cost * 1e6:.0f} us CPU per reading -> {cost * hz:.3%} of one core")
    finally:
        proc.kill()
        proc.wait()


def in_process(blocks: int, steps: int) -> None:
    """Median step time with samplers on / off, alternating blocks (ABBA) in this process."""
    import torch

    from workloads import models
    from workloads.memory import TreePeakSampler
    from workloads.train_step import make_optimizer, make_step

    torch.manual_seed(0)
    model = models.build("mlp", torch.float32, torch.device("cpu")).train()
    batch = models.make_batch("mlp", WORKLOAD["batch_size"], torch.float32, torch.device("cpu"))
    step = make_step(model, make_optimizer("sgd", model, 0.01), *batch)
    for _ in range(50):
        step()
    medians: dict[bool, list[float]] = {True: [], False: []}
    for index in range(blocks):
        for on in (True, False) if index % 2 == 0 else (False, True):
            samplers = [TreePeakSampler(), TreeMemorySampler(os.getpid())] if on else []
            for sampler in samplers:
                sampler.start()
            times = []
            for _ in range(steps):
                started = time.perf_counter()
                step()
                times.append(time.perf_counter() - started)
            for sampler in samplers:
                sampler.stop()
            medians[on].append(statistics.median(times))
    pairs = np.array(medians[True]) / np.array(medians[False])
    interval = median_ci(pairs)
    low, high = interval if interval else (float("nan"), float("nan"))
    print(
        f"in one process, {blocks} block pairs of {steps} steps: median step time on/off, "
        f"median of pair ratios = {np.median(pairs):.4f} [95% CI {low:.4f}, {high:.4f}] "
        f"-> {100 * (np.median(pairs) - 1):+.2f}%",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--blocks", type=int, default=40)
    args = parser.parse_args()
    probe_costs()
    in_process(args.blocks, args.steps)
    workload = {**WORKLOAD, "steps": args.steps, "warmup_steps": 20}
    modes = {"on": True, "off": False}
    throughput: dict[str, list[float]] = {m: [] for m in modes}
    steps: dict[str, list[float]] = {m: [] for m in modes}
    for index in range(args.pairs):
        order = list(modes) if index % 2 == 0 else list(reversed(modes))  # ABBA
        line = []
        for mode in order:
            spec = {"workload": workload, "seed": 0, "samplers": modes[mode]}
            value, times, probes = run_worker(spec, host_probe=modes[mode])
            throughput[mode].append(value)
            steps[mode].append(statistics.median(times))
            line.append(f"{mode}: {value:8.1f} samples/s ({probes} host samples)")
        print(f"pair {index + 1:2d}  " + "   ".join(line), flush=True)
    for name, series in (("throughput", throughput), ("median step time", steps)):
        found = ratio(series["on"], series["off"])
        assert found is not None
        low, high = found.low or found.ratio, found.high or found.ratio
        print(
            f"{name}: on/off, ratio of medians = {found.ratio:.4f} [95% CI {low:.4f}, {high:.4f}]"
            f" -> {100 * (found.ratio - 1):+.2f}%"
            + (" (no measurable difference)" if not found.measurable else "")
        )
        pairs = np.array(series["on"]) / np.array(series["off"])
        interval = median_ci(pairs)
        low, high = interval if interval else (float("nan"), float("nan"))
        print(
            f"{name}: on/off, median of pair ratios = {np.median(pairs):.4f} "
            f"[95% CI {low:.4f}, {high:.4f}] -> {100 * (np.median(pairs) - 1):+.2f}%"
        )


if __name__ == "__main__":
    main()
