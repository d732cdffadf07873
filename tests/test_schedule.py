"""``bench schedule``: systemd units that systemd-analyze accepts, a well-formed cron entry,
idempotent installs, list and remove."""

from __future__ import annotations

import codecs
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main

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


def bench_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``bench`` run in this process: the console script's click command, its exit status and
    its two streams, without an interpreter's start-up per call."""
    done = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return subprocess.CompletedProcess(args, done.exit_code, done.stdout, done.stderr)


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
    options = ["--keep", "4", "--metric-threshold", "x y=10%"]
    assert install(suite, dirs, "--with", "cron", "--at", "3:07", *options).returncode == 0
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
    words = shlex.split(cron_unescape(command))
    assert words[words.index("--keep") :][: len(options)] == options
    text = entry.read_text()
    assert "unchanged: " in install(suite, dirs, "--with", "cron", "--at", "3:07", *options).stdout
    assert entry.read_text() == text


def test_a_pushgateway_is_checked_at_install_and_passed_to_the_night(places, tmp_path) -> None:
    suite, dirs = places
    refused = install(suite, dirs, "--with", "cron", "--pushgateway", "gw:9091")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "error: --pushgateway 'gw:9091': the scheme is not http or https" in refused.stderr
    assert not (tmp_path / "cron.d").exists()
    url = "http://gw.example.com:9091/prefix"
    assert install(suite, dirs, "--with", "cron", "--pushgateway", url).returncode == 0
    entry = (tmp_path / "cron.d" / "bench-nightly-sched").read_text().splitlines()[-1]
    words = shlex.split(cron_unescape(entry.split(maxsplit=6)[6]))
    assert words[words.index("--pushgateway") + 1] == url


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


# --- nothing a path or an option holds becomes code -----------------------------------------

# every character the shell, cron or systemd would read as syntax, in a directory name
HOSTILE = "a $(touch PWNED) `touch PWNED` ;x'y\"z %h %% $HOME ${HOME} \\%w &|<>#~*?"


def hostile_places(tmp_path: Path) -> tuple[Path, Path]:
    """A suite in one hostile directory, the history below another."""
    suite = tmp_path / f"suite {HOSTILE}" / "suite.yaml"
    suite.parent.mkdir()
    suite.write_text(SUITE)
    return suite, tmp_path / f"hist {HOSTILE}" / "h"


def cron_unescape(command: str) -> str:
    """What cron hands to /bin/sh: ``\\%`` becomes ``%`` (every other backslash stays) and
    the command ends at the first bare ``%`` (the rest would be standard input)."""
    out, escaped = [], False
    for char in command:
        if escaped and char == "%":
            out[-1] = "%"
        elif char == "%":
            break
        else:
            out.append(char)
        escaped = char == "\\" and not escaped
    return "".join(out)


