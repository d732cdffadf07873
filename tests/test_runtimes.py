"""OCI runtimes under the real Docker engine: runc, crun and gVisor's runsc each run a cell and
leave nothing behind; the fingerprint, the report and compare name the runtime; a CPU quota's
throttling is measured; and the setup's registration merges into ``daemon.json`` without
touching what the user configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pandas as pd
import pytest

from bench import cpushare
from bench.compare.facts import fingerprint_differences
from bench.results import load, load_manifest
from bench.results.model import as_manifest
from bench.targets import dockerruntime
from tests.conftest import REPO, bench_cli
from tests.docker_engine import ensure_engine, labelled
from tests.test_run_e2e import run_dir_of

SCRIPT = REPO / "scripts" / "oci-runtimes"
RUNTIMES = ("runc", "crun", "runsc")
# About half a second of one CPU in a shell loop: enough for a 0.2-CPU quota to bite.
BUSY = (
    "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; "
    """echo '{"bench_metric": "n", "value": 1}'"""
)


def _script(daemon_json: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(SCRIPT), "--daemon-json", str(daemon_json), "--no-reload", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_registration_merges_and_keeps_what_the_user_set(tmp_path: Path) -> None:
    """The user's keys and own runtime entries stay; a second run changes nothing."""
    path = tmp_path / "daemon.json"
    mine = {"path": "/opt/my/runsc", "runtimeArgs": ["--platform=kvm"]}
    path.write_text(json.dumps({"log-level": "warn", "runtimes": {"runsc": mine}}))
    done = _script(path)
    assert done.returncode == 0, done.stderr
    config = json.loads(path.read_text())
    assert config["log-level"] == "warn"
    assert config["runtimes"]["runsc"] == mine
    assert "kept" in done.stderr or "left as it is" in done.stderr
    if os.path.exists("/usr/bin/crun"):
        assert config["runtimes"]["crun"] == {"path": "/usr/bin/crun"}
        assert "adding runtime(s) crun" in done.stderr
    before = path.stat().st_mtime_ns
    again = _script(path)
    assert again.returncode == 0 and "nothing changed" in again.stderr
    assert path.stat().st_mtime_ns == before


