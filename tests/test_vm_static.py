"""``kind: vm, provisioner: static`` against real OpenSSH servers started by the tests.

The "VM" of a static target is an sshd on this machine. With start/stop commands, the start
command launches a daemonised sshd (after a 1 s "boot") and the stop command kills it, so that
nothing listens between repetitions and every repetition really waits for SSH to come up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from bench.errors import SuiteError
from bench.results import load, load_cells, load_manifest
from bench.suite import parse_suite
from bench.targets.registry import make_target
from bench.targets.vm import QemuVmConfig, StaticVmConfig
from bench.targets.vmstatic import NOT_MEASURED
from tests.conftest import bench_cli
from tests.sshd import SSHD, SshServer, keygen
from tests.test_run_e2e import COMMON, EXPECTED, run_dir_of

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server missing"),
]

TRAIN = {
    "name": "train",
    "kind": "train_step",
    "batch_size": 8,
    "steps": 4,
    "warmup_steps": 1,
}

START = """\
#!/bin/sh
# The guest "boots": it must be down now, takes a second, then sshd daemonises.
if {python} -c 'import socket, sys; sys.exit(socket.socket().connect_ex(("{host}", {port})) == 0)'
then echo start >> {log}
else echo start-while-up >> {log}
fi
sleep 1
exec {sshd} -f {config}
"""

# Waits for the pid file to go: sshd removes it once its listening sockets are closed.
STOP = """\
echo stop >> {log}
kill "$(cat {pidfile})" || exit 1
i=0
while [ -e {pidfile} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
"""


@pytest.fixture
def vm(tmp_path: Path):
    """An sshd that is configured but not running: the start command brings it up."""
    srv = SshServer(tmp_path / "vm").setup()
    yield srv
    pidfile = srv.dir / "sshd.pid"
    if pidfile.exists():  # a failed test may leave the daemon the start command launched
        os.kill(int(pidfile.read_text()), signal.SIGTERM)


def static_vm(server: SshServer, remote_dir: Path, name: str = "vm", **extra: object) -> dict:
    """A static VM target entry for ``server`` (no retries: a refused connection fails fast)."""
    return {
        "name": name,
        "kind": "vm",
        "provisioner": "static",
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "key": str(server.client_key),
        "known_hosts": str(server.known_hosts),
        "python": sys.executable,
        "workdir": str(remote_dir),
        "connect_retries": 0,
        **extra,
    }


def run(tmp_path: Path, targets: list[dict], reps: int = 1):
    """``bench run`` on a suite of ``targets`` x the tiny train workload; (process, run dir)."""
    path = tmp_path / f"suite-{uuid.uuid4().hex[:6]}.yaml"
    body = {"name": "vmstatic", "repetitions": reps, "targets": targets, "workloads": [TRAIN]}
    path.write_text(json.dumps(body, indent=2))  # JSON is YAML
    done = bench_cli("run", str(path), "--results-dir", str(tmp_path / "results"), timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    return done, run_dir_of(done) if done.stdout.strip() else None


def listening(server: SshServer) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((server.host, server.port)) == 0


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_static_vm_without_start_stop_runs_like_ssh(server, remote_dir, tmp_path) -> None:
    done, run_dir = run(tmp_path, [static_vm(server, remote_dir)])
    assert done.returncode == 0, done.stderr
    entry = load_manifest(run_dir)["targets"]["vm"]
    assert entry["kind"] == "vm"
    assert entry["artefacts"]["provisioner"] == "static"
    assert entry["artefacts"]["boot"] == NOT_MEASURED
    assert entry["fingerprint"]["vm"] == {"provisioner": "static", "boot_measured": False}
    assert entry["fingerprint"]["torch"]
    cells = load_cells(run_dir)
    assert list(cells["status"]) == ["ok"] and list(cells["kind"]) == ["vm"]
    metrics = set(load(run_dir)["metric"])
    assert metrics >= EXPECTED["train"] | COMMON - {"mem.host_bytes"}  # remote: not probed
    assert "remote host" in cells.iloc[0]["absent"]["mem.host_bytes"]
    assert list(remote_dir.iterdir()) == []  # the run's remote directory is gone


def test_start_and_stop_boot_the_vm_for_every_repetition(vm, remote_dir, tmp_path) -> None:
    log = tmp_path / "power.log"
    pidfile = vm.dir / "sshd.pid"
    start = tmp_path / "start.sh"
    start.write_text(
        START.format(
            python=sys.executable,
            host=vm.host,
            port=vm.port,
            log=log,
            sshd=SSHD,
            config=vm.dir / "sshd_config",
        )
    )
    target = static_vm(
        vm,
        remote_dir,
        start=f"sh {start}",  # a string, split like a shell would
        stop=["sh", "-c", STOP.format(log=log, pidfile=pidfile)],  # a list
        boot_timeout_s=30,
    )
    assert not listening(vm)
    done, run_dir = run(tmp_path, [target], reps=2)
    assert done.returncode == 0, done.stderr
    # the fingerprint boots the VM once, then each repetition boots it; each is stopped again,
    # and every start found the VM down
    assert lines(log) == ["start", "stop"] * 3
    df = load(run_dir)
    provision = df[df.metric == "startup.provision_s"].set_index("repetition")["value"]
    assert sorted(provision.index) == [0, 1]
    assert (provision >= 1.0).all(), provision  # the start command's "boot" is in provision
    entry = load_manifest(run_dir)["targets"]["vm"]
    assert entry["artefacts"]["boot"].startswith("measured")
    assert entry["fingerprint"]["vm"] == {"provisioner": "static", "boot_measured": True}
    assert "cleanup_errors" not in load_manifest(run_dir)
    assert not listening(vm) and not pidfile.exists()
    assert list(remote_dir.iterdir()) == []


def test_a_vm_that_is_down_fails_its_cells_and_the_run_goes_on(tmp_path, remote_dir) -> None:
    down = SshServer(tmp_path / "down").setup()  # configured, never started
    targets = [{"name": "bare", "kind": "local"}, static_vm(down, remote_dir, name="down")]
    done, run_dir = run(tmp_path, targets)
    assert done.returncode == 1, done.stderr  # cells failed: not a crash, not a bad input
    cells = load_cells(run_dir).set_index("target")
    assert cells.loc["bare", "status"] == "ok"
    assert cells.loc["down", "status"] == "failed"
    error = cells.loc["down", "error"]
    assert "\n" not in error
    assert error.startswith("target 'down'") and "connection refused" in error
    assert set(load(run_dir)["target"]) == {"bare"}
    manifest = load_manifest(run_dir)
    assert manifest["status"] == "failed"
    assert "connection refused" in manifest["targets"]["down"]["fingerprint_error"]


def test_failed_start_boot_timeout_and_bad_key_still_stop_the_vm(
    server, tmp_path, remote_dir
) -> None:
    logs = {name: tmp_path / f"{name}.log" for name in ("nostart", "noboot", "badkey")}
    stop = {name: ["sh", "-c", f"echo stop >> {log}"] for name, log in logs.items()}
    never = SshServer(tmp_path / "never").setup()  # nothing ever listens on its port
    targets = [
        static_vm(never, remote_dir, name="nostart", start="false", stop=stop["nostart"]),
        static_vm(
            never,
            remote_dir,
            name="noboot",
            start=["sh", "-c", f"echo start >> {logs['noboot']}"],
            stop=stop["noboot"],
            boot_timeout_s=2,
        ),
        static_vm(  # the guest answers, but with a key that is not authorised
            server,
            remote_dir,
            name="badkey",
            start="true",
            stop=stop["badkey"],
            key=str(keygen(tmp_path / "other_key")),
        ),
    ]
    done, run_dir = run(tmp_path, targets)
    assert done.returncode == 1, done.stderr
    cells = load_cells(run_dir).set_index("target")
    assert (cells["status"] == "failed").all()
    errors = cells["error"].to_dict()
    assert errors["nostart"].startswith("target 'nostart'")
    assert "start command failed with status 1" in errors["nostart"]
    assert errors["noboot"].startswith("target 'noboot'")
    assert "boot timeout" in errors["noboot"] and "within 2 s" in errors["noboot"]
    assert "connection refused" in errors["noboot"]
    assert errors["badkey"].startswith("target 'badkey'")
    assert "authentication failed" in errors["badkey"]
    # the fingerprint and the cell each tried to boot, and each stopped the VM again
    assert lines(logs["nostart"]) == ["stop"] * 2
    assert lines(logs["noboot"]) == ["start", "stop"] * 2
    assert lines(logs["badkey"]) == ["stop"] * 2
    assert list(remote_dir.iterdir()) == []


STATIC = """\
name: s
targets:
  - name: v
    kind: vm
    provisioner: static
    host: h
workloads: [{name: t, kind: train_step}]
"""


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        (
            "provisioner: static",
            "provisioner: bogus",
            ":5: targets[0].provisioner: unknown provisioner 'bogus' (available: 'qemu', 'static')",
        ),
        ("host: h", "host: h\n    bogus_key: 1", ":7: targets[0].bogus_key: unknown key"),
        ("host: h", "host: h\n    vcpus: 2", ":7: targets[0].vcpus: unknown key"),  # QEMU's
        ("host: h", "port: 22", ":3: targets[0].host: required key is missing"),
        ("host: h", "host: h\n    start: ''", ":7: targets[0].start: an empty command"),
        (
            "host: h",
            "host: h\n    start: virsh start v",
            ":3: targets[0]: start and stop go together: give both commands or neither",
        ),
    ],
)
def test_static_vm_suite_errors_are_located(write_suite, replace, by, expected) -> None:
    assert replace in STATIC
    path = write_suite(STATIC.replace(replace, by))
    done = bench_cli("validate", str(path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {path}{expected}"]


def test_start_and_stop_are_words() -> None:
    text = STATIC.replace("host: h", "host: h\n    start: virsh start 'my vm'\n    stop: [a, b c]")
    config = parse_suite(text).targets[0]
    assert isinstance(config, StaticVmConfig)
    assert config.start == ["virsh", "start", "my vm"]
    assert config.stop == ["a", "b c"]
    assert parse_suite(STATIC).targets[0].start is None


def test_a_vm_without_provisioner_is_qemu() -> None:
    text = textwrap.dedent("""\
        name: s
        targets:
          - {name: q, kind: vm, vcpus: 1}
          - {name: m, kind: vm,
             memory: 100m}
        workloads: [{name: t, kind: train_step}]
    """)
    with pytest.raises(SuiteError) as info:
        parse_suite(text, source="s.yaml")
    # a QEMU guest's own check, at the target and not at the "qemu" tag pydantic inserts
    assert info.value.one_line() == "s.yaml:4: targets[1]: memory: a guest needs at least 256m"
    config = parse_suite(text.replace("100m", "512m")).targets[0]
    assert isinstance(config, QemuVmConfig)
    assert config.provisioner == "qemu" and config.vcpus == 1


def test_cache_drop_runs_over_ssh_or_says_why(server, remote_dir) -> None:
    running = make_target(StaticVmConfig(**static_vm(server, remote_dir)))
    reason = running.drop_caches()  # the remote command through the real sshd
    if os.geteuid() == 0:
        assert reason is None
    else:
        assert reason is not None and "needs root or passwordless sudo" in reason
    cycled = static_vm(server, remote_dir, start=["true"], stop=["true"])
    assert make_target(StaticVmConfig(**cycled)).drop_caches() == (
        "the VM is started for each repetition and its host is out of reach: "
        "drop the host's page cache in the start command"
    )