def test_cron_command_runs_no_injected_code_and_passes_every_path_whole(tmp_path: Path) -> None:
    from bench.nightly.schedule import bench_executable

    suite, history = hostile_places(tmp_path)
    options = ["--threshold", "3%"]
    done = bench_cli(
        "schedule", "install", str(suite), "--history", str(history), "--with", "cron",
        "--cron-dir", str(tmp_path / "cron.d"), *options,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (entry,) = (tmp_path / "cron.d").iterdir()
    line = entry.read_text().splitlines()[-1]
    command = cron_unescape(line.split(maxsplit=6)[6])
    recorder = tmp_path / "record.sh"  # stands in for bench: writes its directory and argv
    recorder.write_text('#!/bin/sh\nprintf "%s\\0" "$PWD" "$@" > "$RECORD"\n')
    recorder.chmod(0o755)
    assert command.count(bench_executable()) == 1
    command = command.replace(bench_executable(), str(recorder))
    record = tmp_path / "argv"
    env = {"RECORD": str(record), "PATH": "/usr/bin:/bin"}
    ran = subprocess.run(
        ["/bin/sh", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert not [p for p in tmp_path.rglob("PWNED*")]
    assert record.read_text().split("\0")[:-1] == [
        str(suite.parent), "nightly", str(suite), "--history", str(history), *options,
    ]  # fmt: skip
    assert history.is_dir()  # made before the log inside it is opened


SYSTEMD_WORD = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^\s"])+')


def systemd_words(line: str) -> list[str]:
    """ExecStart= read back as systemd.service(5) reads it: specifiers first (only ``%%`` may
    appear), then words split on spaces, double quotes removed and C escapes decoded, then
    ``$$`` -> ``$`` in the arguments (no ``$NAME`` may be left: systemd would substitute it)."""
    assert not re.search(r"%[^%]", line.replace("%%", "")), f"a specifier in {line}"
    words = []
    for word in SYSTEMD_WORD.findall(line.replace("%%", "%")):
        raw = re.sub(r'"((?:[^"\\]|\\.)*)"', r"\1", word)
        words.append(codecs.escape_decode(raw.encode())[0].decode())
    for arg in words[1:]:
        assert not re.search(r"\$[A-Za-z_{]", arg.replace("$$", "")), f"a variable in {arg}"
    return words[:1] + [arg.replace("$$", "$") for arg in words[1:]]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_units_hold_hostile_paths_as_data_and_a_start_timeout(tmp_path: Path) -> None:
    from bench.nightly import schedule
    from bench.suite import load_suite

    suite, history = hostile_places(tmp_path)
    units = tmp_path / "units"
    done = bench_cli(
        "schedule", "install", str(suite), "--history", str(history), "--with", "systemd",
        "--unit-dir", str(units), "--threshold", "3%",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    service = next(units.glob("*.service"))
    verified = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units.iterdir())], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stderr
    settings = dict(x.split("=", 1) for x in service.read_text().splitlines() if "=" in x)
    assert systemd_words(settings["ExecStart"]) == [
        schedule.bench_executable(), "nightly", str(suite), "--history", str(history),
        "--threshold", "3%",
    ]  # fmt: skip
    assert settings["WorkingDirectory"].replace("%%", "%") == str(suite.parent)
    assert "%" not in settings["WorkingDirectory"].replace("%%", "")
    assert int(settings["TimeoutStartSec"]) == schedule.start_timeout_s(load_suite(suite))
    # the program itself in a hostile directory: systemd finds it only if it reads the path
    # back exactly (it refuses quotes and backslashes there, and so does bench)
    program = tmp_path / "p $(touch PWNED) `x` ;%h $HOME &|#" / "bench"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    other = units / "other.service"
    other.write_text(schedule.service_text("other", [str(program), "nightly"], tmp_path, 60))
    verified = subprocess.run(["systemd-analyze", "verify", str(other)], capture_output=True)
    assert verified.returncode == 0, verified.stderr
    line = next(x for x in other.read_text().splitlines() if x.startswith("ExecStart="))
    assert systemd_words(line.removeprefix("ExecStart="))[0] == str(program)


def test_line_breaks_and_options_nightly_would_refuse_are_refused_at_install(tmp_path) -> None:
    from bench import cli
    from bench.errors import InputError
    from bench.nightly import schedule

    broken = tmp_path / "x\n[Service]\nExecStartPre=touch PWNED" / "suite.yaml"
    broken.parent.mkdir()
    broken.write_text(SUITE)
    good = tmp_path / "suite.yaml"
    good.write_text(SUITE)
    dirs = ["--cron-dir", str(tmp_path / "cron.d"), "--unit-dir", str(tmp_path / "units")]
    refused = install(good, dirs, "--threshold", "x;id")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "error: --threshold 'x;id': not a threshold" in refused.stderr
    for options in (
        ["--keep", "0"],
        ["--keep", "3;id"],
        ["--parallel-hosts", "x"],
        ["--metric-threshold", "m"],
        ["--metric-threshold", "m=5;id"],
        ["--pushgateway", "gw:9091"],
        ["--pushgateway", "http://user:secret@gw:9091"],
    ):
        with pytest.raises(InputError):
            cli.nightly_arguments(good, tmp_path / "h", options)
    for suite, options, kind in [(broken, [], "cron"), (good, ["--threshold", "5%\n"], "systemd")]:
        with pytest.raises(InputError, match="contains a line break or NUL; rename it"):
            schedule.install(suite, "s", tmp_path / "h", "02:00", options, kind,
                             tmp_path / "units", tmp_path / "cron.d", activate=False)  # fmt: skip
    assert not (tmp_path / "units").exists() and not (tmp_path / "cron.d").exists()


def test_the_start_timeout_adds_up_every_cell_of_the_plan(tmp_path: Path) -> None:
    from bench.nightly.schedule import start_timeout_s
    from bench.suite import load_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: t\nrepetitions: 3\n"
        "targets:\n  - {name: bare, kind: local}\n"
        "  - {name: box, kind: vm, provisioner: static, host: h, start: [a], stop: [b],"
        " boot_timeout_s: 50, command_timeout_s: 20}\n"
        "workloads:\n  - {name: a, kind: train_step, timeout_s: 100}\n"
        "  - {name: b, kind: train_step, timeout_s: 200}\n"
    )
    cells = (100 + 300) + (200 + 300) + (100 + 300 + 50 + 40) + (200 + 300 + 50 + 40)
    assert start_timeout_s(load_suite(suite)) == 3600 + 3 * cells + 900


def test_a_hung_night_under_cron_is_stopped_at_its_start_timeout(tmp_path: Path) -> None:
    from bench.nightly import schedule

    hung = tmp_path / "hung.sh"  # stands in for a bench nightly that never ends
    hung.write_text("#!/bin/sh\nexec sleep 600\n")
    hung.chmod(0o755)
    text = schedule.cron_text("n", [str(hung)], tmp_path, tmp_path / "h" / "log", (2, 0), 1)
    command = cron_unescape(text.splitlines()[-1].split(maxsplit=6)[6])
    ran = subprocess.run(["/bin/sh", "-c", command], capture_output=True, timeout=120)
    assert ran.returncode == 124  # timeout's status: the command was stopped
