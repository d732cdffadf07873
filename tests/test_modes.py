"""File modes and symbolic links: secrets are private from the moment they exist, bench never
writes through a link planted where it writes, ``prune`` deletes nothing outside the history,
and the exports are readable by the non-root users dashboards run as."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from bench.build import guest
from bench.errors import TargetError
from bench.nightly import export, history, lock, record, retention
from bench.targets import sshconn
from tests.conftest import bench_cli

SUITE = """\
name: modes
targets:
  - {name: bare, kind: local}
workloads:
  - {name: t, kind: train_step, batch_size: 8, steps: 2, warmup_steps: 1}
"""


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.lstat().st_mode))


@pytest.fixture
def umask() -> Iterator[None]:
    """The usual umask (022), under which a file created without a mode is world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_guest_disk_and_keys_are_private_from_the_start(tmp_path, umask) -> None:
    tree, out = tmp_path / "tree", tmp_path / "out"
    (tree / "etc" / "ssh").mkdir(parents=True)
    out.mkdir()
    guest._write_keys(tree, out)
    guest._mkfs(tree, out / "disk.img", "bench-root", 8 << 20)  # holds the guest's host key
    assert mode(out / "disk.img") == oct(0o600)
    assert mode(out / "id_ed25519") == oct(0o600)
    assert mode(tree / "etc" / "ssh" / "ssh_host_ed25519_key") == oct(0o600)
    assert mode(tree / "root" / ".ssh") == oct(0o700)
    assert mode(tree / "root" / ".ssh" / "authorized_keys") == oct(0o600)
    assert mode(out / "id_ed25519.pub") == oct(0o644)
    guest.private_dir(tmp_path / "cache" / "guest" / "staging")
    assert mode(tmp_path / "cache" / "guest" / "staging") == oct(0o700)


def test_a_key_is_never_written_through_a_planted_symlink(tmp_path, umask) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "id_ed25519").symlink_to(victim)
    with pytest.raises(OSError):
        guest._write_keys(tmp_path / "tree", out)
    assert victim.read_text() == "keep me\n"


def _accept(path: Path) -> None:
    key = paramiko.ECDSAKey.generate()
    sshconn.AcceptNewPolicy(path).missing_host_key(paramiko.SSHClient(), "[h]:2222", key)


def test_accept_new_known_hosts_is_private(tmp_path, umask) -> None:
    known = tmp_path / "state" / "known_hosts"
    _accept(known)
    assert mode(known) == oct(0o600)
    assert mode(known.parent) == oct(0o700)
    assert known.read_text().startswith("[h]:2222 ecdsa-sha2-nistp256 ")


def test_accept_new_does_not_follow_a_symlink(tmp_path, umask) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (tmp_path / "known_hosts").symlink_to(victim)
    with pytest.raises(TargetError, match="cannot record the host key"):
        _accept(tmp_path / "known_hosts")
    assert victim.read_text() == "keep me\n"


def test_nightly_refuses_a_symlinked_lock(tmp_path) -> None:
    root, victim = tmp_path / "history", tmp_path / "victim"
    root.mkdir()
    victim.write_text("keep me\n")
    (root / lock.LOCK).symlink_to(victim)
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    done = bench_cli("nightly", str(suite), "--history", str(root))
    assert victim.read_text() == "keep me\n"
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "nightly.lock is a symbolic link" in lines[0]
    assert sorted(p.name for p in root.iterdir()) == [lock.LOCK]  # nothing ran


def _entry(run_id: str, path: str) -> history.Entry:
    return history.Entry(run_id, "s", "h", path, "2024-01-01T00:00:00", None, "complete", {}, [])


def _crafted_history(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A history whose index names three directories outside it and two runs of its own."""
    root = tmp_path / "history"
    runs = root / "runs" / "s"
    outside = [tmp_path / "outside-relative", tmp_path / "outside-absolute", tmp_path / "linked"]
    for directory in [*outside, runs / "old", runs / "new"]:
        directory.mkdir(parents=True)
        (directory / "data").write_text("x")
    (runs / "link").symlink_to(outside[2])
    entries = [
        _entry("rel", "../outside-relative"),
        _entry("abs", str(outside[1])),
        _entry("link", "runs/s/link"),
        _entry("old", "runs/s/old"),
        _entry("new", "runs/s/new"),
    ]
    history.History(root).save(entries)
    return root, outside


def test_prune_deletes_nothing_outside_the_history(tmp_path) -> None:
    root, outside = _crafted_history(tmp_path)
    pruned = retention.prune(root, 1)
    assert all((directory / "data").is_file() for directory in outside)
    assert pruned == ["old"]
    assert not (root / "runs" / "s" / "old").exists()
    assert (root / "runs" / "s" / "new" / "data").is_file()


def test_prune_warns_about_each_refused_entry(tmp_path) -> None:
    root, _ = _crafted_history(tmp_path)
    seen: list[str] = []
    retention.prune(root, 1, warn=seen.append)
    assert len(seen) == 3 and all("\n" not in line for line in seen)
    assert all("is not a run directory inside the history" in line for line in seen)
    assert [e.path for e in history.History(root).entries()] == [
        "../outside-relative",
        str(tmp_path / "outside-absolute"),
        "runs/s/link",
        "",
        "runs/s/new",
    ]


def test_exports_are_readable_by_others_whatever_the_umask(tmp_path) -> None:
    root = tmp_path / "history"
    old = os.umask(0o077)  # a root cron job's umask on a hardened host
    try:
        with lock.locked(root):
            entry = _entry("r1", "runs/s/r1")
            entry.summary = [{"workload": "t", "target": "bare", "metric": "train.throughput"}]
            entry.summary[0] |= {"unit": "samples/s", "n": 3, "median": 1.0, "q1": 1.0}
            entry.summary[0] |= {"q3": 1.0, "ci_low": 1.0, "ci_high": 1.0}
            history.History(root).append(entry)
            outcome = record.Outcome(entry, None, None, [], 0)
            prom, parquet = export.export(root, outcome)
    finally:
        os.umask(old)
    assert mode(root) == oct(0o755)
    assert mode(prom) == oct(0o644) and mode(parquet) == oct(0o644)
    assert "bench_metric_median" in prom.read_text()
    assert json.loads((root / "index.jsonl").read_text())["run_id"] == "r1"
