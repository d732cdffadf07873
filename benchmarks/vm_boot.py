"""Boot-to-SSH of a QEMU guest as bench measures it vs an independent measurement, and the
QEMU process's memory beyond what the guest itself uses.

Independent measurement: the same guest disk, kernel and QEMU flags, started here with
``subprocess`` and timed with a plain loop of OpenSSH's ``ssh … true`` until it succeeds (no
console watching, no paramiko). Half of the independent boots run before ``bench run`` and half
after, so drift on a shared machine shows up on both sides. After each independent boot the
guest's own memory use (``MemTotal - MemFree`` from its ``/proc/meminfo``: everything it has
touched, page cache included) is compared with QEMU's PSS on the host.

    .venv/bin/python benchmarks/vm_boot.py [--reps 5] [--accel auto|tcg|kvm] [--memory 1g]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.build.builder import Builder  # noqa: E402
from bench.probes.process import pss_bytes  # noqa: E402
from bench.results import load, load_manifest  # noqa: E402
from bench.suite import parse_suite  # noqa: E402
from bench.targets.qemu import Guest  # noqa: E402
from bench.targets.vmqemu import QemuVmTarget  # noqa: E402

MiB = 1 << 20
LAST_ATTEMPT: list[float] = []  # how long the successful `ssh true` took, per boot
WORKLOAD = "{name: train, kind: train_step, model: mlp, batch_size: 8, steps: 3, warmup_steps: 1}"


def independent_boot(target: QemuVmTarget) -> tuple[float, int, int]:
    """(seconds from QEMU start to ``ssh true`` succeeding, QEMU PSS, guest-used bytes)."""
    prepared = target._ready()
    vm = Guest(prepared.machine, f"indep{uuid.uuid4().hex[:6]}", "vm", "independent")
    with tempfile.TemporaryDirectory() as tmp:
        known = Path(tmp) / "known_hosts"
        try:
            started = time.monotonic()
            vm.start()
            known.write_text(f"[127.0.0.1]:{vm.port} {prepared.image.host_key}\n")
            ssh = [
                "ssh", "-q", "-o", "BatchMode=yes", "-o", "ConnectTimeout=2",
                "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
                "-i", str(prepared.image.client_key), "-p", str(vm.port), "root@127.0.0.1",
            ]  # fmt: skip
            while True:
                attempt = time.monotonic()
                try:
                    done = subprocess.run([*ssh, "true"], capture_output=True, timeout=5)
                    if done.returncode == 0:
                        break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() - started > 600:
                    raise RuntimeError("guest did not answer ssh within 600 s")
                time.sleep(0.1)
            boot = time.monotonic() - started
            LAST_ATTEMPT.append(time.monotonic() - attempt)
            meminfo = subprocess.run([*ssh, "cat /proc/meminfo"], capture_output=True, text=True)
            fields = {
                line.split(":")[0]: int(line.split()[1]) * 1024
                for line in meminfo.stdout.splitlines()
            }
            used = fields["MemTotal"] - fields["MemFree"]
            assert vm.process is not None
            return boot, pss_bytes(vm.process.pid) or 0, used
        finally:
            vm.destroy()


def harness_run(suite_text: str, tmp: Path) -> tuple[Path, str]:
    suite = tmp / "vm-boot.yaml"
    suite.write_text(suite_text)
    cmd = [sys.executable, "-m", "bench.cli", "run", str(suite), "--results-dir", str(tmp)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    return run_dir, load_manifest(run_dir)["targets"]["vm"]["artefacts"]["accel_label"]


def spread(values: list[float], scale: float = 1.0, unit: str = "s") -> str:
    v = sorted(x * scale for x in values)
    return (
        f"median {statistics.median(v):7.2f} {unit}  [min {v[0]:.2f}, max {v[-1]:.2f}]  n={len(v)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--accel", default="auto", choices=("auto", "tcg", "kvm"))
    parser.add_argument("--memory", default="1g")
    args = parser.parse_args()
    vm = f"{{name: vm, kind: vm, vcpus: 2, memory: {args.memory}, accel: {args.accel}}}"
    suite_text = (
        f"name: vm-boot\nrepetitions: {args.reps}\ntargets:\n  - {vm}\nworkloads:\n  - {WORKLOAD}\n"
    )
    target = QemuVmTarget(parse_suite(suite_text).targets[0])
    suite = parse_suite(suite_text)
    target.prepare(Builder(suite.build))
    independent = [independent_boot(target) for _ in range(args.reps // 2)]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, accel = harness_run(suite_text, Path(tmp))
        df = load(run_dir)
    independent += [independent_boot(target) for _ in range(args.reps - args.reps // 2)]

    def metric(name: str) -> list[float]:
        return list(df[df.metric == name]["value"])

    print(f"guest: {args.memory} RAM, 2 vCPUs, {accel}; {args.reps} boots each way")
    print("boot to SSH")
    print(f"  bench startup.provision_s    {spread(metric('startup.provision_s'))}")
    print(f"  bench startup.kernel_boot_s  {spread(metric('startup.kernel_boot_s'))}")
    print(f"  independent ssh-true loop    {spread([b for b, _, _ in independent])}")
    print(f"    its successful attempt     {spread(LAST_ATTEMPT)}")
    ratio = statistics.median(metric("startup.provision_s")) / statistics.median(
        [b for b, _, _ in independent]
    )
    print(f"  ratio bench/independent      {ratio:.3f}")
    print("memory")
    rows = [
        ("bench mem.host_bytes (QEMU PSS peak)", metric("mem.host_bytes")),
        ("bench mem.rss_peak_bytes (in guest)", metric("mem.rss_peak_bytes")),
        ("bench mem.overhead_bytes", metric("mem.overhead_bytes")),
        ("idle guest: QEMU PSS", [p for _, p, _ in independent]),
        ("idle guest: used inside (Total-Free)", [u for _, _, u in independent]),
        ("idle guest: QEMU beyond guest use", [p - u for _, p, u in independent]),
    ]
    for label, values in rows:
        print(f"  {label:38s} {spread(values, 1 / MiB, 'MiB')}")


if __name__ == "__main__":
    main()
