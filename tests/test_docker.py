"""``kind: docker`` against the real engine: the matched image built offline, limits read
back, failures that say what happened, and no container left behind whatever happens."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import suppress
from pathlib import Path

import docker
import pytest

from bench.results import load, load_cells, load_manifest, load_raw
from bench.suite import parse_suite
from bench.targets.registry import make_target
from tests.conftest import REPO, bench_cli
from tests.docker_engine import ensure_engine, labelled
from tests.test_run_e2e import COMMON, EXPECTED, run_dir_of

pytestmark = pytest.mark.slow

BUILT = "{name: ctr, kind: docker, build: true}"
WORKLOADS = """\
workloads:
  - {name: train, kind: train_step, model: mlp, batch_size: 8, steps: 3, warmup_steps: 1}
  - {name: infer, kind: inference, model: cnn, min_query_count: 5, warmup_queries: 1}
  - {name: load, kind: data_loading, samples: 48, sample_bytes: 2048, batch_size: 16,
     num_workers: 1, warmup_batches: 1}
"""
# A command cell, for the tests whose subject is the container rather than the workload: no
# torch start-up in the worker.
COMMAND = 'workloads:\n  - {name: cmd, kind: command, argv: [sleep, "0.05"]}'

DOCKER_ONLY = {"startup.create_s", "startup.start_s", "mem.overhead_bytes", "cpu.throttled_s"}


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return ensure_engine()


@pytest.fixture(scope="module")
def matched(client, tmp_path_factory) -> str:
    """The matched image's tag, built (or found in the cache) by ``bench build``."""
    suite = tmp_path_factory.mktemp("build") / "suite.yaml"
    suite.write_text(f"name: b\ntargets:\n  - {BUILT}\n{WORKLOADS}")
    done = bench_cli("build", str(suite), timeout=1800)
    assert done.returncode == 0, done.stderr
    tag = done.stdout.split("image ", 1)[1].split()[0]
    client.images.get(tag)
    return tag


def _run(write_suite, tmp_path: Path, targets: str, workloads: str = WORKLOADS, reps: int = 1):
    name = f"d{uuid.uuid4().hex[:6]}"
    suite = write_suite(f"name: {name}\nrepetitions: {reps}\ntargets:\n{targets}\n{workloads}")
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"), timeout=1200)
    return done, run_dir_of(done) if done.stdout.strip() else None


def test_build_is_reused_and_recorded(matched, write_suite) -> None:
    suite = write_suite(f"name: again\ntargets:\n  - {BUILT}\n{WORKLOADS}")
    done = bench_cli("build", str(suite))
    assert done.returncode == 0, done.stderr
    assert matched in done.stdout
    assert "building" not in done.stderr and "debootstrap" not in done.stderr


