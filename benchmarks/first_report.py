"""How long a new user waits for a first report: ``./bootstrap.sh run`` on a machine that has
nothing of bench's yet (fresh), then again with everything cached (warm), phase by phase.

    sudo .venv/bin/python benchmarks/first_report.py [--workdir /var/tmp/bench-first]

Fresh, as far as one machine can be made fresh without reinstalling it:
- the committed HEAD is cloned into the work directory (no virtual environment), with empty
  pip, build and state directories (PIP_CACHE_DIR, BENCH_CACHE_DIR, BENCH_STATE_DIR): every
  wheel is downloaded, the offline Debian base, the image and the guest disk are built, the
  KVM probe and the guest's fingerprint are taken anew;
- bench's images are removed from the Docker engine (they are rebuilt on demand), and so are
  the engine's dangling images, the classic builder's layer cache;
- the system packages this machine already has are installed, by ``bootstrap.sh packages``
  itself, into a fresh Debian root (a chroot of the offline base: Python and venv only, like
  the machines the tests run on), at the same time as the clone's setup installs its venv,
  as ``bootstrap.sh run`` does on a fresh machine.
The engine is already running here, so starting it is not in the fresh time (a few seconds).
Warm is a second ``./bootstrap.sh run`` in the same clone, with the same directories.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.build import base  # noqa: E402
from bench.build.config import BuildConfig  # noqa: E402

SETUP_PHASES = ("apt", "venv", "runtimes", "docker")
BUILDS = ("wheelhouse", "base", "venv", "image", "guest")
RUN_PHASES = ("prepare", "fingerprint", "stage", "cells")
CHROOT = """\
set -e
root=$1
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
exec chroot "$root" env BENCH_PHASES=/phases DEBIAN_FRONTEND=noninteractive \\
    bash /opt/bench/bootstrap.sh packages
"""
NO_SERVICES = "#!/bin/sh\nexit 101\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/bench-first"))
    parser.add_argument("--suite", default="suites/quickstart.yaml")
    args = parser.parse_args()
    work: Path = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    clone = work / "bench"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = fresh_env(work)
    forget_images()
    root = fresh_root(work)
    fresh = fresh_run(clone, root, env, args.suite, work)
    warm = warm_run(clone, env, args.suite, work)
    print(table(fresh, warm))


def fresh_env(work: Path) -> dict[str, str]:
    """The environment of a user who never ran bench: nothing cached, bench's venv not on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if ".venv" not in p)
    for name, sub in (("PIP_CACHE_DIR", "pip"), ("BENCH_CACHE_DIR", "cache")):
        env[name] = str(work / sub)
    env["BENCH_STATE_DIR"] = str(work / "state")
    return env


def forget_images() -> None:
    """Remove bench's images from the engine: asset images first (they are built on the
    workload images, which are built on the base), and fail when one stays."""
    for repository in ("bench-assets", "bench-workloads", "bench-base"):
        ids = _images(repository)
        if ids:
            subprocess.run(["docker", "rmi", "-f", *ids], capture_output=True, check=False)
        # the classic builder's layer cache: untagged intermediate images, children of the base
        subprocess.run(["docker", "image", "prune", "-f"], capture_output=True, check=False)
        if _images(repository):
            sys.exit(f"cannot remove the {repository} images (a container still uses one?)")


def _images(repository: str) -> list[str]:
    listed = subprocess.run(
        ["docker", "images", "-q", repository], capture_output=True, text=True, check=True
    )
    return sorted(set(listed.stdout.split()))


def fresh_root(work: Path) -> Path:
    """A Debian root with Python and venv only, and bootstrap.sh in it."""
    tarball = base.rootfs(BuildConfig(), lambda message: print(f"· {message}")).tarball
    root = work / "root"
    root.mkdir()
    subprocess.run(["tar", "--numeric-owner", "-xf", str(tarball), "-C", str(root)], check=True)
    shutil.copy2("/etc/resolv.conf", root / "etc" / "resolv.conf")
    (root / "usr/sbin/policy-rc.d").write_text(NO_SERVICES)
    (root / "usr/sbin/policy-rc.d").chmod(0o755)
    (root / "opt/bench").mkdir(parents=True)
    shutil.copy2(REPO / "bootstrap.sh", root / "opt/bench/bootstrap.sh")
    return root


