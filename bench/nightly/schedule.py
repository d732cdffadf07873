"""``bench schedule``: run ``bench nightly`` every day at a fixed time, with a systemd timer
where systemd is the init system, else a cron entry. Installing the same schedule twice
changes nothing; the webhook URL stays out of the files (an optional environment file holds
it, readable by root only). Paths and options are data in both: quoted for the shell or for
systemd, checked as ``bench nightly`` checks them, refused when no quoting can hold them; and
every night has a deadline derived from the suite, so a hung one cannot block the next."""

from __future__ import annotations

import math
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import InputError

if TYPE_CHECKING:
    from bench.suite import Suite

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


# --- how long a night may take ----------------------------------------------------------------

PREPARE_S = 3600.0  # builds (container image, guest disk, venv) from the wheelhouse; fingerprints
CELL_S = 300.0  # per cell: start a process or container, connect, upload, tear down
FINISH_S = 900.0  # compare, report, export, the webhook (10 s at most), prune
KILL_AFTER_S = 60  # cron: SIGKILL this long after the SIGTERM, if the run has not ended


def start_timeout_s(suite: Suite) -> int:
    """The longest a healthy ``bench nightly`` of ``suite`` can take, from the suite's own
    limits; a night still running after that is hung, and is stopped so that it frees the
    history's lock for the next night (systemd's ``TimeoutStartSec``, cron's ``timeout``).

    An hour to prepare, then for every cell of the plan (repetitions x workloads x targets)
    the workload's ``timeout_s`` plus the target's ``boot_timeout_s`` and, with a start
    command, twice its ``command_timeout_s`` (start and stop), plus 5 minutes to deploy and
    tear down, then 15 minutes to finish. It adds up every cell as if hosts ran one after
    another, so ``--parallel-hosts`` only makes it more generous."""
    per_round = sum(
        workload.timeout_s + _deploy_s(target)
        for target in suite.targets
        for workload in suite.workloads
    )
    total = PREPARE_S + suite.repetitions * per_round + FINISH_S
    if not math.isfinite(total):
        raise InputError(f"suite {suite.name!r}: a timeout is not finite; a night must end")
    return math.ceil(total)


def _deploy_s(target: Any) -> float:
    boot = float(getattr(target, "boot_timeout_s", 0.0))
    cycles = getattr(target, "start", None) is not None
    return CELL_S + boot + (2 * float(getattr(target, "command_timeout_s", 0.0)) if cycles else 0)


# --- quoting ----------------------------------------------------------------------------------


def check_word(what: str, word: str) -> str:
    """Refuse what no schedule file can hold safely: a line break would start a new cron
    entry or unit directive, NUL ends a C string, and the files are UTF-8."""
    if any(c in word for c in "\n\r\0"):
        raise InputError(f"{what} {word!r}: contains a line break or NUL; rename it")
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} {word!r}: is not valid UTF-8; rename it") from None
    return word


def sh_word(word: str) -> str:
    """One word for ``/bin/sh`` in a cron line: single-quoted (``shlex.quote``), each ``%``
    written ``\\%`` (cron turns a bare ``%`` into a newline and removes the backslash of
    ``\\%``, and only of that) and, inside quotes, as ``'\\%'`` so that the backslash never
    follows one of the word's own."""
    quoted = shlex.quote(word)
    return quoted.replace("%", "'\\%'" if quoted.startswith("'") else "\\%")


_PLAIN = re.compile(r"[A-Za-z0-9@%+=:,./_$-]+")


def systemd_word(word: str, executable: bool = False) -> str:
    """One word of ``ExecStart`` (systemd.service(5), systemd.syntax(7)): ``%`` as ``%%``
    (specifiers), ``$`` as ``$$`` (variables; not in the executable's path, which systemd
    never expands), and a word with other characters in double quotes with C escapes."""
    text = word.replace("%", "%%") if executable else word.replace("%", "%%").replace("$", "$$")
    if _PLAIN.fullmatch(text):
        return text
    return '"' + "".join(_c_escape(c) for c in text) + '"'