def test_local_and_container_report_the_same_metrics(
    matched, client, write_suite, tmp_path: Path
) -> None:
    targets = f"  - {{name: bare, kind: local, baseline: true, build: true}}\n  - {BUILT}"
    done, run_dir = _run(write_suite, tmp_path, targets)
    assert done.returncode == 0, done.stderr
    samples = load(run_dir)
    for workload, metrics in EXPECTED.items():
        rows = samples[samples.workload == workload]
        bare = set(rows[rows.target == "bare"].metric)
        ctr = set(rows[rows.target == "ctr"].metric)
        assert bare >= COMMON | metrics
        assert ctr == bare | DOCKER_ONLY, ctr ^ bare
    manifest = load_manifest(run_dir)
    wheels = manifest["build"]["wheelhouse"]["files"]
    assert any(name.startswith("torch-2.13.0") for name in wheels)
    assert all(len(digest) == 64 for digest in wheels.values())
    ctr = manifest["targets"]["ctr"]
    assert ctr["artefacts"]["image"]["tag"] == matched
    assert ctr["fingerprint"]["image_id"] == ctr["artefacts"]["image"]["id"]
    venv_python = manifest["targets"]["bare"]["artefacts"]["python"]
    assert venv_python.startswith(str(Path.home() / ".cache" / "bench")) or os.environ.get(
        "BENCH_CACHE_DIR"
    )
    assert ctr["fingerprint"]["torch"] == manifest["targets"]["bare"]["fingerprint"]["torch"]
    cells = load_cells(run_dir).query("target == 'ctr'")
    pull_reasons = {json.dumps(a.get("startup.pull_s")) for a in cells["absent"]}
    assert all("built" in reason for reason in pull_reasons)
    overhead = samples.query("target == 'ctr' and metric == 'mem.overhead_bytes'").value
    assert (overhead > 1e6).all() and (overhead < 200e6).all()  # the shim and kernel memory
    host = samples.query("target == 'ctr' and metric == 'mem.host_bytes'")
    raw = load_raw(run_dir)
    for cell, peak in zip(host["cell"], host["value"], strict=True):
        (entry,) = [r for r in raw.values() if r["cell"].startswith(f"{cell:04d}-")]
        line = entry["host_timelines"]["mem.host_bytes"]
        assert max(line["value"]) == peak  # the peak is one of the timeline's readings
    assert not labelled(client, manifest["run_id"])


def test_cache_drop_reaches_the_engine_host_or_says_why() -> None:
    local = make_target(parse_suite(f"name: c\ntargets: [{BUILT}]\n{WORKLOADS}").targets[0])
    expected = None if os.geteuid() == 0 else "needs root"
    reason = local.drop_caches()
    assert reason is expected or expected in reason
    remote = "{name: far, kind: docker, image: x, docker_host: 'tcp://203.0.113.7:2375'}"
    far = make_target(parse_suite(f"name: c\ntargets: [{remote}]\n{WORKLOADS}").targets[0])
    assert far.drop_caches() == (
        "the Docker engine at tcp://203.0.113.7:2375 is remote: its host's page cache is out "
        "of reach"
    )


def test_limits_are_applied_and_read_back(matched, client, write_suite, tmp_path: Path) -> None:
    targets = "  - {name: ctr, kind: docker, build: true, cpus: 1.5, cpuset: '0', memory: 2000m}"
    done, run_dir = _run(write_suite, tmp_path, targets, COMMAND)
    assert done.returncode == 0, done.stderr
    fingerprint = load_manifest(run_dir)["targets"]["ctr"]["fingerprint"]
    assert fingerprint["limits"]["nano_cpus"] == 1_500_000_000
    assert fingerprint["limits"]["memory_bytes"] == 2000 * 2**20
    assert fingerprint["limits"]["cpuset_cpus"] == "0"
    inside = fingerprint["cgroup_limits"]  # what the worker itself sees
    assert inside == {"cpus": 1.5, "memory_bytes": 2000 * 2**20}
    assert fingerprint["cores"]["usable"] == 1


def test_out_of_memory_is_reported_with_the_limit(matched, client, write_suite, tmp_path) -> None:
    """A process the kernel kills at the container's limit is named as out of memory, even when
    it is the worker's child and the container lives on (the engine's OOMKilled flag stays
    false then; the cgroup's oom_kill count does not). Anonymous memory makes the kill certain
    and immediate: a limit below torch's libraries would make the kernel evict and re-read them
    for minutes first, depending on which cgroup the page cache was charged to."""
    targets = "  - {name: ctr, kind: docker, build: true, memory: 120m}"
    workloads = (
        "workloads:\n  - {name: hog, kind: command, argv: [python3, -c, 'b = bytearray(1 << 30)']}"
    )
    done, run_dir = _run(write_suite, tmp_path, targets, workloads)
    assert done.returncode == 1
    error = load_cells(run_dir).iloc[0]["error"]
    assert "out of memory" in error and "120 MiB" in error, error
    assert "killed by signal 9" in error, error
    assert not labelled(client, load_manifest(run_dir)["run_id"])


