"""Assets staged on real targets: bare metal, a container on the real engine, a host over a
real OpenSSH server, and a QEMU guest's second disk. Every target reads the bytes the manifest
records; the filesystem under them is the one the location names; a failing cell and the end
of the run leave nothing behind (no container, remote directory or /dev/shm directory)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench.assets import guest as guest_assets
from bench.assets.staging import Staging
from bench.build.builder import Builder
from bench.plan import build_plan
from bench.results import load, load_cells, load_manifest
from bench.suite import parse_suite
from tests.conftest import REPO, bench_cli
from tests.docker_engine import ensure_engine, labelled
from tests.sshd import SSHD
from tests.test_interrupts import interrupt, start_bench, wait_until
from tests.test_run_e2e import run_dir_of
from tests.test_vm import VM, _prepared, guest_built, guest_dirs, qemu_pids  # noqa: F401
from tests.test_vm_static import START, STOP, lines, static_vm, vm  # noqa: F401
from workloads.assets import fs_type

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server missing"),
]

RAW = "dataset: {format: raw, samples: 16, sample_bytes: 4096}, batch_size: 4, num_workers: 0"
WORKLOADS = f"""\
workloads:
  - {{name: img, kind: train_step, model: mlp, batch_size: 4, steps: 2, location: image}}
  - {{name: vol, kind: data_loading, {RAW}, location: volume}}
  - {{name: ram, kind: data_loading, {RAW}, location: tmpfs}}
  - {{name: bad, kind: data_loading, {RAW}, location: tmpfs, timeout_s: 0.01}}