def _c_escape(char: str) -> str:
    """A character inside systemd's double quotes: ``\\"`` and ``\\\\``, and the UTF-8
    bytes of one that cannot be printed as ``\\xNN`` each."""
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    return "".join(f"\\x{byte:02x}" for byte in char.encode())


def systemd_executable(path: str) -> str:
    """The program of ``ExecStart``: systemd refuses quotes, backslashes and control
    characters in its path."""
    if any(c in path for c in "'\"\\") or not path.isprintable():
        raise InputError(
            f"bench executable {path!r}: systemd cannot start a program whose path has a "
            "quote, backslash or control character; install bench elsewhere or use --with cron"
        )
    return systemd_word(path, executable=True)


def systemd_path(path: Path) -> str:
    """A ``WorkingDirectory`` value: no quoting there, only ``%%`` for ``%``; systemd strips
    whitespace at the end of a line and joins a line ending in a backslash to the next."""
    text = str(path)
    if not text.isprintable() or text[-1:].isspace() or text.endswith("\\"):
        raise InputError(
            f"directory {text!r}: systemd cannot hold a WorkingDirectory with a control "
            "character or ending in whitespace or a backslash; rename it or use --with cron"
        )
    return text.replace("%", "%%")


def service_text(name: str, argv: list[str], workdir: Path, timeout_s: int) -> str:
    line = " ".join([systemd_executable(argv[0]), *(systemd_word(w) for w in argv[1:])])
    return (
        "[Unit]\n"
        f"Description=bench nightly benchmarks ({name})\n"
        "Wants=network-online.target\n"
        "After=network-online.target docker.service\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"WorkingDirectory={systemd_path(workdir)}\n"
        f"EnvironmentFile=-{ENV_FILE}\n"
        f"ExecStart={line}\n"
        f"TimeoutStartSec={timeout_s}\n"
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


def cron_text(
    name: str, argv: list[str], workdir: Path, log: Path, when: tuple[int, int], timeout_s: int
) -> str:
    """The entry: into the suite's directory, the history made (the log is there), the
    environment file's variables exported, then ``bench nightly`` under ``timeout``."""
    hour, minute = when
    env = sh_word(str(ENV_FILE))
    stop = ["timeout", "-k", str(KILL_AFTER_S), str(timeout_s)]  # GNU and busybox alike
    shell = (
        f"cd {sh_word(str(workdir))} || exit 1; mkdir -p -- {sh_word(str(log.parent))} || exit 1; "
        f"if [ -r {env} ]; then set -a; . {env}; set +a; fi; "
        f"{' '.join(sh_word(w) for w in [*stop, *argv])} >> {sh_word(str(log))} 2>&1"
    )
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
    if path.exists() and path.read_text(encoding="utf-8", errors="replace") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
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
    timeout_s: int = math.ceil(PREPARE_S + FINISH_S),
) -> Installed:
    """Write (or leave as they are) the timer and service, or the cron entry; nothing is
    written when a path or option cannot be held safely (``timeout_s``: start_timeout_s)."""
    hour, minute = parse_time(at)
    name = unit_name(suite_name)
    suite, history = suite.resolve(), history.resolve()
    argv, workdir = command(suite, history, extra), suite.parent
    for what, word in [("bench executable", argv[0]), ("suite", argv[2]), ("--history", argv[4])]:
        check_word(what, word)
    for word in extra:
        check_word("option", word)
    use = ("systemd" if systemd_running() else "cron") if kind == "auto" else kind
    if use == "systemd":
        service = service_text(name, argv, workdir, timeout_s)
        files = {
            unit_dir / f"{name}.service": _write(unit_dir / f"{name}.service", service),
            unit_dir / f"{name}.timer": _write(
                unit_dir / f"{name}.timer", timer_text(name, hour, minute)
            ),
        }
        if activate and systemd_running() and any(files.values()):
            _systemctl("daemon-reload")
            _systemctl("enable", "--now", f"{name}.timer")
    else:
        text = cron_text(name, argv, workdir, history / "nightly.log", (hour, minute), timeout_s)
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
