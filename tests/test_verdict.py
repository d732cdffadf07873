"""Cell verdicts, ``cache: cold`` and the CPU state read around the measured phase."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench import pagecache
from bench.results import load_cells, load_manifest
from bench.verdict import judge
from tests.conftest import bench_cli
from tests.test_run_e2e import run_dir_of
from workloads import cpustate

STEADY = {"measured_iterations": 50, "cpu_state": {"mhz_start": 2600.0, "mhz_end": 2590.0}}


def test_a_clean_cell_is_valid() -> None:
    verdict = judge(None, STEADY, min_iterations=10)
    assert verdict.label == "VALID" and verdict.reasons == []


def test_each_problem_is_a_reason() -> None:
    info = {
        "measured_iterations": 4,
        "cpu_state": {
            "thermal_throttle_events": 3,
            "mhz_start": 3000.0,
            "mhz_end": 2000.0,
            "steal_pct": 25.0,
        },
        "gpu_steady": {
            "slowdowns": ["hardware thermal slowdown"],
            "sm_clock_min_mhz": 1200.0,
            "sm_clock_max_mhz": 1980.0,
        },
    }
    cold = pagecache.record("cold", "/proc/sys/vm/drop_caches: Permission denied", 0.0)
    reasons = judge(None, {**info, "cache": cold}, min_iterations=10).reasons
    assert len(reasons) == 7, reasons
    assert reasons[0].startswith("too few measured iterations (4 < min_iterations 10)")
    assert "thermally throttled 3 times" in reasons[1]
    assert "fell from 3000 to 2000 MHz" in reasons[2]
    assert "hypervisor took 25% of the CPU time (steal)" in reasons[3]
    assert reasons[4].endswith("hardware thermal slowdown")
    assert "between 1200 and 1980 MHz" in reasons[5] and "lock-gpu-clocks" in reasons[5]
    assert reasons[6].startswith("cache: cold was asked for but the page cache was not dropped")


def test_a_failed_cell_is_invalid_for_its_error() -> None:
    verdict = judge("worker exited with status 3", {}, min_iterations=10)
    assert verdict.label == "INVALID"
    assert verdict.reasons == ["the cell failed: worker exited with status 3"]


def test_small_clock_changes_and_a_dropped_cache_are_fine() -> None:
    info = {**STEADY, "gpu_steady": {"sm_clock_min_mhz": 1900.0, "sm_clock_max_mhz": 1980.0}}
    assert judge(None, {**info, "cache": pagecache.record("cold", None, 0.1)}, 10).label == "VALID"


# --- the CPU state, on a FAKE sysfs tree (this machine exposes no throttle counters) ---------


def _fake_sysfs(root: Path, throttles: int, khz: int) -> Path:
    for cpu in sorted(os.sched_getaffinity(0)):
        throttle = root / f"cpu{cpu}" / "thermal_throttle"
        throttle.mkdir(parents=True, exist_ok=True)
        (throttle / "core_throttle_count").write_text(f"{throttles}\n")
        (throttle / "package_throttle_count").write_text("0\n")
        freq = root / f"cpu{cpu}" / "cpufreq"
        freq.mkdir(parents=True, exist_ok=True)
        (freq / "scaling_cur_freq").write_text(f"{khz}\n")
    return root


def test_throttle_counts_and_frequency_are_read_from_sysfs(tmp_path: Path) -> None:
    root = _fake_sysfs(tmp_path, throttles=2, khz=2_400_000)
    cpus = len(os.sched_getaffinity(0))
    assert cpustate.throttle_count(root) == 2 * cpus
    assert cpustate.frequency_mhz(root) == 2400.0
    assert cpustate.throttle_count(tmp_path / "missing") is None  # absent, not zero


def test_frequency_falls_back_to_cpuinfo(tmp_path: Path) -> None:
    mhz = cpustate.frequency_mhz(tmp_path / "no-cpufreq")
    assert mhz is None or mhz > 0


def test_steal_is_a_share_of_the_machine_time_across_the_phase(tmp_path: Path) -> None:
    stat = tmp_path / "stat"  # FAKE /proc/stat: this machine's steal counter barely moves
    stat.write_text("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 1 2 3\n")
    before = cpustate.CpuState(cpustate.CpuTimes(0, 0), None, None, cpustate.steal_ticks(tmp_path))
    stat.write_text("cpu  150 0 60 880 10 0 0 100 0 0\n")
    after = cpustate.CpuState(cpustate.CpuTimes(1, 0), None, None, cpustate.steal_ticks(tmp_path))
    assert cpustate.change(before, after)["steal_pct"] == pytest.approx(100 * 60 / 200)
    assert cpustate.steal_ticks() is not None  # the real /proc/stat parses


def test_steal_is_not_judged_over_a_phase_of_a_few_ticks(tmp_path: Path) -> None:
    """A 10 ms phase spans about two ticks of two CPUs: one stolen tick is no 50% steal."""
    stat = tmp_path / "stat"  # FAKE /proc/stat
    stat.write_text("cpu  100 0 50 800 10 0 0 40 0 0\n")
    before = cpustate.CpuState(cpustate.CpuTimes(0, 0), None, None, cpustate.steal_ticks(tmp_path))
    stat.write_text("cpu  101 0 50 800 10 0 0 41 0 0\n")
    after = cpustate.CpuState(cpustate.CpuTimes(1, 0), None, None, cpustate.steal_ticks(tmp_path))
    state = cpustate.change(before, after)
    assert state["steal_pct"] is None and state["steal_window_ticks"] == 2
    assert judge(None, {**STEADY, "cpu_state": state}, min_iterations=10).label == "VALID"


def test_cpu_times_split_user_and_system() -> None:
    before = cpustate.cpu_times()
    sum(i * i for i in range(300_000))  # user time
    for _ in range(2000):
        os.stat("/")  # system time
    used = cpustate.cpu_times() - before
    assert used.user > 0 and used.system >= 0 and used.total == used.user + used.system


# --- dropping the page cache ------------------------------------------------------------------


def _resident_pages(path: Path) -> int:
    done = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "PAGES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.split()[0])


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping the page cache needs root")
def test_drop_local_evicts_a_file_from_the_page_cache(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(4 << 20))
    data.read_bytes()
    assert _resident_pages(data) > 0
    assert pagecache.drop_local() is None
    assert _resident_pages(data) == 0


def test_a_drop_that_is_refused_says_why() -> None:
    reason = pagecache.drop_local(Path("/proc/version"))
    assert reason is not None and reason.startswith("/proc/version: ")


@pytest.mark.slow
def test_cold_cache_and_too_few_iterations_through_bench_run(write_suite) -> None:
    suite = write_suite("""
        name: coldrun
        repetitions: 1
        cache: cold
        min_iterations: 8
        targets:
          - {name: bare, kind: local}
        workloads:
          - {name: few, kind: train_step, model: mlp, batch_size: 2, steps: 3, warmup_steps: 0}
          - {name: enough, kind: command, argv: [sleep, "0.05"]}
        """)
    done = bench_cli("run", str(suite), "--results-dir", str(suite.parent / "results"))
    assert done.returncode == 0, done.stderr  # INVALID is a verdict on the numbers, not a crash
    run_dir = run_dir_of(done)
    assert load_manifest(run_dir)["cache"] == "cold"
    cells = load_cells(run_dir).set_index("workload")
    assert cells.loc["enough", "verdict"] == "VALID"
    assert cells.loc["few", "verdict"] == "INVALID"
    assert cells.loc["few", "reasons"][0].startswith("too few measured iterations (3 < ")
    for info in cells["info"]:
        expected = os.geteuid() == 0
        assert info["cache"]["mode"] == "cold" and info["cache"]["dropped"] is expected
    assert "INVALID cells" in done.stdout and "bare (1 INVALID)" in done.stdout
