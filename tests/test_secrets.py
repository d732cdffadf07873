"""A target's ``env``: names that cannot become code, secrets that are never written, and the
environment a worker really gets (recorded by an interpreter wrapper as the worker starts)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench.errors import SuiteError
from bench.suite import parse_suite
from bench.targets.remotecmd import execute, worker_command
from bench.targets.sshconn import Endpoint, connect
from tests.conftest import bench_cli

SLEEP = "{name: sleep, kind: command, argv: [sleep, '0.05']}"
"""A cell that imports no torch: what is checked is the environment its worker starts with."""
PRINTS = "{name: prints, kind: command, argv: [sh, -c, 'echo token: $HF_TOKEN >&2']}"
"""A command that succeeds and prints the secret to stderr, whose tail its cell keeps."""
KINDS = {
    "local": "kind: local",
    "ssh": "kind: ssh, host: example.com",
    "docker": "kind: docker, image: python:3",
    "vm": "kind: vm",
    "static vm": "kind: vm, provisioner: static, host: example.com",
}
BAD_NAMES = ['"-S touch /tmp/PWNED"', '"A=B"', '"A\\0B"', '"A B"', '"1A"', "3"]
SSHD = Path("/usr/sbin/sshd")
needs_sshd = pytest.mark.skipif(not SSHD.exists(), reason="openssh-server missing")


def suite_text(target: str, env: str) -> str:
    return (
        "name: secrets\nrepetitions: 1\ntargets:\n"
        f"  - {{name: t, {target},\n     env: {env}}}\n"
        f"workloads:\n  - {SLEEP}\n"
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", BAD_NAMES)
def test_env_names_are_posix_names_for_every_target_kind(kind: str, name: str) -> None:
    with pytest.raises(SuiteError) as caught:
        parse_suite(suite_text(KINDS[kind], f"{{OK: '1', {name}: x}}"), source="s.yaml")
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith("s.yaml:5: targets[0].env: invalid variable name")


@pytest.mark.parametrize(
    "value", ["4", "[a]", '"a\\0b"', "{from_env: 1X}", "{from_env: X, y: 1}", "{}"]
)
def test_env_values_are_strings_or_from_env(value: str) -> None:
    with pytest.raises(SuiteError, match=r"^s\.yaml:5: targets\[0\]\.env: "):
        parse_suite(suite_text("kind: local", f"{{K: {value}}}"), source="s.yaml")


def test_validate_refuses_an_option_as_a_name_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(suite_text(KINDS["ssh"], '{"-S touch /tmp/PWNED": x}'))
    done = bench_cli("validate", str(path))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert f"{path}:5: targets[0].env: invalid variable name '-S touch /tmp/PWNED'" in done.stderr


def test_a_missing_secret_stops_the_run_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(suite_text("kind: local", "{HF_TOKEN: {from_env: BENCH_TEST_UNSET}}"))
    env = {k: v for k, v in os.environ.items() if k != "BENCH_TEST_UNSET"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", str(path), "--results-dir", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "error: targets[0].env.HF_TOKEN: from_env: BENCH_TEST_UNSET is not set in bench's "
        "environment (export it before running bench)"
    )
    assert not (tmp_path / "r").exists()


def recording_python(directory: Path, then: str = "run") -> Path:
    """An interpreter that records its environment (NUL-separated) where a worker would start,
    then runs the real one (``then="run"``) or stops there (``"stop"``); or one that prints
    the secret and fails (``"leak"``)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / f"python-{uuid.uuid4().hex[:6]}"
    record = f'env -0 > "{directory}/env-$$"\n'
    body = {
        "run": f'if [ "$3" = run ]; then {record.strip()}; fi\nexec "{sys.executable}" "$@"\n',
        "stop": record + "exit 1\n",
        "leak": 'echo "token: $HF_TOKEN" >&2\nexit 3\n',
    }[then]
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


