"""Commands a remote worker runs under, each built from ``shlex.quote``d words so that no
suite value can inject shell syntax, and the channel that starts it."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

import paramiko

from bench.errors import TargetError
from bench.targets import envvars
from bench.targets.envvars import FromEnv


def q(value: str) -> str:
    """Shell-quote one word of a remote command."""
    return shlex.quote(value)


def execute(client: paramiko.SSHClient, command: str, timeout: float = 120) -> tuple[int, str]:
    """Run ``command`` remotely; (exit status, combined output)."""
    try:
        _, stdout, _ = client.exec_command(command, timeout=timeout, get_pty=False)
        stdout.channel.set_combine_stderr(True)
        output = stdout.read().decode(errors="replace")
        return stdout.channel.recv_exit_status(), output
    except (paramiko.SSHException, OSError) as exc:
        raise TargetError(f"remote command failed: {exc or type(exc).__name__}") from None


PID_FILE = ".worker-pid"
"""Written by the worker's shell into the cell directory before it ``exec``s the worker, so
that a worker stopped before it reported its pid (Ctrl-C during its start) can still be found."""

KILL_GROUP = """
import os, signal, sys, time
def leader(arg):
    if arg.isdigit():
        return int(arg)
    for _ in range(100):  # a pid file: the shell writes it as it starts
        try:
            return int(open(arg).read())
        except (OSError, ValueError):
            time.sleep(0.1)
    return None
group = leader(sys.argv[1])
def send(sig):
    try:
        os.killpg(group, sig)
        return True
    except ProcessLookupError:
        return False
def gone(tenths):
    for _ in range(tenths):
        time.sleep(0.1)
        if not send(0):
            return True
    return False
if group is not None and send(signal.SIGTERM) and not gone(20):
    send(signal.SIGKILL)
    gone(50)  # SIGKILL is delivered asynchronously: return once the group has exited
"""


def worker_command(
    env: Mapping[str, str | FromEnv], pkg_dir: str, cell_dir: str, args: list[str]
) -> str:
    """``cd`` into the cell directory and ``exec`` the worker with its environment.

    Plain variables are words of ``env``'s command line, after ``--`` so that none can be an
    option. Secrets are not: any user of the host may read a command line, so the shell reads
    them from stdin instead, one line each in name order (``secret_input``), before the spec.
    """
    public = {**envvars.plain(env), "PYTHONPATH": pkg_dir, "PYTHONUNBUFFERED": "1"}
    public["TMPDIR"] = cell_dir
    hidden = sorted(k for k, v in env.items() if isinstance(v, FromEnv))
    reads = "".join(f"IFS= read -r {k} && export {k} && " for k in hidden)
    assignments = " ".join(q(f"{k}={v}") for k, v in public.items())
    words = " ".join(q(a) for a in args)
    cd = f"mkdir -p {q(cell_dir)} && cd {q(cell_dir)} && echo $$ > {PID_FILE}"
    return f"{cd} && {reads}exec env -- {assignments} {words}"


def secret_input(env: Mapping[str, str | FromEnv]) -> bytes:
    """The secrets' values as ``worker_command``'s shell reads them: one line each, by name."""
    values = envvars.secrets(env)
    for key, value in values.items():
        if "\n" in value:
            raise TargetError(f"env {key}: a secret with a line break cannot reach a remote worker")
    return "".join(values[k] + "\n" for k in sorted(values)).encode()


def kill_group_command(python: str, leader: str) -> str:
    """TERM, then after a 2 s grace period KILL, the process group ``leader`` leads, and wait
    (up to 5 s) until it has exited, so that a stopped worker is gone when this returns.
    ``leader`` is a pid or the path of a cell's ``PID_FILE`` (waited for up to 10 s: the
    shell writes it as soon as it runs, which may be just after the channel opened).

    Written in Python rather than with the shell's ``kill``: dash, Debian's ``sh``, cannot
    signal a process group (it rejects both ``-PID`` and ``--``).
    """
    return f"{q(python)} -c {q(KILL_GROUP)} {q(leader)}"


def start_worker(
    client: paramiko.SSHClient,
    command: str,
    spec: dict[str, Any],
    label: str,
    secrets: bytes = b"",
) -> paramiko.Channel:
    """Start ``command`` on a new channel and send it the secrets, then the spec, on stdin."""
    try:
        transport = client.get_transport()
        assert transport is not None
        channel = transport.open_session()
        channel.exec_command(command)
        channel.sendall(secrets + json.dumps(spec).encode())
        channel.shutdown_write()
        return channel
    except (paramiko.SSHException, OSError) as exc:
        raise TargetError(f"{label}: cannot start the worker: {exc}") from None
