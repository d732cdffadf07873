"""``kind: vm, provisioner: qemu`` with real QEMU guests booted from the disk ``bench build``
makes (under TCG here: this machine's KVM cannot run a guest), and nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from bench import metadata
from bench.build.builder import Builder
from bench.build.config import BuildConfig
from bench.errors import TargetError
from bench.results import ResultStore, load, load_cells, load_manifest, load_raw
from bench.runner import NullObserver, Runner
from bench.suite import parse_suite
from bench.targets import accel, qemu
from bench.targets.vm import QemuVmConfig
from bench.targets.vmqemu import QemuVmTarget
from tests.conftest import REPO, MatrixRun, bench_cli
from tests.test_run_e2e import COMMON, EXPECTED

pytestmark = pytest.mark.slow

VM = "{name: vm, kind: vm, vcpus: 2, memory: 1g, accel: auto}"
GUEST = [  # the guest's own workloads, as the matrix run has them
    {k: v for k, v in w.items() if k != "matrix_kinds"}
    for w in yaml.safe_load((REPO / "tests" / "matrix" / "guest.yaml").read_text())
]
TINY = yaml.safe_dump({"workloads": GUEST}, sort_keys=False)
OWN = [w["name"] for w in GUEST]
VM_ONLY = {"startup.kernel_boot_s", "mem.overhead_bytes"}
STAGED = {"train": {"startup.load_weights_s"}}  # its checkpoint is read from its location
COPIED = {"startup.stage_s"}  # a guest gets its copy of the checkpoint per cell


def qemu_pids(run_id: str) -> list[int]:
    """QEMU processes started for ``run_id`` (their -name carries it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"bench-{run_id}-".encode() in cmdline and b"qemu" in cmdline:
            found.append(int(entry.name))
    return found


def guest_dirs(run_id: str) -> list[Path]:
    return [d for d, _ in qemu.owners() if d.name.startswith(f"{run_id}-")]


@pytest.fixture(scope="module")
def guest_built(tmp_path_factory) -> str:
    """The matched guest disk, built (or found in the cache) by ``bench build``."""
    suite = tmp_path_factory.mktemp("build") / "suite.yaml"
    suite.write_text(f"name: b\ntargets:\n  - {VM}\n{TINY}")
    build = bench_cli("build", str(suite), timeout=1800)
    assert build.returncode == 0, build.stderr
    assert "guest disk" in build.stdout, build.stdout
    return build.stdout


@pytest.fixture
def guest_run(guest_built, matrix_run) -> tuple[MatrixRun, str]:
    """The session's matrix run on a guest beside bare metal (tests/matrix: the guest's own
    tiny workloads of guest.yaml, and the other kinds' cells a guest runs), and its run id."""
    run = matrix_run("vm")
    assert run.run_dir is not None, run.proc.stderr
    return run, run.run_dir.name


def test_guest_runs_its_own_workloads(guest_run) -> None:
    run, run_id = guest_run
    cells = run.cells[run.cells.workload.isin(OWN)]
    assert len(cells) == 2 * len(OWN) and (cells.status == "ok").all(), run.proc.stderr
    assert run.cell("train")["info"]["num_workers"] == 1  # a DataLoader worker in the guest
    run_dir = run.run_dir
    samples = load(run_dir)
    samples = samples[samples.workload.isin(OWN)]
    for workload in OWN:
        metrics = EXPECTED[workload]
        got = set(samples[(samples.workload == workload) & (samples.target == "vm")]["metric"])
        staged = STAGED.get(workload, set())
        copied = COPIED if staged else set()
        assert got == metrics | COMMON | VM_ONLY | staged | copied, workload
        bare = set(samples[(samples.workload == workload) & (samples.target == "bare")]["metric"])
        assert got - bare == VM_ONLY | copied
    vm = samples[samples.target == "vm"].pivot_table(
        index="workload", columns="metric", values="value"
    )
    assert (vm["startup.provision_s"] > vm["startup.kernel_boot_s"]).all()
    assert (vm["mem.host_bytes"] > vm["mem.rss_peak_bytes"]).all()
    parts = vm["mem.host_bytes"] - vm["mem.rss_peak_bytes"]
    assert (parts - vm["mem.overhead_bytes"]).abs().max() < 1
    for entry in load_raw(run_dir).values():  # QEMU's memory over the boot and the run
        if "-vm-" in entry["cell"] and entry["cell"].split("-vm-")[1].rsplit("-r")[0] in OWN:
            line, marks = entry["host_timelines"]["mem.host_bytes"], entry["startup_marks_s"]
            assert line["t_s"][0] < marks["provision"] < line["t_s"][-1]
            assert line["value"][-1] > 2 * line["value"][0]  # the guest's memory filled in
    assert not qemu_pids(run_id) and not guest_dirs(run_id)


def test_accel_is_recorded_and_labelled(guest_run) -> None:
    run, _ = guest_run
    done = run.proc
    manifest = load_manifest(run.run_dir)
    made = manifest["targets"]["vm"]["artefacts"]
    assert made["accel"] in ("kvm", "tcg") and made["accel_reason"].startswith("auto: ")
    facts = manifest["targets"]["vm"]["fingerprint"]["vm"]
    assert facts["accel"] == made["accel"] and facts["vcpus"] == 2
    assert facts["memory_bytes"] == 1 << 30
    assert manifest["targets"]["vm"]["fingerprint"]["cores"]["logical"] == 2
    if made["accel"] == "tcg":
        assert made["cpu"] == "max"
        assert "vm [TCG (software emulation)]" in done.stdout
    assert "different hardware" not in done.stdout  # the guest ran on this host


def test_cells_record_kernel_boot_from_the_console(guest_run) -> None:
    run, _ = guest_run
    cells = run.cells[run.cells.target == "vm"]
    samples = load(run.run_dir)
    boot = samples[samples.metric == "startup.kernel_boot_s"]["value"]
    assert len(boot) == (cells.status == "ok").sum() >= 3  # every cell that finished
    assert (boot > 0).all() and (boot < 300).all()


def _prepared(config: str) -> QemuVmTarget:
    suite = parse_suite(f"name: p\ntargets:\n  - {config}\n{TINY}")
    target = QemuVmTarget(suite.targets[0])
    target.prepare(Builder(suite.build))
    return target


def test_every_repetition_boots_a_pristine_disk(guest_built) -> None:
    target = _prepared(VM)
    run_id = f"p{uuid.uuid4().hex[:8]}"
    with target._booted(run_id) as (vm, client, _):
        _, out, _ = client.exec_command("echo dirty > /root/marker && sync && echo ok")
        assert out.read().strip() == b"ok"
        assert vm.directory.is_dir()
    assert not vm.directory.exists() and not vm.running()
    with target._booted(run_id) as (_, client, _):
        _, out, _ = client.exec_command("test -e /root/marker && echo kept || echo fresh")
        assert out.read().strip() == b"fresh"
    assert not qemu_pids(run_id) and not guest_dirs(run_id)


class KillGuestOnStart(NullObserver):
    """Kills the cell's QEMU as soon as the worker has started in the guest."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.killed: list[int] = []

    def cell_phase(self, cell, phase: str) -> None:
        if phase == "provisioned":
            for pid in qemu_pids(self.run_id):
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)


def kill_first_guest(run_id: str, timeout: float = 600) -> None:
    """SIGKILL the first QEMU started for ``run_id`` as soon as it exists."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pids = qemu_pids(run_id)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        if pids:
            return
        time.sleep(0.05)


def test_guest_killed_mid_run_is_reported(guest_built, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_STATE_DIR", str(tmp_path / "state"))  # no fingerprint kept
    suite = parse_suite("""
name: killed
repetitions: 3
targets:
  - {name: vm, kind: vm, memory: 1g, accel: tcg, tcg_repetitions: 1}
workloads:
  - {name: train, kind: train_step, batch_size: 8, steps: 100000, warmup_steps: 1}
""")
    run_id = f"k{uuid.uuid4().hex[:8]}"
    store = ResultStore(tmp_path, suite.name, run_id)
    observer = KillGuestOnStart(run_id)
    # The fingerprint's guest goes first: its boot and torch import are not what this test is
    # about, and the run records its failure and still deploys the cell.
    first = threading.Thread(target=kill_first_guest, args=(run_id,), daemon=True)
    first.start()
    summary = Runner(suite, store, observer).run()
    first.join(timeout=1)
    assert "status -9" in load_manifest(store.path)["targets"]["vm"]["fingerprint_error"]
    assert summary.failed == 1 and observer.killed
    # under TCG the guest ran tcg_repetitions of the suite's three, and the manifest says so
    assert summary.cells == 1 and len(load_manifest(store.path)["plan"]) == 1
    error = load_cells(store.path).error.iloc[0]
    assert "the guest's QEMU process exited (status -9)" in error, error
    assert not qemu_pids(run_id) and not guest_dirs(run_id)


def test_ctrl_c_during_boot_leaves_no_guest(guest_built, write_suite, tmp_path) -> None:
    suite = write_suite(f"name: intr\nrepetitions: 1\ntargets:\n  - {VM}\n{TINY}")
    run_id = f"i{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", str(suite), "--results-dir",
         str(tmp_path), "--run-id", run_id],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    end = time.monotonic() + 300
    while not qemu_pids(run_id):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert not qemu_pids(run_id) and not guest_dirs(run_id)
    assert load_manifest(tmp_path / "intr" / run_id)["status"] == "interrupted"


ORPHAN = """
import sys, time
from pathlib import Path
from bench.targets.qemu import Guest, Machine
g = Path(sys.argv[1])
machine = Machine(binary="qemu-system-x86_64", accel="tcg", cpu="max", vcpus=1,
    memory_mib=256, disk_cache="writeback", kernel=g / "vmlinuz", initrd=g / "initrd.img",
    disk=g / "disk.img", package_disk=Path(sys.argv[2]))
Guest(machine, sys.argv[3], "t", "t").start()
print("started", flush=True)
time.sleep(600)
"""


def test_gc_removes_orphaned_guests_only(guest_built, tmp_path) -> None:
    target = _prepared(VM)
    prepared = target._ready()
    env = {**os.environ, "BENCH_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    run_id = f"g{uuid.uuid4().hex[:8]}"
    args = [str(prepared.image.path), str(prepared.machine.package_disk)]
    controllers = []
    for name in ("orphan", "live"):
        proc = subprocess.Popen(
            [sys.executable, "-c", ORPHAN, *args, f"{run_id}{name}"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        controllers.append(proc)
    orphan, live = controllers
    try:
        orphan.kill()  # the controller dies; its QEMU (own session) survives
        orphan.wait()
        assert qemu_pids(f"{run_id}orphan")
        gc = [sys.executable, "-m", "bench.cli", "gc"]
        done = subprocess.run(gc, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert f"{run_id}orphan" in done.stdout and f"{run_id}live" not in done.stdout
        assert "removed 1 VM guest(s)" in done.stdout
        _wait_gone(f"{run_id}orphan")
        assert qemu_pids(f"{run_id}live")
        remaining = [p.name for p in (tmp_path / "state" / "vms").iterdir()]
        assert len(remaining) == 1 and remaining[0].startswith(f"{run_id}live")
        done = subprocess.run(
            [*gc, "--all"], cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        assert "removed 1 VM guest(s)" in done.stdout
        _wait_gone(f"{run_id}live")
    finally:
        live.kill()
        for pid in qemu_pids(run_id):
            os.kill(pid, signal.SIGKILL)


def _wait_gone(run_id: str, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while qemu_pids(run_id):
        assert time.monotonic() < end, f"QEMU of {run_id} still running"
        time.sleep(0.1)


def test_vcpu_threads_are_pinned(guest_built) -> None:
    target = _prepared("{name: vm, kind: vm, vcpus: 2, memory: 512m, pin_vcpus: [1, 0]}")
    vm = qemu.Guest(target._ready().machine, f"n{uuid.uuid4().hex[:8]}", "vm", "vm")
    try:
        vm.start()
        assert vm.process is not None
        threads = qemu.vcpu_threads(vm.process.pid)
        assert os.sched_getaffinity(threads[0]) == {1}
        assert os.sched_getaffinity(threads[1]) == {0}
    finally:
        vm.destroy()
    assert not vm.directory.exists()


def test_accel_probe_is_bounded_and_cached(guest_built, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_STATE_DIR", str(tmp_path))
    target = _prepared("{name: vm, kind: vm, accel: tcg}")
    kernel = target._ready().image.kernel
    started = time.monotonic()
    problem = accel.probe("qemu-system-x86_64", kernel, "host", timeout_s=5)
    assert time.monotonic() - started < 5 + 30  # bounded: a guest that hangs is given up on
    assert problem is None or isinstance(problem, str)
    first = accel.choose("auto", "qemu-system-x86_64", kernel, "host")

    def no_second_probe(*args: object, **kwargs: object) -> str:
        raise AssertionError("probed again: the answer was not cached for this boot")

    monkeypatch.setattr(accel, "probe", no_second_probe)
    again = accel.choose("auto", "qemu-system-x86_64", kernel, "host")
    assert again == first  # cached for this boot
    assert accel.choose("tcg", "qemu-system-x86_64", kernel, "max").name == "tcg"
    if not Path("/dev/kvm").exists():
        assert "does not exist" in first.reason


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{name: v, kind: vm, vcpus: 2, pin_vcpus: [0]}", "pin_vcpus lists 1 CPUs for 2 vCPUs"),
        ("{name: v, kind: vm, memory: 100m}", "at least 256m"),
        ("{name: v, kind: vm, accel: hvf}", "targets[0].accel"),
        ("{name: v, kind: vm, disk_cache: fast}", "targets[0].disk_cache"),
        ("{name: v, kind: vm, vcpu: 2}", "targets[0].vcpu: unknown key"),
    ],
)
def test_bad_vm_keys_exit_2(write_suite, target: str, message: str) -> None:
    suite = write_suite(f"name: bad\ntargets:\n  - {target}\n{TINY}")
    done = bench_cli("validate", str(suite))
    assert done.returncode == 2, done.stdout
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "suite.yaml:3" in done.stderr


def test_unknown_pin_cpu_fails_prepare_clearly(guest_built) -> None:
    config = QemuVmConfig.model_validate(
        {"name": "v", "kind": "vm", "vcpus": 1, "pin_vcpus": [4096]}
    )
    with pytest.raises(TargetError, match=r"pin_vcpus names CPUs \[4096\] that are not usable"):
        QemuVmTarget(config).prepare(Builder(BuildConfig()))


def test_owner_file_names_the_controller(guest_built) -> None:
    target = _prepared("{name: vm, kind: vm, memory: 512m, accel: tcg}")
    vm = qemu.Guest(target._ready().machine, f"o{uuid.uuid4().hex[:8]}", "vm", "vm")
    try:
        vm.start()
        owner = json.loads((vm.directory / qemu.OWNER_FILE).read_text())
        assert owner["controller"] == metadata.controller_label()
        assert vm.process is not None and owner["qemu_pid"] == vm.process.pid
    finally:
        vm.destroy()


def test_a_guest_fingerprint_is_kept_for_this_boot(guest_built, tmp_path, monkeypatch) -> None:
    """The second fingerprint of the same guest, QEMU and settings boots nothing; another
    setting boots again. (Without torch: the import costs half a minute under emulation and
    the keeping does not depend on it.)"""
    monkeypatch.setenv("BENCH_STATE_DIR", str(tmp_path))
    target = _prepared("{name: vm, kind: vm, vcpus: 1, memory: 768m, accel: tcg}")
    first = target.fingerprint("fp1", torch=False)
    assert first["vm"]["guest_fingerprint"]["run_id"] == "fp1"
    assert first["vm"]["guest_fingerprint"]["kept"] is False
    assert first["cores"]["logical"] == 1 and first["python"]

    def no_boot(run_id: str, torch: bool) -> dict:
        raise AssertionError("booted again: the guest's fingerprint was not kept")

    monkeypatch.setattr(target, "_guest_fingerprint", no_boot)
    again = target.fingerprint("fp2", torch=False)
    assert again["vm"]["guest_fingerprint"] == {**first["vm"]["guest_fingerprint"], "kept": True}
    assert {k: v for k, v in again.items() if k != "vm"} == {
        k: v for k, v in first.items() if k != "vm"
    }
    asked: list[bool] = []

    def ask(run_id: str, torch: bool) -> dict:
        asked.append(torch)
        return {"_taken_by": run_id, "_taken_at": "now"}

    other = _prepared("{name: vm, kind: vm, vcpus: 1, memory: 640m, accel: tcg}")
    monkeypatch.setattr(other, "_guest_fingerprint", ask)
    other.fingerprint("fp3", torch=False)
    assert asked == [False]  # other memory: asked again
    monkeypatch.setattr(target, "_guest_fingerprint", ask)
    target.fingerprint("fp4")
    assert asked == [False, True]  # with torch: asked again
