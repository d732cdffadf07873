"""Local process vs SSH to this same machine: start-up cost and throughput ratio.

Starts a private OpenSSH server on a free loopback port (as the tests do), runs one suite with a
``local`` and an ``ssh`` target interleaved, and prints the median ``startup.provision_s`` of
both and the ratio of training throughput. Both targets share the machine, so the ratio should
be about 1.0; ``provision`` shows what opening a session and launching over SSH costs.

    .venv/bin/python benchmarks/ssh_vs_local.py [--reps 7] [--steps 300]   (as root)
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
from tests.sshd import SshServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = SshServer(Path(tmp) / "sshd").setup().start()
        try:
            remote = server.target_yaml(name="ssh", python=sys.executable, workdir=tmp)
            suite = Path(tmp) / "ssh-vs-local.yaml"
            suite.write_text(
                f"name: ssh-vs-local\nrepetitions: {args.reps}\n"
                "targets:\n  - {name: local, kind: local, baseline: true}\n"
                f"  - {remote}\n"
                "workloads:\n  - {name: train, kind: train_step, model: mlp, batch_size: 64, "
                f"steps: {args.steps}, warmup_steps: 10}}\n"
            )
            cmd = [sys.executable, "-m", "bench.cli", "run", str(suite)]
            cmd += ["--results-dir", str(Path(tmp) / "results")]
            done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
            df = load(done.stdout.strip().splitlines()[-1])
        finally:
            server.stop()
    medians = df.groupby(["metric", "target"])["value"].median().unstack()
    for metric in ("startup.provision_s", "startup.ready_s", "startup.total_s"):
        row = medians.loc[metric]
        print(f"{metric:22s} local {row['local'] * 1e3:8.1f} ms   ssh {row['ssh'] * 1e3:8.1f} ms")
    tput = medians.loc["train.throughput"]
    print(
        f"train.throughput       local {tput['local']:8.1f}      ssh {tput['ssh']:8.1f} samples/s"
    )
    print(f"ratio local/ssh = {tput['local'] / tput['ssh']:.4f}  ({args.reps} interleaved reps)")


if __name__ == "__main__":
    main()
