"""``bench schedule``: systemd units that systemd-analyze accepts, a well-formed cron entry,
idempotent installs, list and remove."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import bench_cli

SUITE = """\
name: sched
targets:
  - {name: bare, kind: local}
workloads:
  - {name: t, kind: train_step, steps: 3}
"""


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, list[str]]:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    dirs = ["--unit-dir", str(tmp_path / "units"), "--cron-dir", str(tmp_path / "cron.d")]
    return suite, dirs


def install(suite: Path, dirs: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    history = suite.parent / "history"
    return bench_cli("schedule", "install", str(suite), "--history", str(history), *args, *dirs)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_units_verify_and_install_twice_is_idempotent(places, tmp_path: Path) -> None:
    suite, dirs = places
    first = install(suite, dirs, "--with", "systemd", "--at", "02:30")
    assert first.returncode == 0, first.stderr
    units = tmp_path / "units"
    timer, service = units / "bench-nightly-sched.timer", units / "bench-nightly-sched.service"
    assert "OnCalendar=*-*-* 02:30:00" in timer.read_text()
    assert f"nightly {suite} --history {tmp_path / 'history'}" in service.read_text()
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(timer), str(service)], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stderr
    before = {p: p.read_bytes() for p in units.iterdir()}
    again = install(suite, dirs, "--with", "systemd", "--at", "02:30")
    assert again.returncode == 0 and again.stdout.count("unchanged: ") == 2
    assert {p: p.read_bytes() for p in units.iterdir()} == before


def test_cron_entry_is_well_formed_and_idempotent(places, tmp_path: Path) -> None:
    suite, dirs = places
    assert install(suite, dirs, "--with", "cron", "--at", "3:07").returncode == 0
    entry = tmp_path / "cron.d" / "bench-nightly-sched"
    lines = [x for x in entry.read_text().splitlines() if x and not x.startswith("#")]
    assert lines[0] == "SHELL=/bin/sh"
    minute, hour, day, month, weekday, user, command = lines[1].split(maxsplit=6)
    assert (minute, hour, day, month, weekday, user) == ("7", "3", "*", "*", "*", "root")
    assert "%" not in command.replace("\\%", "")  # cron would cut the line at a bare %
    syntax = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    assert re.search(rf"bench nightly {re.escape(str(suite))} --history ", command)
    assert ". /etc/bench/nightly.env" in command and "set -a" in command  # exported
    text = entry.read_text()
    assert "unchanged: " in install(suite, dirs, "--with", "cron", "--at", "3:07").stdout
    assert entry.read_text() == text


@pytest.mark.slow
def test_list_and_remove(places) -> None:
    suite, dirs = places
    install(suite, dirs, "--with", "cron", "--at", "01:15")
    listed = bench_cli("schedule", "list", *dirs)
    assert "bench-nightly-sched\tcron\tdaily 01:15" in listed.stdout
    removed = bench_cli("schedule", "remove", "sched", *dirs)
    assert removed.returncode == 0 and "removed: " in removed.stdout
    assert "no bench schedules installed" in bench_cli("schedule", "list", *dirs).stdout
    again = bench_cli("schedule", "remove", "sched", *dirs)
    assert again.returncode == 2
    assert "no bench schedule named 'bench-nightly-sched'" in again.stderr


def test_bad_time_and_bad_suite_are_refused(places, tmp_path: Path) -> None:
    suite, dirs = places
    bad = install(suite, dirs, "--at", "25:00")
    assert bad.returncode == 2 and "expected HH:MM on the 24-hour clock" in bad.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nworkloads: []\n")
    refused = install(broken, dirs)
    assert refused.returncode == 2 and not (tmp_path / "cron.d").exists()
