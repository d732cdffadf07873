"""``mem.rss_peak_bytes`` covers the worker's whole process tree, not the worker alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from workloads.memory import TreePeakSampler, tree_pids, tree_resident_bytes

REPO = Path(__file__).resolve().parent.parent
MB = 2**20

# A fresh interpreter forks a child that touches 100 MB, holds it for a few sampling intervals,
# and exits; the parent's own high-water mark never sees those 100 MB.
FORKING_PARENT = textwrap.dedent(
    """
    import json, os, time
    from workloads.memory import TreePeakSampler, self_peak_bytes

    sampler = TreePeakSampler().start()
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    child = os.fork()
    if child == 0:
        held = b"x" * (100 * 2**20)
        os.write(ready_w, b"1")
        os.read(release_r, 1)  # held until the parent has seen three samples with it
        os._exit(0)
    os.read(ready_r, 1)
    seen = sampler.samples
    deadline = time.monotonic() + 30
    while sampler.samples < seen + 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.write(release_w, b"1")
    os.waitpid(child, 0)
    sampler.stop()
    print(json.dumps({"tree": sampler.tree_peak, "peak": sampler.peak,
                      "self": self_peak_bytes(), "samples": sampler.samples}))
    """
)


def test_tree_peak_counts_forked_children_that_self_maxrss_misses() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FORKING_PARENT],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    seen = json.loads(out.stdout)
    assert seen["self"] < 100 * MB, "the parent never held 100 MB itself"
    assert seen["tree"] >= 100 * MB
    assert seen["peak"] == max(seen["tree"], seen["self"])
    assert seen["samples"] >= 3


def test_peak_is_floored_by_self_maxrss() -> None:
    """A spike between samples is missed by sampling but not by the kernel's high-water mark."""
    sampler = TreePeakSampler(interval=60.0)
    sampler.start()
    spike = b"y" * (64 * MB)
    del spike
    sampler.stop()
    sampler.stop()  # idempotent
    assert sampler.samples == 2
    assert sampler.peak is not None and sampler.tree_peak is not None
    assert sampler.peak >= sampler.tree_peak
    assert sampler.reason is None


def test_tree_of_a_missing_pid_is_unknown() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert tree_resident_bytes(gone.pid) is None
    assert tree_pids(os.getpid())[0] == os.getpid()


# Runs the worker and reports the largest ``ru_maxrss`` among the worker and the DataLoader
# processes it reaped (what ``wait4`` returns), which is what the worker reported before it
# summed over its tree.
WAIT_FOR_WORKER = textwrap.dedent(
    """
    import json, os, subprocess, sys
    with open(sys.argv[2], "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workloads", "run", "--spec", sys.argv[1]],
            stdout=sink, stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    print(json.dumps({"status": status, "largest_single": usage.ru_maxrss * 1024}))
    """
)


def test_worker_reports_its_dataloader_processes(tmp_path: Path) -> None:
    """Through the real worker: the tree peak exceeds every single process's own peak.

    ``ru_maxrss`` carries the spawning process's high-water mark across exec, so a child of
    pytest (which holds torch) would inherit hundreds of MB. A shell in between forks
    (``; exit`` keeps it from exec'ing Python in its own place) and the waiting process
    starts clean.
    """
    spec = {
        "workload": {
            "name": "mem",
            "kind": "data_loading",
            "samples": 256,
            "sample_bytes": 65536,
            "batch_size": 8,
            "num_workers": 2,
            "epochs": 4,
        },
        "seed": 0,
    }
    spec_path, stdout = tmp_path / "spec.json", tmp_path / "stdout"
    spec_path.write_text(json.dumps(spec))
    clean = '"$0" -c "$1" "$2" "$3"; exit $?'
    waited = subprocess.run(
        ["sh", "-c", clean, sys.executable, WAIT_FOR_WORKER, str(spec_path), str(stdout)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    seen = json.loads(waited.stdout)
    assert seen["status"] == 0
    events = [json.loads(line) for line in stdout.read_text().splitlines()]
    result = next(e for e in events if e["event"] == "result")
    peak = result["metrics"]["mem.rss_peak_bytes"]["value"]
    assert peak > 1.3 * seen["largest_single"], (peak, seen["largest_single"])


def test_host_probe_keeps_a_timeline_and_bounds_it(monkeypatch) -> None:
    from bench.probes import sampler as periodic
    from bench.probes.process import TreeMemorySampler

    probe = TreeMemorySampler(os.getpid(), interval=0.01).start()
    while len(probe.timeline) < 5:
        time.sleep(0.01)
    probe.stop()
    times = [t for t, _ in probe.timeline]
    assert times == sorted(times) and probe.peak == max(v for _, v in probe.timeline)
    monkeypatch.setattr(periodic, "MAX_POINTS", 4)
    for value in range(5):
        probe._record(value)  # past the bound, every other point goes: resolution, not span
    assert len(probe.timeline) <= 4 and probe.timeline[0][0] == times[0]
