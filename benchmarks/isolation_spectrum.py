"""The isolation spectrum on one machine: bare metal, runc, crun, gVisor (runsc) and a QEMU VM,
in one interleaved run, on start-up, memory and a syscall-heavy loader.

The workload reads a dataset of many small raw files (one ``open``/``read``/``close`` per
sample, staged in each target's own filesystem: the image's overlay for containers, the guest's
disk for the VM) through a DataLoader: the path where a user-space kernel (gVisor intercepts
every system call) or a virtual disk costs most. Every target runs from the same wheels; the
suite interleaves the targets, so each repetition of all of them ran within a minute.

Prints, per target: the median and bootstrap 95% interval of ``startup.provision_s`` (process
spawned / container started / guest answering SSH), ``mem.host_bytes`` and
``mem.overhead_bytes`` (what the host spends on the deployment, and beyond the workload's own
resident memory), and ``data.throughput``; then each target's ratio to bare metal over the
paired repetitions, with its interval.

    .venv/bin/python benchmarks/isolation_spectrum.py [--reps 5] [--samples 2000]
        [--sample-bytes 4096] [--no-vm]

Needs the runtimes registered with the Docker engine (``scripts/oci-runtimes``, run by the
setup) and, for the VM, QEMU (under TCG on a host without usable KVM: expect about a minute
and a half per VM cell, most of it importing torch under emulation).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import stats  # noqa: E402
from bench.results import load, load_manifest  # noqa: E402
from bench.units import fmt  # noqa: E402

METRICS = (
    ("startup.provision_s", "s"),
    ("mem.host_bytes", "bytes"),
    ("mem.overhead_bytes", "bytes"),
    ("data.throughput", "samples/s"),
)
RUNTIMES = ("runc", "crun", "runsc")


def suite_text(reps: int, samples: int, sample_bytes: int, vm: bool) -> str:
    lines = [
        f"name: isolation-spectrum\nrepetitions: {reps}\nmin_iterations: 1",
        "targets:",
        "  - {name: bare, kind: local, baseline: true, build: true}",
        "  - {name: ctr, kind: docker, build: true, network: none,",
        f"     matrix: {{runtime: [{', '.join(RUNTIMES)}]}}}}",
    ]
    if vm:
        lines.append(
            "  - {name: vm, kind: vm, provisioner: qemu, vcpus: 2, memory: 2g, accel: auto}"
        )
    lines += [
        "workloads:",
        f"  - {{name: load-raw, kind: data_loading, location: image, batch_size: 64,"
        f" num_workers: 0, warmup_batches: 2,"
        f" dataset: {{format: raw, samples: {samples}, sample_bytes: {sample_bytes}}}}}",
    ]
    return "\n".join(lines) + "\n"


def run_suite(tmp: Path, text: str) -> Path:
    suite = tmp / "isolation-spectrum.yaml"
    suite.write_text(text)
    cmd = [sys.executable, "-m", "bench.cli", "run", str(suite)]
    cmd += ["--results-dir", str(tmp / "results")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bench run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _cell(values: np.ndarray, unit: str) -> str:
    if len(values) == 0:
        return "absent"
    interval = stats.median_ci(values)
    text = fmt(float(np.median(values)), unit)
    if interval:
        text += f" [{fmt(interval[0], unit)}, {fmt(interval[1], unit)}]"
    return text


def table(samples: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    out = []
    for metric, unit in METRICS:
        rows = samples[samples.metric == metric]
        wide = rows.pivot_table(index="repetition", columns="target", values="value")
        out.append(f"{metric}")
        for target, label in labels.items():
            values = wide[target].dropna().to_numpy() if target in wide else np.array([])
            line = f"  {label:36s} {_cell(values, unit):44s}"
            if target != "bare" and "bare" in wide and target in wide:
                paired = wide[[target, "bare"]].dropna()
                found = stats.paired_ratio(paired[target].to_numpy(), paired["bare"].to_numpy())
                line += f" x bare {'n/a' if found is None else found.describe()}"
            out.append(line)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--sample-bytes", type=int, default=4096)
    parser.add_argument("--no-vm", action="store_true", help="leave the QEMU guest out")
    args = parser.parse_args()
    text = suite_text(args.reps, args.samples, args.sample_bytes, not args.no_vm)
    with tempfile.TemporaryDirectory() as name:
        run_dir = run_suite(Path(name), text)
        samples = load(run_dir)
        manifest = load_manifest(run_dir)
        from bench.report.labels import target_labels

        labels = target_labels(manifest)
        print(
            f"raw-bytes loader: {args.samples} files of {args.sample_bytes} B in the target's "
            f"own filesystem, batches of 64, no loader workers; {args.reps} interleaved "
            "repetitions; median [95% CI]; ratio to bare over paired repetitions\n"
        )
        print("\n".join(table(samples, labels)))
        print(f"\n  run directory: {run_dir} (removed)")


if __name__ == "__main__":
    main()