def test_user_image_gets_the_worker_copied_in(matched, client, write_suite, tmp_path) -> None:
    """An image given by name (not built) receives the workloads package with put_archive."""
    targets = (
        f"  - {{name: ctr, kind: docker, image: '{matched}', pull: never, network: none,"
        " python: /opt/bench/venv/bin/python}"
    )
    done, run_dir = _run(write_suite, tmp_path, targets, COMMAND)
    assert done.returncode == 0, done.stderr
    cell = load_cells(run_dir).iloc[0]
    assert "warm" in cell["absent"]["startup.pull_s"]
    assert load_manifest(run_dir)["targets"]["ctr"]["fingerprint"]["limits"]["network"] == "none"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            "{name: ctr, kind: docker, build: true, docker_host: 'unix:///nonexistent/docker.sock'}",
            "cannot reach the Docker engine at unix:///nonexistent/docker.sock",
        ),
        (
            "{name: ctr, kind: docker, image: 'bench-no-such-image:1', pull: never}",
            "image 'bench-no-such-image:1' is not present",
        ),
        (
            "{name: ctr, kind: docker, image: 'bench-no-such-image:1'}",
            "is missing and cannot be pulled",
        ),
        ("{name: ctr, kind: docker, build: true, gpus: all}", "GPU requested (gpus: all)"),
        ("{name: ctr, kind: docker, build: true, runtime: nosuch}", "runtime 'nosuch' is not"),
    ],
    ids=["engine-down", "image-missing", "pull-fails", "no-gpu-runtime", "unknown-runtime"],
)
def test_failures_are_one_clear_line(matched, write_suite, tmp_path, target, expected) -> None:
    done, run_dir = _run(write_suite, tmp_path, f"  - {target}", COMMAND)
    assert done.returncode == 1, done.stderr
    error = load_cells(run_dir).iloc[0]["error"]
    assert expected in error and "\n" not in error, error
    if "engine-down" in expected:
        assert "start the engine" in error


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{name: c, kind: docker, build: true, image: x}", "set exactly one of image"),
        ("{name: c, kind: docker}", "set exactly one of image"),
        ("{name: c, kind: docker, build: true, memory: lots}", "invalid size 'lots'"),
        ("{name: c, kind: docker, build: true, cpuset: 'a-b'}", "cpuset"),
        ("{name: c, kind: docker, build: true, volumes: ['data']}", "volumes[0]"),
    ],
)
def test_bad_docker_keys_exit_2(write_suite, target: str, message: str) -> None:
    suite = write_suite(f"name: bad\ntargets:\n  - {target}\n{WORKLOADS}")
    done = bench_cli("validate", str(suite))
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "suite.yaml:3" in done.stderr


def test_ctrl_c_leaves_no_container(matched, client, write_suite, tmp_path: Path) -> None:
    suite = write_suite(f"""
        name: slowc
        repetitions: 5
        targets: [{BUILT}]
        workloads:
          - {{name: long, kind: command, argv: [sleep, "300"]}}
    """)
    run_id = f"c{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", str(suite), "--results-dir",
         str(tmp_path / "r"), "--run-id", run_id],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    end = time.monotonic() + 300
    while not _running(client, run_id):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end
        time.sleep(0.1)
    time.sleep(1.0)  # the worker is past start-up, waiting for its command
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert not labelled(client, run_id)
    assert load_manifest(tmp_path / "r" / "slowc" / run_id)["status"] == "interrupted"


def _running(client: docker.DockerClient, run_id: str) -> bool:
    found = client.containers.list(filters={"label": f"bench.run_id={run_id}"})
    return any(
        "workloads" in " ".join(c.attrs["Config"]["Cmd"]) and "run" in c.attrs["Config"]["Cmd"]
        for c in found
    )