def worker_environments(directory: Path) -> list[dict[str, str]]:
    """Every recorded worker environment."""
    found = []
    for path in sorted(directory.glob("env-*")):
        pairs = [entry.split("=", 1) for entry in path.read_text().split("\0") if entry]
        found.append(dict(pairs))
    return found


def files_holding(root: Path, value: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``value``."""
    return [p for p in root.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]


@pytest.fixture(scope="module")
def night(tmp_path_factory, request):
    """One ``bench nightly`` of a local and an SSH target given a secret, plus a target whose
    worker prints the secret and fails; bench's own environment holds a webhook URL and an
    unrelated variable. The worker environments are recorded per target kind; the SSH worker
    runs on, the local one stops once recorded (a second real worker would add nothing)."""
    root = tmp_path_factory.mktemp("secrets")
    history = root / "history"
    secret = f"hf_{secrets.token_hex(16)}"
    controller = {
        "BENCH_TEST_SECRET": secret,
        "BENCH_ALERT_WEBHOOK": f"http://127.0.0.1:9/{secrets.token_hex(8)}",
        "SOME_CONTROLLER_VAR": secrets.token_hex(8),
    }
    env = {"HF_TOKEN": {"from_env": "BENCH_TEST_SECRET"}, "OMP_NUM_THREADS": "1"}
    good, leaky = recording_python(root / "local", "stop"), recording_python(root / "leaky", "leak")
    targets = [
        f"{{name: bare, kind: local, python: {good}, env: {json.dumps(env)}}}",
        f"{{name: leaky, kind: local, python: {leaky}, env: {json.dumps(env)}}}",
    ]
    if SSHD.exists():
        server = request.getfixturevalue("server")
        (root / "remote").mkdir()
        python = str(recording_python(root / "ssh"))
        targets.append(server.target_yaml(python=python, workdir=str(root / "remote"), env=env))
    suite = root / "suite.yaml"
    suite.write_text(
        "name: secrets\nrepetitions: 1\ntargets:\n"
        + "".join(f"  - {t}\n" for t in targets)
        + f"workloads:\n  - {SLEEP}\n  - {PRINTS}\n"
    )
    done = bench_cli("nightly", str(suite), "--history", str(history), env=controller)
    seen = {kind: worker_environments(root / kind) for kind in ("local", "ssh")}
    return done, history, seen, controller


@pytest.mark.slow  # one real nightly run, shared
def test_a_secret_reaches_the_worker_and_is_written_nowhere(night) -> None:
    done, history, seen, controller = night
    secret = controller["BENCH_TEST_SECRET"]
    assert done.returncode == 1, done.stderr  # the local cells failed, the SSH one did not
    assert len(seen["local"]) == 3  # the fingerprint and the workers of the two cells
    for local in seen["local"]:
        assert (local["HF_TOKEN"], local["OMP_NUM_THREADS"]) == (secret, "1")
    assert list(history.rglob("report.html")) and list(history.rglob("cells.jsonl"))
    assert list(history.rglob("*.prom")) and list(history.rglob("*.parquet"))
    assert files_holding(history, secret) == []
    assert secret not in done.stdout + done.stderr


@needs_sshd
@pytest.mark.slow  # one real nightly run, shared
def test_an_ssh_worker_gets_plain_variables_and_secrets(night) -> None:
    _, history, seen, controller = night
    assert len(seen["ssh"]) == 2  # the workers of the two cells
    for remote in seen["ssh"]:
        assert remote["HF_TOKEN"] == controller["BENCH_TEST_SECRET"]
        assert remote["OMP_NUM_THREADS"] == "1"
    cells = [
        json.loads(line) for line in next(history.rglob("cells.jsonl")).read_text().splitlines()
    ]
    remote_cells = [c for c in cells if c["target"] == "remote"]
    assert [c["status"] for c in remote_cells] == ["ok", "ok"]
    printed = next(c for c in remote_cells if c["workload"] == "prints")
    assert printed["info"]["command"]["stderr_tail"].strip() == "token: ***"


@pytest.mark.slow  # one real nightly run, shared
def test_manifest_shows_secrets_as_stars_and_plain_values_as_written(night) -> None:
    _, history, _, _ = night
    (manifest_path,) = history.rglob("manifest.json")
    manifest = json.loads(manifest_path.read_text())
    targets = {t["name"]: t for t in manifest["suite"]["targets"]}
    assert targets["bare"]["env"] == {"HF_TOKEN": "***", "OMP_NUM_THREADS": "1"}
    assert "token: ***" in manifest["targets"]["leaky"]["fingerprint_error"]
    lines = next(history.rglob("cells.jsonl")).read_text().splitlines()
    leaky = next(c for c in map(json.loads, lines) if c["target"] == "leaky")
    assert "token: ***" in leaky["error"] + (leaky["stderr_tail"] or "")


def test_a_local_worker_gets_only_what_it_needs_from_bench(tmp_path: Path) -> None:
    python = recording_python(tmp_path / "record", then="stop")
    env = '{OMP_NUM_THREADS: "1"}'
    suite = tmp_path / "s.yaml"
    suite.write_text(suite_text(f"kind: local, python: {python}", env))
    controller = {
        "BENCH_ALERT_WEBHOOK": f"http://127.0.0.1:9/{secrets.token_hex(8)}",
        "SOME_CONTROLLER_VAR": secrets.token_hex(8),
    }
    done = bench_cli("run", str(suite), "--results-dir", str(tmp_path / "r"), env=controller)
    assert done.returncode == 1, done.stderr  # the recording interpreter runs no worker
    seen = worker_environments(tmp_path / "record")
    assert len(seen) == 2  # the fingerprint and the cell's worker
    for local in seen:
        assert "BENCH_ALERT_WEBHOOK" not in local
        assert "SOME_CONTROLLER_VAR" not in local
        assert controller["SOME_CONTROLLER_VAR"] not in "".join(local.values())
        assert local["PATH"] == os.environ["PATH"]
        assert local["OMP_NUM_THREADS"] == "1"
        assert set(local) <= {
            *("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "PYTHONPATH"),
            *("PYTHONHOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "PYTHONUNBUFFERED", "TMPDIR"),
            *("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "OMP_NUM_THREADS", "PWD"),
            *(k for k in local if k.startswith(("LC_", "CUDA_", "NVIDIA_"))),
        }


def test_remote_command_passes_double_dash_and_no_secret() -> None:
    from bench.targets.envvars import FromEnv
    from bench.targets.remotecmd import secret_input

    env = {"PLAIN": "1", "HF_TOKEN": FromEnv(from_env="BENCH_TEST_SECRET")}
    os.environ["BENCH_TEST_SECRET"] = "s3cr3t-value"
    try:
        command = worker_command(env, "/pkg", "/cell", ["python3", "-m", "workloads"])
        assert "exec env -- " in command
        assert "s3cr3t-value" not in command
        assert secret_input(env) == b"s3cr3t-value\n"
    finally:
        del os.environ["BENCH_TEST_SECRET"]


@needs_sshd
def test_an_option_shaped_name_is_no_option_of_remote_env(server, tmp_path: Path) -> None:
    """Below the schema: even a name that got past it stays an assignment for ``env``."""
    marker = tmp_path / "PWNED"
    client = connect(
        Endpoint(
            host=server.host,
            port=server.port,
            user=server.user,
            key=str(server.client_key),
            password=None,
            known_hosts=server.known_hosts,
            host_key="strict",
            timeout_s=10,
            retries=0,
        )
    )
    try:
        env = {f"-S touch {marker}": "x", "GOOD": "yes"}
        command = worker_command(env, "/nonexistent", str(tmp_path / "cell"), ["printenv", "GOOD"])
        status, output = execute(client, command)
    finally:
        client.close()
    assert list(tmp_path.glob("PWNED*")) == []
    assert (status, output.strip()) == (0, "yes")
