"""``bench schedule``: run ``bench nightly`` every day at a fixed time, with a systemd timer
where systemd is the init system, else a cron entry. Installing the same schedule twice
changes nothing; the webhook URL stays out of the files (an optional environment file holds
it, readable by root only)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.errors import InputError

PREFIX = "bench-nightly-"
SYSTEMD_DIR = Path("/etc/systemd/system")
CRON_DIR = Path("/etc/cron.d")
ENV_FILE = Path("/etc/bench/nightly.env")  # e.g. BENCH_ALERT_WEBHOOK=https://…


def systemd_running() -> bool:
    """systemd is PID 1 (containers and minimal machines often have no init system)."""
    return Path("/run/systemd/system").is_dir()


def parse_time(text: str) -> tuple[int, int]:
    """'02:00' -> (2, 0); anything else is refused with the expected form."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if not match:
        raise InputError(f"--at {text!r}: expected HH:MM on the 24-hour clock, e.g. 02:00")
    return int(match.group(1)), int(match.group(2))


def unit_name(suite_name: str) -> str:
    """One schedule per suite: ``bench-nightly-<suite>``, safe as a unit and cron file name
    (cron ignores files in /etc/cron.d whose names contain dots)."""
    return PREFIX + re.sub(r"[^A-Za-z0-9_-]", "-", suite_name)


def bench_executable() -> str:
    """The ``bench`` beside this interpreter (the virtual environment's), as an absolute path."""
    found = Path(sys.executable).with_name("bench")
    return str(found if found.exists() else shutil.which("bench") or "bench")


def command(suite: Path, history: Path, extra: list[str]) -> list[str]:
    return [bench_executable(), "nightly", str(suite), "--history", str(history), *extra]


def _quote(word: str) -> str:
    """systemd and cron both split on spaces; quote a word that has one."""
    return f'"{word}"' if re.search(r'[\s"\\%]', word) else word


def service_text(name: str, argv: list[str], workdir: Path) -> str:
    line = " ".join(_quote(w) for w in argv)
    return (
        "[Unit]\n"
        f"Description=bench nightly benchmarks ({name})\n"
        "Wants=network-online.target\n"
        "After=network-online.target docker.service\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"WorkingDirectory={workdir}\n"
        f"EnvironmentFile=-{ENV_FILE}\n"
        f"ExecStart={line}\n"
    )


def timer_text(name: str, hour: int, minute: int) -> str:
    return (
        "[Unit]\n"
        f"Description=Run {name} every day at {hour:02d}:{minute:02d}\n\n"
        "[Timer]\n"
        f"OnCalendar=*-*-* {hour:02d}:{minute:02d}:00\n"
        "Persistent=true\n"
        f"Unit={name}.service\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )


def cron_text(name: str, argv: list[str], workdir: Path, log: Path, hour: int, minute: int) -> str:
    line = " ".join(_quote(w) for w in argv)
    # the environment file's variables must reach bench: export them while sourcing
    source = f"if [ -r {ENV_FILE} ]; then set -a; . {ENV_FILE}; set +a; fi; "
    shell = (
        f"cd {_quote(str(workdir))} || exit 1; {source}{line} >> {_quote(str(log))} 2>&1"
    ).replace("%", "\\%")  # cron turns an unescaped % into a newline
    return (
        f"# {name}: bench nightly benchmarks, every day at {hour:02d}:{minute:02d}\n"
        "SHELL=/bin/sh\n"
        f"{minute} {hour} * * * root {shell}\n"
    )


@dataclass
class Installed:
    """What ``install`` did: each file and whether it changed."""

    name: str
    kind: str  # "systemd" | "cron"
    files: dict[Path, bool]  # path -> written (False: already identical)


def _write(path: Path, text: str, mode: int = 0o644) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.chmod(mode)
    partial.replace(path)
    return True


def install(
    suite: Path,
    suite_name: str,
    history: Path,
    at: str,
    extra: list[str],
    kind: str = "auto",
    unit_dir: Path = SYSTEMD_DIR,
    cron_dir: Path = CRON_DIR,
    activate: bool = True,
) -> Installed:
    """Write (or leave as they are) the timer and service, or the cron entry."""
    hour, minute = parse_time(at)
    name = unit_name(suite_name)
    suite, history = suite.resolve(), history.resolve()
    argv, workdir = command(suite, history, extra), suite.parent
    use = ("systemd" if systemd_running() else "cron") if kind == "auto" else kind
    if use == "systemd":
        files = {
            unit_dir / f"{name}.service": _write(
                unit_dir / f"{name}.service", service_text(name, argv, workdir)
            ),
            unit_dir / f"{name}.timer": _write(
                unit_dir / f"{name}.timer", timer_text(name, hour, minute)
            ),
        }
        if activate and systemd_running() and any(files.values()):
            _systemctl("daemon-reload")
            _systemctl("enable", "--now", f"{name}.timer")
    else:
        log = history / "nightly.log"
        text = cron_text(name, argv, workdir, log, hour, minute)
        files = {cron_dir / name: _write(cron_dir / name, text)}
    return Installed(name, use, files)


def _systemctl(*args: str) -> None:
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InputError(f"systemctl {' '.join(args)} failed: {done.stderr.strip()}")


def listed(unit_dir: Path = SYSTEMD_DIR, cron_dir: Path = CRON_DIR) -> list[tuple[str, str, str]]:
    """(name, kind, when) of every installed bench schedule."""
    out = []
    for timer in sorted(unit_dir.glob(f"{PREFIX}*.timer")):
        when = re.search(r"^OnCalendar=(.*)$", timer.read_text(), re.M)
        out.append((timer.stem, "systemd", when.group(1) if when else "?"))
    for entry in sorted(cron_dir.glob(f"{PREFIX}*")):
        line = next((x for x in entry.read_text().splitlines() if x[:1].isdigit()), "")
        minute, hour = [*line.split(), "?", "?"][:2]
        out.append((entry.name, "cron", f"daily {hour.zfill(2)}:{minute.zfill(2)}"))
    return out


def remove(name: str, unit_dir: Path = SYSTEMD_DIR, cron_dir: Path = CRON_DIR) -> list[Path]:
    """Delete a schedule's files (and stop its timer where systemd runs)."""
    if not name.startswith(PREFIX):
        name = unit_name(name)
    files = [unit_dir / f"{name}.timer", unit_dir / f"{name}.service", cron_dir / name]
    present = [f for f in files if f.exists()]
    if not present:
        raise InputError(f"no bench schedule named {name!r}; see: bench schedule list")
    if systemd_running() and (unit_dir / f"{name}.timer").exists() and unit_dir == SYSTEMD_DIR:
        _systemctl("disable", "--now", f"{name}.timer")
    for path in present:
        path.unlink()
    return present