def test_registration_refuses_a_broken_daemon_json(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"runtimes": {\n  "crun": }\n')
    done = _script(path)
    assert done.returncode == 2
    assert f"{path}:2: not valid JSON" in done.stderr
    assert path.read_text() == '{"runtimes": {\n  "crun": }\n'


def test_runtime_facts_name_gvisor_platform_and_podman() -> None:
    info = {
        "DefaultRuntime": "runc",
        "Runtimes": {
            "runc": {"path": "runc"},
            "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--platform=ptrace"]},
            "kata": {"path": "/usr/bin/kata-runtime"},
        },
    }
    version = {"Version": "20.10", "Components": [{"Name": "runc", "Version": "1.1.5"}]}
    runc = dockerruntime.runtime_facts(info, version, None, local=False)
    assert (runc.name, runc.version, runc.label) == ("runc", "1.1.5", "runc")
    runsc = dockerruntime.runtime_facts(info, version, "runsc", local=False)
    assert runsc.label == "runsc/ptrace" and runsc.version is None  # remote: not asked
    kata = dockerruntime.runtime_facts(info, version, "kata", local=False)
    assert kata.label == "kata" and kata.platform is None
    podman = {"Version": "4.3.1", "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}]}
    assert dockerruntime.engine_record(podman) == {"name": "Podman Engine", "version": "4.3.1"}
    assert dockerruntime.engine_name({"Components": [{"Name": "Engine"}]}) == "Docker Engine"


def _manifest(runtime: str, cores: int = 2, nano_cpus: int | None = None) -> dict:
    fp = {
        "cores": {"logical": cores, "usable": cores},
        "limits": {"nano_cpus": nano_cpus},
        "container": {
            "engine": {"name": "Docker Engine", "version": "20.10"},
            "runtime": {"name": runtime, "version": "1", "platform": None, "path": "/x"},
        },
    }
    return {"targets": {"ctr": {"kind": "docker", "fingerprint": fp}}}


def test_compare_refuses_runs_under_different_runtimes() -> None:
    base, new = as_manifest(_manifest("runc")), as_manifest(_manifest("crun"))
    found = fingerprint_differences(base, new)
    assert [d.key for d in found] == ["container runtime"]
    assert "'runc'" in found[0].describe() and "'crun'" in found[0].describe()
    assert not fingerprint_differences(base, as_manifest(_manifest("runc")))


def test_a_target_starved_of_the_cpus_it_was_given_is_flagged() -> None:
    """ctr used one of its two CPUs while bare used both: the summary says so, with the
    throttled time; a target given one CPU that used it is not flagged."""
    manifest = {
        "targets": {
            "bare": {"kind": "local", "fingerprint": {"cores": {"usable": 2}}},
            "ctr": _manifest("runc", 2, 2_000_000_000)["targets"]["ctr"],
            "one": _manifest("runc", 2, 1_000_000_000)["targets"]["ctr"],
        }
    }
    rows = [
        ("bare", "cpu.util_pct", 199.0),
        ("ctr", "cpu.util_pct", 106.0),
        ("ctr", "cpu.throttled_s", 3.5),
        ("one", "cpu.util_pct", 99.0),
    ]
    samples = pd.DataFrame(
        [{"workload": "train", "target": t, "metric": m, "value": v} for t, m, v in rows]
    )
    found = cpushare.warnings(samples, manifest)
    assert len(found) == 1, found
    assert found[0].startswith("train on ctr: used 1.06 of the 2 CPUs")
    assert "bare used 1.99 of 2" in found[0] and "3.50 s" in found[0]
    single = samples[samples["target"] != "bare"]
    assert cpushare.warnings(single.assign(value=[100.0, 3.5, 99.0]), manifest) == []


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient:
    """The local engine, with crun and runsc registered (as the setup does)."""
    client = ensure_engine()
    if not set(RUNTIMES) <= set(client.info().get("Runtimes") or {}):
        done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    missing = set(RUNTIMES) - set(client.info().get("Runtimes") or {})
    assert not missing, f"runtimes {missing} are not registered: run ./bootstrap.sh setup"
    return client


@pytest.fixture(scope="module")
def runtime_run(engine, tmp_path_factory) -> Path:
    """One run: the container target swept over the three runtimes, and a runc container
    held to a fifth of a CPU, beside bare metal."""
    root = tmp_path_factory.mktemp("runtimes")
    suite = root / "suite.yaml"
    suite.write_text(
        f"name: rt{uuid.uuid4().hex[:6]}\nrepetitions: 1\ntargets:\n"
        "  - {name: bare, kind: local, baseline: true}\n"
        "  - {name: ctr, kind: docker, build: true, network: none,\n"
        "     matrix: {runtime: [runc, crun, runsc]}}\n"
        "  - {name: slow, kind: docker, build: true, network: none, cpus: 0.2}\n"
        "workloads:\n"
        f"  - {{name: busy, kind: command, argv: [sh, -c, {json.dumps(BUSY)}]}}\n"
    )
    done = bench_cli("run", str(suite), "--results-dir", str(root / "r"), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return run_dir_of(done)


@pytest.mark.slow
def test_each_runtime_runs_a_cell_and_is_named(engine, runtime_run: Path) -> None:
    manifest = load_manifest(runtime_run)
    assert not labelled(engine, manifest["run_id"])
    samples = load(runtime_run)
    for runtime in RUNTIMES:
        target = f"ctr[runtime={runtime}]"
        mine = samples[samples["target"] == target].set_index("metric")["value"]
        assert mine["user.n"] == 1 and mine["command.wall_s"] > 0
        assert mine["mem.host_bytes"] > 0 and mine["mem.overhead_bytes"] > 0
        fact = manifest["targets"][target]["fingerprint"]["container"]
        assert fact["engine"]["name"] == "Docker Engine" and fact["engine"]["version"]
        assert fact["runtime"]["name"] == runtime and fact["runtime"]["version"]
    gvisor = manifest["targets"]["ctr[runtime=runsc]"]["fingerprint"]["container"]["runtime"]
    assert gvisor["platform"] in ("systrap", "ptrace", "kvm")
    report = (runtime_run / "report.md").read_text()
    assert f"ctr[runtime=runsc] [runsc/{gvisor['platform']}]" in report
    assert "ctr[runtime=crun] [crun]" in report
    # gVisor hides the CPU model; the engine's host (this machine) fills it in, and says so.
    assert "different hardware" not in report
    hidden = manifest["targets"]["ctr[runtime=runsc]"]["fingerprint"]["from_engine_host"]
    assert "cpu_model" in hidden


@pytest.mark.slow
def test_gvisor_sandbox_memory_is_the_deployments(runtime_run: Path) -> None:
    """The sentry and the gofer live in the container's cgroup and belong to its overhead:
    gVisor's overhead exceeds runc's by at least their resident memory."""
    samples = load(runtime_run).set_index(["target", "metric"])["value"]
    runc = samples[("ctr[runtime=runc]", "mem.overhead_bytes")]
    runsc = samples[("ctr[runtime=runsc]", "mem.overhead_bytes")]
    assert runsc > runc + 10 * 2**20, (runc, runsc)


@pytest.mark.slow
def test_a_cpu_quota_that_bites_is_measured(runtime_run: Path) -> None:
    samples = load(runtime_run).set_index(["target", "metric"])["value"]
    assert samples[("slow", "cpu.throttled_s")] > 0.05
    assert samples[("ctr[runtime=runc]", "cpu.throttled_s")] == 0  # no quota: never held back
