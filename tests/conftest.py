"""Shared fixtures: suite files written to a temp dir and the real ``bench`` CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import SshServer

REPO = Path(__file__).resolve().parent.parent

# A shell that starts a background job without job control (``./bootstrap.sh test &`` in a
# script, a CI runner's detached step) makes it ignore SIGINT, and an ignored signal stays
# ignored across exec: every ``bench`` the tests start would then ignore the Ctrl-C they send
# it. Python installs its own handler only where SIGINT is not ignored, so restore that here;
# a handler (unlike SIG_IGN) resets to the default in the children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def write_suite(tmp_path: Path):
    """Write YAML text (dedented) to a suite file and return its path."""

    def write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return write


def bench_cli(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run the real ``bench`` console entry point in a subprocess (``env``: extra variables)."""
    env = {**os.environ, "COLUMNS": "200", **(kwargs.pop("env", None) or {})}
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=kwargs.pop("cwd", REPO),
        timeout=kwargs.pop("timeout", 600),
        check=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[SshServer]:
    """A private OpenSSH server on a loopback port, for a module's SSH and static-VM tests."""
    srv = SshServer(tmp_path_factory.mktemp("sshd")).setup().start()
    yield srv
    srv.stop()


@pytest.fixture
def remote_dir(tmp_path: Path) -> Path:
    """The remote workdir (same machine, so tests can inspect what the harness left)."""
    path = tmp_path / "remote"
    path.mkdir()
    return path


def run_suite(root: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``bench run`` of the suite ``text``, stored under ``root/results``."""
    suite = root / "suite.yaml"
    suite.write_text(text)
    return bench_cli("run", str(suite), "--results-dir", str(root / "results"), *args)