def fresh_run(clone: Path, root: Path, env: dict[str, str], suite: str, work: Path) -> dict:
    """apt (in the fresh root) beside the clone's setup, then the run; each phase's seconds."""
    phases = work / "phases-fresh.txt"
    began = time.monotonic()
    apt = subprocess.Popen(["unshare", "--mount", "--fork", "sh", "-c", CHROOT, "sh", str(root)])
    setup = subprocess.run(
        ["bash", "bootstrap.sh", "setup"], cwd=clone, env={**env, "BENCH_PHASES": str(phases)}
    )
    if apt.wait() != 0 or setup.returncode != 0:
        sys.exit(f"setup failed: apt {apt.returncode}, bootstrap setup {setup.returncode}")
    setup_s = time.monotonic() - began
    run_began = time.monotonic()
    done = subprocess.run([".venv/bin/bench", "run", suite], cwd=clone, env=env)
    if done.returncode != 0:
        sys.exit(f"bench run failed with status {done.returncode}")
    ended = time.monotonic()
    found = read_phases(phases)
    found["apt"] = read_phases(root / "phases")["apt"]
    found["setup (apt beside venv)"] = setup_s
    return {**found, **run_phases(clone, ended - run_began), "total": ended - began}


def warm_run(clone: Path, env: dict[str, str], suite: str, work: Path) -> dict:
    """A second ``./bootstrap.sh run``: everything cached."""
    phases = work / "phases-warm.txt"
    began = time.monotonic()
    done = subprocess.run(
        ["bash", "bootstrap.sh", "run", suite], cwd=clone, env={**env, "BENCH_PHASES": str(phases)}
    )
    if done.returncode != 0:
        sys.exit(f"warm bootstrap.sh run failed with status {done.returncode}")
    total = time.monotonic() - began
    found = read_phases(phases)
    setup_s = sum(found.get(p, 0.0) for p in SETUP_PHASES)
    run_s = total - setup_s
    return {**found, **run_phases(clone, run_s), "total": total}


def read_phases(path: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in path.read_text().splitlines():
        name, seconds = line.split()
        found[name] = found.get(name, 0.0) + float(seconds)
    return found


def run_phases(clone: Path, run_s: float) -> dict[str, float]:
    """The latest run's build times and phases from its manifest; what ``bench run`` spent
    outside them (start, summary, report) is the rest of its wall time."""
    latest = max((clone / "results").glob("*/*/manifest.json"), key=lambda p: p.stat().st_mtime)
    manifest = json.loads(latest.read_text())
    built = {f"build: {k}": v for k, v in (manifest.get("build", {}).get("seconds") or {}).items()}
    phases = manifest.get("phases_s") or {}
    inside = sum(phases.get(p, 0.0) for p in RUN_PHASES)
    cells = len(manifest.get("plan") or [])
    return {
        **built,
        **phases,
        "bench run: start, summary, report": run_s - inside,
        "cells run": float(cells),
    }


def table(fresh: dict[str, float], warm: dict[str, float]) -> str:
    rows = [
        *SETUP_PHASES,
        "setup (apt beside venv)",
        *(f"build: {b}" for b in BUILDS),
        *RUN_PHASES,
        "bench run: start, summary, report",
        "cells run",
        "total",
    ]
    lines = ["| phase | fresh (s) | warm (s) |", "|---|---:|---:|"]
    for row in rows:
        if row in fresh or row in warm:
            lines.append(f"| {row} | {_cell(fresh.get(row))} | {_cell(warm.get(row))} |")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    main()