"""
SHM = Path("/dev/shm")
BARE = "{name: bare, kind: local}"
CONTAINER = "{name: ctr, kind: docker, build: true}"


@pytest.fixture(scope="module")
def staged_run(server, tmp_path_factory):
    """One run of the four workloads on bare metal, a container and an SSH host."""
    client = ensure_engine()
    tmp = tmp_path_factory.mktemp("staged")
    remote = tmp / "remote"
    remote.mkdir()
    ssh = server.target_yaml(python=sys.executable, workdir=str(remote))
    targets = "".join(f"  - {t}\n" for t in (BARE, CONTAINER, ssh))
    head = "name: staged\nrepetitions: 1\nmin_iterations: 1\ntargets:\n"
    suite = tmp / "suite.yaml"
    suite.write_text(head + targets + WORKLOADS)
    done = bench_cli("run", str(suite), "--results-dir", str(tmp / "r"), timeout=1200)
    run_dir = run_dir_of(done)
    return done, run_dir, remote, client


def test_every_target_reads_the_recorded_bytes(staged_run) -> None:
    done, run_dir, _, _ = staged_run
    cells = load_cells(run_dir)
    assert done.returncode != 0  # the "bad" cells fail (timeout), the others must not
    assert set(cells[cells.status != "ok"].workload) == {"bad"}, done.stderr
    assert all("timed out" in e or "timeout" in e for e in cells[cells.workload == "bad"].error)
    recorded = load_manifest(run_dir)["assets"]
    for cell in cells[cells.status == "ok"].itertuples():
        seen = cell.info["assets"]
        assert seen["location"] == recorded[cell.workload]["location"]
        for kind in ("checkpoint", "dataset"):
            if kind in recorded[cell.workload]:
                assert seen[kind]["sha256"] == recorded[cell.workload][kind]["sha256"], cell.slug


def test_start_up_phases_and_data_wait_on_every_kind(staged_run) -> None:
    """The start-up split and the loader's figures are measured on every target kind; what
    does not apply is absent with its reason."""
    _, run_dir, _, _ = staged_run
    samples, cells = load(run_dir), load_cells(run_dir)
    for target in ("bare", "ctr", "remote"):
        train = set(samples[(samples.target == target) & (samples.workload == "img")].metric)
        assert {"startup.import_s", "startup.load_weights_s", "train.data_wait_s"} <= train
        row = cells[(cells.target == target) & (cells.workload == "img")].iloc[0]
        assert row["absent"]["startup.compile_s"] == "compile: false"
        loads = set(samples[(samples.target == target) & (samples.workload == "vol")].metric)
        assert {"data.loader_startup_s", "startup.import_s"} <= loads


def _fs(cells, target: str, workload: str, kind: str = "dataset") -> dict:
    row = cells[(cells.target == target) & (cells.workload == workload)].iloc[0]
    return row["info"]["assets"][kind]


def test_the_location_decides_the_filesystem(staged_run) -> None:
    _, run_dir, remote, _ = staged_run
    cells = load_cells(run_dir)
    recorded = load_manifest(run_dir)["assets"]
    cache = Path(recorded["vol"]["targets"]["bare"]["paths"]["dataset"])
    assert _fs(cells, "ctr", "img", "checkpoint")["fs_type"] == "overlay"  # an image layer
    assert _fs(cells, "ctr", "vol")["fs_type"] == fs_type(str(cache))  # the host's own
    assert _fs(cells, "ctr", "ram")["fs_type"] == "tmpfs"
    if fs_type(str(cache)) != "overlay":
        assert (
            _fs(cells, "ctr", "vol")["fs_type"] != _fs(cells, "ctr", "img", "checkpoint")["fs_type"]
        )
    assert _fs(cells, "bare", "vol")["path"] == str(cache)  # bare metal reads the cache
    assert _fs(cells, "bare", "ram")["fs_type"] == "tmpfs"
    assert _fs(cells, "bare", "ram")["path"].startswith("/dev/shm/bench-")
    assert _fs(cells, "remote", "img", "checkpoint")["path"].startswith(f"{remote}/bench-")
    assert _fs(cells, "remote", "ram")["path"].startswith("/dev/shm/bench-")
    assert _fs(cells, "remote", "ram")["fs_type"] == "tmpfs"
    image = recorded["img"]["targets"]["ctr"]
    assert image["image"].startswith("bench-assets:")


def test_nothing_is_left_behind(staged_run) -> None:
    _, run_dir, remote, client = staged_run
    run_id = run_dir.name
    assert labelled(client, run_id) == []
    assert list(remote.iterdir()) == []  # the run directory, with its asset copies
    assert list(Path("/dev/shm").glob(f"bench-{run_id}*")) == []  # local and remote RAM dirs
    image = load_manifest(run_dir)["assets"]["img"]["targets"]["ctr"]["image"]
    assert client.images.get(image).labels.get("bench.artefact") == "assets"  # cache, kept


def test_a_guest_reads_the_volume_from_its_second_disk(guest_built) -> None:  # noqa: F811
    """The worker's own check runs on the other targets; here, to keep to one short boot, a
    probe beside the starting worker reads the staged disk (the guest's root is ext4 too, so
    the mount point and read-only-ness say it is the second disk)."""
    suite = parse_suite(f"name: g\nmin_iterations: 1\ntargets:\n  - {VM}\n{WORKLOADS}")
    target = _prepared(VM)
    staging = Staging(suite, {"vm": target}, build_plan(suite))
    recorded = staging.prepare(Builder(suite.build), set(), "g")
    disk = recorded["vol"]["targets"]["vm"]["disk"]
    options = suite.workload("vol").model_dump(mode="json", exclude={"timeout_s"})
    spec = staging.spec({"workload": options, "seed": 0}, "vm", "vol")
    path = spec["assets"]["dataset"]["path"]
    probe = "import json, sys; from workloads import assets as a; "
    probe += "print(json.dumps(a.describe(sys.argv[1])))"
    run_id = f"g{uuid.uuid4().hex[:8]}"
    with target.deploy(spec, run_id) as deployment:
        assert deployment.vm.machine.asset_disk == Path(disk)
        stage = [m for m in deployment.host_measurements() if m.metric == "startup.stage_s"]
        assert stage[0].value > 0  # the mount, a share of provision
        python = f"PYTHONPATH=/opt/bench/lib /opt/bench/venv/bin/python -c {shlex.quote(probe)}"
        seen = json.loads(_guest(deployment.client, f"{python} {path}"))
        written = _guest(deployment.client, f"touch {path}/x 2>&1 || echo refused")
        mounts = _guest(deployment.client, "cat /proc/mounts")
    assert seen["sha256"] == recorded["vol"]["dataset"]["sha256"] and seen["fs_type"] == "ext4"
    assert "Read-only file system" in written and "refused" in written
    assert f"/dev/vdc {guest_assets.ROOTS['volume']} ext4 ro" in mounts
    assert not qemu_pids(run_id) and not guest_dirs(run_id)


def _guest(client, command: str) -> str:
    _, out, _ = client.exec_command(command, timeout=300)
    return out.read().decode()


def test_a_static_vm_booted_per_repetition_gets_its_assets_after_each_boot(
    vm,  # noqa: F811 (the fixture imported above)
    remote_dir,
    tmp_path,
) -> None:
    log, pidfile, start = tmp_path / "power.log", vm.dir / "sshd.pid", tmp_path / "start.sh"
    config = vm.dir / "sshd_config"
    start.write_text(
        START.format(
            python=sys.executable, host=vm.host, port=vm.port, log=log, sshd=SSHD, config=config
        )
    )
    stop = ["sh", "-c", STOP.format(log=log, pidfile=pidfile)]
    target = static_vm(vm, remote_dir, start=f"sh {start}", stop=stop, boot_timeout_s=30)
    ram = {"name": "ram", "kind": "data_loading", "batch_size": 4, "num_workers": 0}
    ram |= {"location": "tmpfs", "dataset": {"format": "raw", "samples": 16, "sample_bytes": 512}}
    suite = tmp_path / "suite.yaml"
    body = {"name": "cycled", "repetitions": 2, "min_iterations": 1}
    suite.write_text(json.dumps({**body, "targets": [target], "workloads": [ram]}))
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"), timeout=300)
    assert done.returncode == 0, done.stderr
    run_dir = run_dir_of(done)
    cells = load_cells(run_dir)
    digest = load_manifest(run_dir)["assets"]["ram"]["dataset"]["sha256"]
    for info in cells["info"]:  # the second boot found no copy: it was made again
        assert info["assets"]["dataset"]["sha256"] == digest
        assert info["assets"]["dataset"]["path"].startswith("/dev/shm/bench-")
    assert lines(log) == ["start", "stop"] * 3
    assert list(remote_dir.iterdir()) == []
    assert list(Path("/dev/shm").glob(f"bench-{run_dir.name}*")) == []


def _long_suite(path: Path, server, remote_dir: Path) -> Path:
    """Bare metal and an SSH host, each a worker reading its /dev/shm copy for minutes."""
    long = {"name": "long", "kind": "data_loading", "batch_size": 4, "num_workers": 0}
    long |= {"location": "tmpfs", "epochs": 1000, "warmup_batches": 1}
    long["dataset"] = {"format": "raw", "samples": 64, "sample_bytes": 512}
    ssh = {"name": "remote", "kind": "ssh", "host": server.host, "port": server.port}
    ssh |= {"key": str(server.client_key), "known_hosts": str(server.known_hosts)}
    ssh |= {"python": sys.executable, "workdir": str(remote_dir)}
    targets = [{"name": "bare", "kind": "local"}, ssh]
    path.write_text(
        json.dumps({"name": "long", "repetitions": 1, "targets": targets, "workloads": [long]})
    )
    return path


def _wait_for_copies(run_id: str, proc: subprocess.Popen[str]) -> None:
    copies = (f"bench-{run_id}-*/bench-staged-*", f"bench-{run_id}-*/cell-*/bench-staged-*")
    wait_until(lambda: all(list(SHM.glob(pattern)) for pattern in copies), proc)


def test_ctrl_c_removes_every_ram_directory(server, remote_dir, tmp_path) -> None:
    run_id = f"c{uuid.uuid4().hex[:8]}"
    proc = start_bench(
        _long_suite(tmp_path / "suite.yaml", server, remote_dir), tmp_path / "r", run_id
    )
    _wait_for_copies(run_id, proc)
    interrupt(proc)
    assert proc.returncode == 130
    assert list(SHM.glob(f"bench-{run_id}*")) == []
    assert list(remote_dir.iterdir()) == []


def test_gc_removes_the_ram_directories_of_a_killed_run(server, remote_dir, tmp_path) -> None:
    """The controller is SIGKILLed: the directories stay, recorded; ``bench gc`` finds them
    (the state directory is private: what other runs recorded is not this test's)."""
    state = {"BENCH_STATE_DIR": str(tmp_path / "state")}
    run_id = f"k{uuid.uuid4().hex[:8]}"
    suite = _long_suite(tmp_path / "suite.yaml", server, remote_dir)
    command = [sys.executable, "-m", "bench.cli", "run", str(suite), "--results-dir"]
    command += [str(tmp_path / "r"), "--run-id", run_id, "--parallel-hosts", "2"]
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **state},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_copies(run_id, proc)
    proc.kill()
    proc.communicate()
    assert list(SHM.glob(f"bench-{run_id}*"))  # left behind: only gc can know them now
    done = bench_cli("gc", env=state)
    assert done.returncode == 0, done.stderr + done.stdout
    assert list(SHM.glob(f"bench-{run_id}*")) == []
    assert list(remote_dir.iterdir()) == []


