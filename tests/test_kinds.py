"""The target-kind plug-in: what a kind declares, how stored artefacts read through it, what
validating a suite imports, and which kind cleans what in ``bench gc``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker.errors
import docker.utils
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import gc
from bench.targets import registry
from bench.targets.kind import load
from bench.targets.sizes import NOTATION, parse_bytes
from tests.import_graph import build_graph

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "runs"
SDKS = ("docker", "paramiko", "cryptography")

ALL_KINDS = """
name: every-kind
targets:
  - {name: bare, kind: local, baseline: true}
  - {name: box, kind: ssh, host: gpu-box.example.com, key: ~/.ssh/id_ed25519}
  - {name: ctr, kind: docker, image: "bench:1", memory: 1g, tls: {verify: true}}
  - {name: vm, kind: vm, vcpus: 2, memory: 2g}
  - {name: old-vm, kind: vm, provisioner: static, host: 10.0.0.9}
workloads:
  - {name: t, kind: train_step}
"""

# kind, artefacts -> runtime row, `bench build` line, identity (as the report, the build
# command and the run history read them before kinds owned this).
READINGS = [
    (
        "docker",
        {"image": "bench:1", "engine": "tcp://h:2376"},
        "docker bench:1 on tcp://h:2376",
        "python None",
        {"image": "bench:1"},
    ),
    (
        "docker",
        {"image": {"ref": "busybox", "id": "sha256:0123456789abcdef0123"}},
        "docker ? on ?",
        "image busybox (sha256:0123456789ab)",
        {"image": "sha256:0123456789abcdef0123"},
    ),
    ("docker", {}, "docker ? on ?", "python None", {}),
    (
        "vm",
        {"python": "/usr/bin/python3", "provisioner": "static", "boot": "x"},
        "vm (static)",
        "python /usr/bin/python3",
        {},
    ),
    ("vm", {"guest": "k1", "qemu": ""}, "vm (qemu)", "python None", {"guest": "k1"}),
    ("ssh", {"python": "python3"}, "python3", "python python3", {}),
    ("local", {}, "local", "python None", {}),
    (
        "podman",  # a kind of a newer bench: every known kind's rules apply
        {"image": {"id": "sha256:1", "tag": "t"}, "guest": {"key": "g"}, "qemu": "q", "python": 1},
        "1",
        "image t (sha256:1)",
        {"image": "sha256:1", "guest": "g", "qemu": "q"},
    ),
    ("", {}, "", "python None", {}),
]

# The stored fixtures: target -> runtime, build line, identity, accel, accel label.
FIXTURE_READINGS = {
    "ctr": (
        "docker bench-workloads:5e6954b75d87679c on unix:///var/run/docker.sock",
        "image bench-workloads:5e6954b75d87679c (sha256:72cd0e4ced8b)",
        {"image": "sha256:72cd0e4ced8bb65782afc7904acab8890e77aace72d8c794db46b4f0e701aa7b"},
        None,
        None,
    ),
    "vm": (
        "vm (qemu)",
        "guest disk /root/.cache/bench/guest/ba1716c9aedefcbf (kernel 6.1.0-50-amd64, TCG "
        "(software emulation))",
        {
            "guest": "ba1716c9aedefcbf",
            "qemu": "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)",
        },
        "tcg",
        "TCG (software emulation)",
    ),
    "bare": (
        "/root/.cache/bench/venv/e4b18c073ac819a1/bin/python",
        "python /root/.cache/bench/venv/e4b18c073ac819a1/bin/python",
        {},
        None,
        None,
    ),
}


LOAD_SUITE = "import bench.suite; bench.suite.load_suite(PATH)"
VALIDATE = (
    "from bench.cli import entry; sys.argv = ['bench', 'validate', PATH]\n"
    "try:\n    entry()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code"
)


@pytest.mark.parametrize("validate", [LOAD_SUITE, VALIDATE], ids=["load_suite", "bench-validate"])
def test_validating_a_suite_imports_no_sdk(tmp_path: Path, validate: str) -> None:
    """A suite with every kind validates with config models only: the Docker SDK, paramiko
    and cryptography (hundreds of milliseconds of imports) are not loaded."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(ALL_KINDS)
    code = (
        "import json, sys\n"
        + validate.replace("PATH", repr(str(suite)))
        + (f"\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {SDKS!r})))")
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


@pytest.mark.parametrize(("name", "artefacts", "runtime", "built", "identity"), READINGS)
def test_kinds_read_artefacts(name, artefacts, runtime, built, identity) -> None:
    kind = registry.kind(name)
    assert kind.runtime(artefacts) == runtime
    assert kind.built(artefacts) == built
    assert kind.identity(artefacts) == identity


def test_the_stored_fixture_runs_read_as_before() -> None:
    manifest = json.loads(next(FIXTURES.glob("multi-fixture/*/manifest.json")).read_text())
    for target, expected in FIXTURE_READINGS.items():
        entry = manifest["targets"][target]
        kind, artefacts = registry.kind(entry["kind"]), entry["artefacts"]
        readings = (
            kind.runtime(artefacts),
            kind.built(artefacts),
            kind.identity(artefacts),
            kind.accel(artefacts),
            kind.accel_label(artefacts),
        )
        assert readings == expected, target
    rows = {
        t: registry.kind(e["kind"]).accel_row(e["artefacts"])
        for t, e in manifest["targets"].items()
    }
    assert rows == {"bare": "native", "ctr": "native", "vm": "TCG (software emulation)"}
    assert registry.kind("vm").accel_row({"provisioner": "static"}) == ""


def test_every_kind_declares_loadable_parts() -> None:
    """Each config model names an implementation of that kind; each collector loads; the
    validation model accepts what the suite schema gives it."""
    assert registry.kinds() == ["local", "ssh", "docker", "vm", "slurm"]
    for kind in registry.describe():
        assert kind.models and kind.config is not None
        for model, path in kind.targets.items():
            assert load(path).kind == kind.name, path
            assert model.model_fields["kind"].annotation.__args__ == (kind.name,)
        if kind.collector:
            collector = kind.leftovers()
            assert collector.headings and collector.records


def test_gc_collectors_keep_the_teardown_and_output_order() -> None:
    """Workers before their directories, directories before the machines holding them,
    engines last; gc prints its counts in this order."""
    collectors = gc._collectors()
    headings = [h for c in collectors for h in c.headings]
    assert headings == [
        "local worker(s)",
        "Slurm job(s)",
        "remote run dir(s)",
        "static VM(s)",
        "VM guest(s)",
        "container(s)",
    ]
    records = [r for c in collectors for r in c.records]
    assert records == ["local_tmp", "slurm_cluster", "remote_dir", "static_vm", "docker_engine"]


def test_build_never_imports_targets() -> None:
    """Targets use what build makes; build uses only neutral modules (workerpack,
    dockerengine), so the two packages never import each other in a cycle."""
    _, edges = build_graph(REPO)
    bad = [
        str(e)
        for e in edges
        if e.importer.startswith("bench.build") and e.target.startswith("bench.targets")
    ]
    assert not bad


def _read(parse: Callable[[str], int], text: str) -> int | str:
    try:
        return parse(text)
    except (ValueError, docker.errors.DockerException):
        return "refused"


@settings(max_examples=300, deadline=None)
@given(st.from_regex(NOTATION, fullmatch=True))
def test_sizes_read_as_dockers_parser_reads_them(text: str) -> None:
    """Sizes are parsed without the Docker SDK, to the byte as docker-py parses them (and
    refused where it refuses them)."""
    assert _read(parse_bytes, text.strip()) == _read(docker.utils.parse_bytes, text.strip())
