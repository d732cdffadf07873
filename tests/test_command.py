"""``kind: command`` in the worker: the metric-line form, a run's metrics and failures, the GPU
it watches, what a timeout or Ctrl-C leaves behind (nothing), and the suite's validation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench import results
from bench.errors import SuiteError
from bench.suite import parse_suite
from tests.conftest import bench_cli, run_suite
from workloads import metricline, nvmldevice, proctree, run_workload
from workloads.command import CommandError, CommandFailed
from workloads.common import DeviceUnavailableError

REPO = Path(__file__).resolve().parent.parent
METRIC = '{"bench_metric": "answer", "value": 42, "unit": "items"}'


def spec(argv: list[str], **options: Any) -> dict[str, Any]:
    return {"workload": {"name": "c", "kind": "command", "argv": argv, **options}}


MARK = "CMD_TEST_MARK"


def alive_with(marker: str, variable: str = MARK) -> list[int]:
    """Live processes whose environment carries ``variable=marker``."""
    found = []
    wanted = f"{variable}={marker}".encode()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def gone(marker: str, within_s: float = 5.0) -> bool:
    """Whether every process marked ``marker`` has gone: a killed process's teardown (its
    memory freed, its /proc entry removed) finishes asynchronously, late on a loaded host."""
    deadline = time.monotonic() + within_s
    while alive_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive_with(marker) == []


def sleepers(marker: str) -> str:
    """Shell text that starts two marked background sleepers, one in a session of its own (out
    of reach of a signal to the worker's process group)."""
    return f"{MARK}={marker} sleep 60 & {MARK}={marker} setsid sleep 60 & "


# The metric-line form


def test_metric_lines_are_told_from_output() -> None:
    found = metricline.parse(METRIC + "\n")
    assert found == metricline.MetricLine("answer", 42.0, "items")
    assert found.metric == "user.answer"
    assert metricline.parse('{"bench_metric": "n", "value": 1.5}').unit == ""
    for output in ("plain", '{"value": 1}', "[1, 2]", '{"bench_metric": "x", "value": 1', ""):
        assert metricline.parse(output) is None
    nan = metricline.parse('{"bench_metric": "n", "value": NaN}')
    assert metricline.absent_reason(nan) == "the command reported nan for it"


@pytest.mark.parametrize(
    "line, says",
    [
        ('{"bench_metric": "a b", "value": 1}', "metric name 'a b'"),
        ('{"bench_metric": "' + "x" * 65 + '", "value": 1}', "1 to 64"),
        ('{"bench_metric": "a", "value": "1"}', "value must be a number, got '1'"),
        ('{"bench_metric": "a", "value": true}', "value must be a number"),
        ('{"bench_metric": "a", "value": 1, "units": "s"}', "unknown key(s) ['units']"),
        ('{"bench_metric": "a", "value": 1, "unit": 5}', "unit must be a string"),
        ('{"bench_metric": "a", "value": 1' + "0" * 400 + "}", "too large"),
    ],
)
def test_a_malformed_metric_line_is_an_error(line: str, says: str) -> None:
    with pytest.raises(metricline.MetricLineError) as caught:
        metricline.parse(line)
    assert says in str(caught.value)


# One run in this process


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    """One run of a program that prints a metric twice, output, stderr, reads its env and
    leaves two processes behind (one in a session of its own)."""
    marker = f"cmd-test-{uuid.uuid4().hex[:8]}"
    program = (
        f"{sleepers(marker)}"
        "echo plain; echo to-stderr >&2; "
        """echo '{"bench_metric": "answer", "value": 41}'; """
        f"echo '{METRIC}'; "
        'echo "{\\"bench_metric\\": \\"env_seen\\", \\"value\\": ${#CMD_VALUE}}"; '
        """echo '{"bench_metric": "undefined", "value": NaN}'; """
        'echo "{\\"bench_metric\\": \\"gpus\\", \\"value\\": ${#CUDA_VISIBLE_DEVICES}}"; '
        "sleep 0.2"
    )
    before = set(proctree.children(os.getpid()))
    found = run_workload(spec(["sh", "-c", program], env={"CMD_VALUE": "hello"}, device="cpu"))
    found["marker"] = marker
    found["new_children"] = sorted(set(proctree.children(os.getpid())) - before)
    return found


def test_a_command_reports_its_wall_time_and_its_own_metrics(result: dict[str, Any]) -> None:
    metrics = {name: m["value"] for name, m in result["metrics"].items()}
    assert 0.2 <= metrics["command.wall_s"] < 5.0
    assert result["metrics"]["command.wall_s"]["unit"] == "s"
    assert metrics["user.answer"] == 42.0  # the last line of a name wins
    assert result["metrics"]["user.answer"]["unit"] == "items"
    assert result["raw"]["user.answer"] == [41.0, 42.0]
    assert result["raw"]["wall_s"] == [metrics["command.wall_s"]]
    assert metrics["user.env_seen"] == 5  # the workload's env reached the program
    assert metrics["user.gpus"] == 0  # device: cpu hides every GPU from it
    assert result["absent"]["user.undefined"] == "the command reported nan for it"
    assert metrics["mem.rss_peak_bytes"] > 1 << 20
    assert metrics["cpu.util_pct"] > 0
    assert result["absent"]["gpu.util_mean_pct"] == "workload ran on cpu"


def test_an_injected_slowdown_stretches_the_measured_span(monkeypatch) -> None:
    """``BENCH_INJECT_SLOWDOWN`` works on a command as on a loop: 2 makes 0.2 s take 0.6 s."""
    monkeypatch.setenv("BENCH_INJECT_SLOWDOWN", "2")
    found = run_workload(spec(["sleep", "0.2"], device="cpu"))
    assert 0.6 <= found["metrics"]["command.wall_s"]["value"] < 3.0
    assert found["info"]["injected_slowdown"] == 2.0


def test_a_command_s_info_keeps_its_exit_and_output(result: dict[str, Any]) -> None:
    info = result["info"]
    assert "torch" not in info and "threads" not in info
    assert "measured_iterations" not in info  # a command's sample is the suite's repetitions
    assert info["cpu_state"]["mhz_start"] is None or info["cpu_state"]["mhz_start"] > 0
    command = info["command"]
    assert command["exit_status"] == 0
    assert command["stderr_tail"] == "to-stderr"
    assert command["output_lines"] == 1 and command["metric_lines"] == 5
    assert command["env"] == ["CMD_VALUE"]
    assert command["orphans_adopted"] is True and command["output_complete"] is True


def test_processes_a_command_leaves_are_ended(result: dict[str, Any]) -> None:
    assert result["info"]["command"]["leftover_processes"] == 2
    assert gone(result["marker"])
    assert result["new_children"] == []  # the killed ones reaped: no zombie of the caller's


@pytest.mark.parametrize(
    "argv, error, says",
    [
        (["sh", "-c", "echo first >&2; echo why >&2; exit 3"], CommandFailed, "status 3"),
        (["sh", "-c", "echo why >&2; kill -9 $$"], CommandFailed, "signal 9 (SIGKILL)"),
        (["sh", "-c", f"echo why >&2; echo '{METRIC[:-1]}, \"x\": 1}}'"], CommandFailed, "line 1"),
        (["no-such-program-here"], CommandError, "not found on the target's PATH"),
        (["/no/such/program"], CommandError, "no such file"),
        (["{text}"], CommandError, "Permission denied"),
    ],
)
def test_a_failed_command_says_why_on_one_line(
    argv: list[str], error: type, says: str, tmp_path: Path
) -> None:
    text = tmp_path / "not-executable"
    text.write_text("echo hi\n")
    argv = [word.replace("{text}", str(text)) for word in argv]
    with pytest.raises(error) as caught:
        run_workload(spec(argv))
    message = str(caught.value)
    assert says in message and "\n" not in message
    if argv[0] == "sh" and "status" in says:
        assert message.endswith("stderr: first | why")


# The worker process: no torch, and nothing left when it is stopped


def worker(spec_: dict[str, Any], *flags: str) -> subprocess.Popen[bytes]:
    """A worker as the local target starts it: in its own session, events on stdout."""
    return subprocess.Popen(
        [sys.executable, *flags, "-m", "workloads", "run", "--spec-json", json.dumps(spec_)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


MODULES_AT_EXIT = """
import runpy, sys
sys.argv = ["workloads", *sys.argv[2:]]
try:
    runpy.run_module("workloads", run_name="__main__", alter_sys=True)
finally:
    with open(OUT, "w") as handle:
        handle.write(" ".join(sorted(sys.modules)))
"""


def test_the_worker_runs_a_command_without_importing_torch(tmp_path: Path) -> None:
    out = tmp_path / "modules"
    code = MODULES_AT_EXIT.replace("OUT", repr(str(out)))
    args = [
        "-c",
        code,
        "x",
        "run",
        "--spec-json",
        json.dumps(spec(["sh", "-c", f"echo plain-line; echo '{METRIC}'"])),
    ]
    proc = subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr.decode().splitlines() == ["plain-line"]  # output is forwarded to stderr
    modules = out.read_text().split()
    assert "workloads.command" in modules
    assert not [name for name in modules if name.split(".")[0] in ("torch", "numpy")]
    events = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [e["event"] for e in events] == ["start", "ready", "first_step", "result"]
    assert events[-1]["metrics"]["user.answer"]["value"] == 42


@pytest.mark.parametrize("how", ["group-term", "worker-int"])
def test_stopping_the_worker_ends_the_command_s_whole_tree(how: str) -> None:
    """A timeout or Ctrl-C reaches the worker as SIGTERM to its process group (local and SSH
    targets) or as SIGINT; processes in a session of their own are ended by the worker."""
    marker = f"cmd-stop-{uuid.uuid4().hex[:8]}"
    proc = worker(spec(["sh", "-c", f"{sleepers(marker)} sleep 60"]))
    try:
        assert proc.stdout is not None
        assert b'"ready"' in proc.stdout.readline() + proc.stdout.readline()
        deadline = time.monotonic() + 20
        while len(alive_with(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(alive_with(marker)) == 2
        if how == "group-term":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == (143 if how == "group-term" else 130)
        assert gone(marker)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in alive_with(marker):
            os.kill(pid, signal.SIGKILL)
        proc.communicate()


TIMEOUT_SUITE = """
name: t
repetitions: 1
targets: [{name: bare, kind: local}]
workloads:
  - name: hang
    kind: command
    env: {MARK: MARKER}
    argv: [sh, -c, "setsid sleep 60 & sleep 60"]
    timeout_s: 1
"""


@pytest.mark.slow
def test_a_command_past_its_timeout_is_ended_with_all_it_started(tmp_path: Path) -> None:
    marker = f"cmd-timeout-{uuid.uuid4().hex[:8]}"
    proc = run_suite(tmp_path, TIMEOUT_SUITE.replace("MARKER", marker).replace("MARK", MARK))
    assert proc.returncode == 1, proc.stderr
    cell = results.load_cells(Path(proc.stdout.strip().splitlines()[-1])).iloc[0]
    assert cell["status"] == "failed" and "worker timed out" in cell["error"]
    assert gone(marker)


# The GPU a command is watched on (a stand-in for NVML: this host has no GPU)


class FakeNvml(SimpleNamespace):
    """Labelled fake: pynvml's calls that choose a device, recording which was asked for."""

    def __init__(self, count: int = 2) -> None:
        super().__init__(asked=[], count=count)

    def nvmlInit(self) -> None:
        if not self.count:
            raise RuntimeError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        if index >= self.count:
            raise RuntimeError("Invalid Argument")
        self.asked.append(index)
        return f"h{index}"

    def nvmlDeviceGetHandleByUUID(self, uuid_: str) -> str:
        self.asked.append(uuid_)
        return uuid_

    def nvmlDeviceGetName(self, handle: str) -> bytes:
        return f"Fake GPU {handle}".encode()

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:
        return 0


@pytest.mark.parametrize(
    "visible, asked",
    [(None, 0), ("1", 1), ("GPU-8f3e, GPU-0000", "GPU-8f3e"), ("MIG-ab12", "MIG-ab12")],
)
def test_the_gpu_watched_is_the_command_s_first_visible_one(visible: str | None, asked) -> None:
    nvml = FakeNvml()
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    choice = nvmldevice.choose("auto", env, nvml=nvml)
    assert (choice.label, nvml.asked) == ("cuda:0", [asked])
    handle = f"h{asked}" if isinstance(asked, int) else asked
    assert choice.monitor.active and choice.name == f"Fake GPU {handle}"


@pytest.mark.parametrize(
    "env, nvml, why",
    [
        (
            {"CUDA_VISIBLE_DEVICES": ""},
            FakeNvml(),
            "CUDA_VISIBLE_DEVICES hides every GPU from the command",
        ),
        ({}, FakeNvml(count=0), "NVML init failed: Driver Not Loaded"),
        ({"CUDA_VISIBLE_DEVICES": "3"}, FakeNvml(), "NVML found no GPU '3': Invalid Argument"),
    ],
)
def test_no_gpu_is_a_reason_for_auto_and_an_error_for_cuda(env, nvml, why: str) -> None:
    choice = nvmldevice.choose("auto", env, nvml=nvml)
    assert choice.label == "cpu" and not choice.monitor.active
    assert choice.monitor.reason == f"no GPU to watch: {why}"
    with pytest.raises(DeviceUnavailableError, match=f"device: cuda was requested but {why}"):
        nvmldevice.choose("cuda", env, nvml=nvml)


# The suite


def suite(workload: str) -> str:
    return f"name: s\ntargets: [{{name: bare, kind: local}}]\nworkloads:\n  - {workload}\n"


@pytest.mark.parametrize(
    "workload, says",
    [
        ("{name: c, kind: command}", "workloads[0].argv: required key is missing"),
        ("{name: c, kind: command, argv: []}", "workloads[0].argv: List should have at least 1"),
        ("{name: c, kind: command, argv: [sh, 1]}", "workloads[0].argv[1]: Input should be"),
        ("{name: c, kind: command, argv: [sh], env: {A: 1}}", "env.A: a value is a string"),
        ("{name: c, kind: command, argv: [sh], env: {1A: x}}", "invalid variable name '1A'"),
        ("{name: c, kind: command, argv: [sh], threads: 2}", "threads does not apply to a"),
        (
            "{name: c, kind: command, argv: [sh], device: cpu, env: {CUDA_VISIBLE_DEVICES: '0'}}",
            "env.CUDA_VISIBLE_DEVICES contradicts device: cpu",
        ),
    ],
)
def test_a_bad_command_is_one_located_line(workload: str, says: str) -> None:
    with pytest.raises(SuiteError) as caught:
        parse_suite(suite(workload), source="s.yaml")
    assert str(caught.value).startswith("s.yaml:4: ") and says in str(caught.value)


def test_bench_validate_refuses_an_empty_argv_with_status_2(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(suite("{name: c, kind: command, argv: []}"))
    proc = bench_cli("validate", str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}:4: workloads[0].argv: List should have at least 1 item after "
        "validation, not 0"
    ]


@pytest.mark.slow
def test_a_command_only_suite_is_fingerprinted_without_torch(tmp_path: Path) -> None:
    """No workload imports torch, so the target's fingerprint does not either: torch's facts
    are absent (null), the machine's are there; one torch workload brings them back."""
    torch_facts = {}
    for name, workloads in (
        ("plain", "  - {name: c, kind: command, argv: ['true']}\n"),
        ("mixed", "  - {name: c, kind: command, argv: ['true']}\n"
                  "  - {name: t, kind: train_step, model: mlp, steps: 2, warmup_steps: 0}\n"),
    ):  # fmt: skip
        text = f"name: {name}\nrepetitions: 1\ntargets: [{{name: bare, kind: local}}]\n"
        (tmp_path / name).mkdir()
        done = run_suite(tmp_path / name, text + "workloads:\n" + workloads, "--no-report")
        assert done.returncode == 0, done.stderr
        run_dir = Path(done.stdout.strip().splitlines()[-1])
        found = results.load_manifest(run_dir)["targets"]["bare"]["fingerprint"]
        assert found["cpu_model"] and found["kernel"] and found["environment"]
        torch_facts[name] = found.get("torch")
    assert torch_facts["plain"] is None and torch_facts["mixed"].startswith("2.")