def test_generation_reads_its_checkpoint_on_bare_metal_and_an_ssh_host(
    server, remote_dir, tmp_path
) -> None:
    """The decoder's checkpoint is staged like any other; generation's metrics are measured
    on both kinds, and what does not apply is absent with its reason."""
    gen = {"name": "gen", "kind": "generate", "model": "llama", "preset": "tiny"}
    gen |= {"prompt_tokens": 8, "new_tokens": 4, "requests": 3, "location": "image"}
    ssh = {"name": "remote", "kind": "ssh", "host": server.host, "port": server.port}
    ssh |= {"key": str(server.client_key), "known_hosts": str(server.known_hosts)}
    ssh |= {"python": sys.executable, "workdir": str(remote_dir)}
    suite = {"name": "gen", "repetitions": 1, "min_iterations": 1, "workloads": [gen]}
    suite["targets"] = [{"name": "bare", "kind": "local"}, ssh]
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps(suite))
    done = bench_cli("run", str(path), "--results-dir", str(tmp_path / "r"), timeout=600)
    assert done.returncode == 0, done.stderr
    run_dir = run_dir_of(done)
    samples, cells = load(run_dir), load_cells(run_dir)
    wanted = {"gen.ttft_s", "gen.tpot_s", "gen.tokens_per_s", "startup.load_weights_s"}
    recorded = load_manifest(run_dir)["assets"]["gen"]["checkpoint"]["sha256"]
    for target in ("bare", "remote"):
        assert wanted <= set(samples[samples.target == target].metric), target
        row = cells[cells.target == target].iloc[0]
        assert row["absent"]["startup.compile_s"] == "compile: false"
        assert row["info"]["assets"]["checkpoint"]["sha256"] == recorded
    assert list(remote_dir.iterdir()) == []
