"""Environment checks (``bench doctor`` and every target's fingerprint) against this machine."""

from __future__ import annotations

import subprocess
import sys
import time
from glob import glob
from pathlib import Path

import pytest

from bench.results import load_manifest
from tests.conftest import bench_cli
from workloads import environment
from workloads.fingerprint import collect

STATUSES = {"ok", "warn", "info", "n/a"}


def test_every_check_reports_a_status_a_value_and_a_fix_when_it_warns() -> None:
    found = environment.check_all()
    assert len(found) == len(environment.CHECKS)
    assert len({c["check"] for c in found}) == len(found)
    for check in found:
        assert check["status"] in STATUSES, check
        assert check["value"] not in (None, ""), check
        if check["status"] == "warn":
            assert check["fix"], check


def test_a_busy_process_is_named() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        found = environment.busy_processes(interval=1.0)
    finally:
        spinner.kill()
        spinner.wait()
    assert found["status"] == "warn"
    assert f"pid {spinner.pid}" in found["value"]
    assert found["fix"] == "stop them before measuring"


def test_governor_matches_sysfs() -> None:
    paths = glob("/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor")
    found = environment.governor()
    if not paths:
        assert found["status"] == "n/a"
    else:
        governors = {Path(p).read_text().strip() for p in paths}
        assert found["status"] == ("ok" if governors == {"performance"} else "warn")


def test_fingerprints_carry_the_checks() -> None:
    checks = collect(include_torch=False)["environment"]
    assert [c["check"] for c in checks] == [c["check"] for c in environment.check_all()]


def test_doctor_prints_every_check() -> None:
    done = bench_cli("doctor")
    assert done.returncode == 0, done.stderr
    for check in environment.check_all():
        assert check["check"] in done.stdout


@pytest.mark.slow
def test_run_warns_about_a_problem_before_the_first_cell(write_suite, tmp_path) -> None:
    suite = write_suite("""
        name: noisy
        repetitions: 1
        targets: [{name: bare, kind: local}]
        workloads: [{name: cmd, kind: command, argv: [sleep, "0.05"]}]
    """)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        done = bench_cli("run", str(suite), "--results-dir", str(tmp_path))
    finally:
        spinner.kill()
        spinner.wait()
    assert done.returncode == 0, done.stderr
    assert "bare: other busy processes:" in done.stderr, done.stderr
    assert f"pid {spinner.pid}" in done.stderr
    assert "fix: stop them before measuring" in done.stderr
    manifest = load_manifest(done.stdout.strip().splitlines()[-1])
    checks = {c["check"]: c for c in manifest["targets"]["bare"]["fingerprint"]["environment"]}
    assert checks["other busy processes"]["status"] == "warn"
