"""A remote run directory is trusted only when this run created it: one planted by someone
else (or a symlink, or one in a workdir others can write) is refused, and nothing in it runs.

The planted worker packages would write PWNED the moment they ran: the fingerprint step runs
the package before any cell, so no workload has to run to prove the point.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import workerpack as package
from bench.errors import TargetError
from bench.results import load_cells, load_manifest
from bench.targets.ssh import SshTargetConfig
from bench.targets.sshtarget import SshTarget
from tests.conftest import bench_cli
from tests.sshd import SshServer

pytestmark = pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="no openssh-server")

NOBODY = 65534
RUN_ID = "planted-run"


def plant(run_dir: Path, pwned: Path) -> Path:
    """A run directory as an attacker would leave it: the package marked complete, and code
    that records that it ran."""
    pkg = run_dir / package.build().name
    (pkg / "workloads").mkdir(parents=True)
    (pkg / ".complete").touch()
    (pkg / "workloads" / "__init__.py").write_text("")
    (pkg / "workloads" / "__main__.py").write_text(f"open({str(pwned)!r}, 'w').write('x')\n")
    return pkg


def give_away(path: Path) -> None:
    """Make ``path`` and everything under it belong to another user."""
    for sub in [path, *path.rglob("*")]:
        os.lchown(sub, NOBODY, NOBODY)


def target(server: SshServer, workdir: Path) -> SshTarget:
    config = SshTargetConfig(
        name="remote",
        kind="ssh",
        host=server.host,
        port=server.port,
        user=server.user,
        key=str(server.client_key),
        known_hosts=str(server.known_hosts),
        python=sys.executable,
        workdir=str(workdir),
    )
    return SshTarget(config)


def refused(remote: SshTarget, run_id: str, pwned: Path | None = None) -> str:
    """The one-line error of a fingerprint that must not use the run directory."""
    try:
        with pytest.raises(TargetError) as caught:
            remote.fingerprint(run_id)
    finally:
        remote.cleanup(run_id)
    assert pwned is None or not pwned.exists(), "bench ran code planted in the run directory"
    line = caught.value.one_line()
    assert "\n" not in line
    assert f"{remote.config.host}:{remote.run_dir(run_id)}" in line
    return line


def test_a_planted_run_directory_is_refused_and_its_code_never_runs(server, remote_dir, tmp_path):
    pwned = tmp_path / "PWNED"
    remote = target(server, remote_dir)
    run_dir = Path(remote.run_dir(RUN_ID))
    planted = plant(run_dir, pwned)
    give_away(run_dir)
    line = refused(remote, RUN_ID, pwned)
    assert "already exists" in line
    assert (planted / "workloads" / "__main__.py").is_file()  # not ours: left alone


@pytest.mark.slow  # a whole bench run: about 5 s
def test_cells_fail_cleanly_when_the_workdir_is_unsafe(server, tmp_path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could rename the run directory away and put another in place
    suite = tmp_path / "suite.yaml"
    entry = server.target_yaml(python=sys.executable, workdir=str(shared))
    suite.write_text(
        "name: trust\nrepetitions: 1\n"
        f"targets:\n  - {entry}\n"
        "workloads:\n  - {name: t, kind: command, argv: [sleep, '0.05']}\n"
    )
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"), "--run-id", RUN_ID)
    assert done.returncode == 1, done.stderr
    run = tmp_path / "r" / "trust" / RUN_ID
    error = load_cells(run).iloc[0]["error"]
    assert "\n" not in error
    assert f"refusing remote run directory {server.host}:{shared}/bench-" in error
    assert "can be written by others" in error
    assert "refusing" in load_manifest(run)["targets"]["remote"]["fingerprint_error"]
    assert list(shared.iterdir()) == []


def test_a_world_writable_run_directory_is_refused(server, remote_dir, tmp_path) -> None:
    pwned = tmp_path / "PWNED"
    remote = target(server, remote_dir)
    run_dir = Path(remote.run_dir("writable"))
    plant(run_dir, pwned)
    run_dir.chmod(0o777)
    assert "already exists" in refused(remote, "writable", pwned)
    assert run_dir.is_dir()


def test_a_symlink_in_place_of_the_run_directory_is_refused(server, remote_dir, tmp_path):
    pwned = tmp_path / "PWNED"
    elsewhere = tmp_path / "elsewhere"
    plant(elsewhere, pwned)
    remote = target(server, remote_dir)
    link = Path(remote.run_dir("linked"))
    link.symlink_to(elsewhere)
    assert "already exists" in refused(remote, "linked", pwned)
    assert sorted(p.name for p in elsewhere.iterdir()) == [package.build().name]
    assert link.is_symlink()


def test_a_workdir_others_can_write_is_refused_unless_sticky(server, tmp_path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could rename the run directory away and put another in place
    assert "can be written by others" in refused(target(server, shared), "open")
    assert list(shared.iterdir()) == []
    shared.chmod(0o1777)  # like /tmp: only the owner may rename or delete an entry
    remote = target(server, shared)
    client = remote._connect()
    try:
        pkg_dir = Path(remote._prepare(client, "sticky"))
    finally:
        client.close()
    assert (pkg_dir / "workloads" / "__main__.py").is_file()
    assert oct(pkg_dir.parent.stat().st_mode & 0o7777) == oct(0o700)
    remote.cleanup("sticky")
    assert list(shared.iterdir()) == []


def test_an_archive_whose_hash_differs_is_not_unpacked(tmp_path) -> None:
    from bench.targets import remotedir

    archive, pkg_dir = tmp_path / "pkg.tar.gz", tmp_path / "pkg"
    archive.write_bytes(package.build().archive)
    command = remotedir.install_command(sys.executable, str(archive), str(pkg_dir), b"other")
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "has SHA-256" in done.stderr and "expected" in done.stderr
    assert not pkg_dir.exists()
