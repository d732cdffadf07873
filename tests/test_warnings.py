"""Settings that expose a host (``network: host``, volumes of system paths or the Docker
socket, a ``tcp://`` engine without TLS) are said loudly: by ``bench validate``, in the run
header, in the manifest and in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.results import load_manifest
from bench.suite import parse_suite
from tests.conftest import bench_cli
from tests.test_run_e2e import run_dir_of

SUITE = """\
name: exposed
repetitions: 1
targets:
  - name: ctr
    kind: docker
    image: bench-workloads:none
    pull: never
    network: host
    docker_host: tcp://127.0.0.1:2375
    volumes:
      - /:/host:ro
      - /var/run/docker.sock:/var/run/docker.sock
      - /etc/ssl:/certs:ro
      - cache:/cache
      - /srv/data:/data
workloads:
  - {name: train, kind: train_step, batch_size: 8, steps: 2, warmup_steps: 1}
"""

EXPECTED = [
    "target 'ctr': network: host",
    "target 'ctr': volume /:/host:ro: mounts the host's whole filesystem",
    "target 'ctr': volume /var/run/docker.sock:/var/run/docker.sock: mounts a daemon's "
    "control socket",
    "target 'ctr': volume /etc/ssl:/certs:ro: mounts the host's /etc",
    "target 'ctr': Docker engine tcp://127.0.0.1:2375 without TLS",
]


def found(lines: list[str]) -> list[str]:
    """Which expected warnings appear, each in exactly one of ``lines``."""
    return [e for e in EXPECTED if sum(e in line for line in lines) == 1]


def test_validate_warns_about_each_exposing_setting(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    done = bench_cli("validate", str(suite))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert found(warnings) == EXPECTED, done.stderr
    assert len(warnings) == len(EXPECTED)  # the named volume and /srv/data are fine


@pytest.mark.slow
def test_run_header_manifest_and_report_carry_the_warnings(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"))
    assert done.returncode == 1, done.stderr  # nothing listens on 2375: the cell fails
    header = done.stderr.splitlines()[: len(EXPECTED)]
    assert found(header) == EXPECTED, done.stderr  # before anything else the run prints
    run_dir = run_dir_of(done)
    recorded = load_manifest(run_dir)["security_warnings"]
    assert found(recorded) == EXPECTED
    report = (run_dir / "report.md").read_text().splitlines()
    assert found([line for line in report if line.startswith("- ⚠ security: ")]) == EXPECTED
    html = (run_dir / "report.html").read_text()
    assert all(json.dumps(e)[1:-1].replace("'", "&#39;") in html for e in EXPECTED)


@pytest.mark.parametrize(
    ("engine", "warned"),
    [
        ("docker_host: tcp://10.0.0.5:2376", True),
        ("docker_host: tcp://10.0.0.5:2376\n    tls: {ca: ca.pem, verify: false}", True),
        ("docker_host: tcp://10.0.0.5:2376\n    tls: {ca: ca.pem}", False),
        ("docker_host: ssh://bench@10.0.0.5", False),
        ("docker_host: unix:///var/run/docker.sock", False),
    ],
)
def test_engine_without_tls_is_warned(engine: str, warned: bool) -> None:
    from bench import exposure

    suite = parse_suite(
        f"name: e\ntargets:\n  - name: c\n    kind: docker\n    image: x\n    {engine}\n"
        "workloads: [{name: t, kind: train_step}]\n"
    )
    assert bool(exposure.warnings(suite)) is warned


def test_docker_host_from_the_environment_is_checked_too(monkeypatch) -> None:
    from bench import exposure

    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    suite = parse_suite(
        "name: e\ntargets: [{name: c, kind: docker, image: x}]\n"
        "workloads: [{name: t, kind: train_step}]\n"
    )
    assert exposure.warnings(suite) == [
        "target 'c': Docker engine tcp://127.0.0.1:2375 without TLS: anyone who can reach that "
        "port controls the engine, which is root on its host (set tls: with ca, cert and key, "
        "or use ssh://)"
    ]


@pytest.mark.parametrize(
    ("source", "exposed"),
    [
        ("/", "the host's whole filesystem"),
        ("//", "the host's whole filesystem"),
        ("/run/containerd/containerd.sock", "a daemon's control socket"),
        ("/proc", "the host's /proc"),
        ("/sys/fs/cgroup", "the host's /sys"),
        ("/dev/", "the host's /dev"),
        ("/home/u/../../etc/shadow", "the host's /etc"),
        ("/var", "the host's /var/lib/docker (inside /var)"),
        ("/srv/data", None),
        ("/var/cache/bench", None),
        ("named-volume", None),
    ],
)
def test_which_volumes_expose_the_host(source: str, exposed: str | None) -> None:
    from bench.targets.dockerexposure import mounted

    got = mounted(source)
    assert (got or "").startswith(exposed) if exposed else got is None, got