def test_gc_removes_orphans_only(matched, client, tmp_path: Path) -> None:
    """Containers of a dead controller go, a live one's stay (``--all`` takes those too). The
    state directory is private: what other runs on this machine recorded is not this test's."""
    state = {"BENCH_STATE_DIR": str(tmp_path / "state")}
    run_id = f"gc{uuid.uuid4().hex[:8]}"
    sleep = ["/opt/bench/venv/bin/python", "-c", "import time; time.sleep(120)"]
    host = socket.gethostname()

    def labels(pid: int) -> dict[str, str]:
        return {"bench.run_id": run_id, "bench.target": "t", "bench.controller": f"{host}:{pid}"}

    orphan = client.containers.run(matched, sleep, detach=True, labels=labels(999_999_999))
    live = client.containers.run(matched, sleep, detach=True, labels=labels(os.getpid()))
    try:
        dry = bench_cli("gc", "--dry-run", env=state)
        assert dry.returncode == 0 and orphan.short_id in dry.stdout
        assert live.short_id not in dry.stdout
        assert set(labelled(client, run_id)) == {orphan.id, live.id}
        done = bench_cli("gc", env=state)
        assert done.returncode == 0 and orphan.short_id in done.stdout
        assert labelled(client, run_id) == [live.id]
        assert live.short_id in bench_cli("gc", "--all", env=state).stdout
        assert not labelled(client, run_id)
    finally:
        for container in (orphan, live):
            with suppress(docker.errors.NotFound):
                container.remove(force=True)


def test_wheelhouse_hashes_are_the_files(matched, write_suite, tmp_path: Path) -> None:
    """The manifest's sha256 of a wheel is the sha256 of the file every target installed."""
    import hashlib

    targets = "  - {name: bare, kind: local, build: true}"
    done, run_dir = _run(write_suite, tmp_path, targets, COMMAND)
    assert done.returncode == 0, done.stderr
    house = load_manifest(run_dir)["build"]["wheelhouse"]
    name = min(house["files"], key=lambda n: (Path(house["path"]) / n).stat().st_size)
    data = (Path(house["path"]) / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == house["files"][name]


def test_build_errors_are_one_line(write_suite, tmp_path: Path) -> None:
    pins = tmp_path / "pins.txt"
    pins.write_text("torch==0.0.1\n")
    suite = write_suite(
        f"name: pins\nbuild: {{requirements: pins.txt}}\ntargets:\n  - {BUILT}\n{WORKLOADS}"
    )
    done = bench_cli("build", str(suite))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]  # after the progress notes
    assert last.startswith("error: wheelhouse: pip download failed") and "torch" in last, last
    missing = write_suite(
        f"name: pins\nbuild: {{requirements: nope.txt}}\ntargets:\n  - {BUILT}\n{WORKLOADS}",
        name="missing.yaml",
    )
    done = bench_cli("validate", str(missing))
    assert done.returncode == 2 and "build.requirements: file not found" in done.stderr


def test_unreachable_registry_base_falls_back_to_offline(matched, write_suite) -> None:
    """No registry here: a configured registry base is tried, then the offline base is used,
    which yields the very image that was built without one (same inputs, same hash)."""
    suite = write_suite(
        f"name: reg\nbuild: {{base_image: 'python:3.11-slim'}}\ntargets:\n  - {BUILT}\n{WORKLOADS}"
    )
    done = bench_cli("build", str(suite))
    assert done.returncode == 0, done.stderr
    assert "cannot pull python:3.11-slim" in done.stderr and "offline base" in done.stderr
    assert matched in done.stdout


def test_failed_build_leaves_nothing_half_made(write_suite, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(cache))
    (tmp_path / "pins.txt").write_text("torch==0.0.1\n")
    suite = write_suite(
        f"name: pins\nbuild: {{requirements: pins.txt}}\ntargets:\n  - {BUILT}\n{WORKLOADS}"
    )
    done = bench_cli("build", str(suite))
    assert done.returncode == 1, done.stderr
    assert (cache / "wheelhouse").is_dir() and not list((cache / "wheelhouse").iterdir())
