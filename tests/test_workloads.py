"""The worker package: metrics, events, exit codes and cleanup, on tiny configs."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from workloads import run_workload
from workloads.common import median, percentile
from workloads.data_loading import FileDataset, write_dataset
from workloads.gpu import GPU_METRICS, NvmlSampler, open_monitor
from workloads.spec import SpecError, validate

REPO = Path(__file__).resolve().parent.parent
CPU_ONLY = not torch.cuda.is_available()


def worker(*args: str, stdin: str = "", **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workloads", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
        **kwargs,
    )


def events_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def spec(kind: str, seed: int = 0, **options: Any) -> dict[str, Any]:
    """A CPU run unless ``device`` says otherwise, so the checks hold on a GPU host too."""
    workload = {"name": f"t-{kind}", "kind": kind, "device": "cpu", **options}
    return {"workload": workload, "seed": seed}


def check_metrics(result: dict[str, Any], expected: dict[str, str]) -> None:
    """Exactly the expected worker metrics, each positive with its unit."""
    metrics = dict(result["metrics"])
    common = {"cpu.util_pct": "%", "mem.rss_peak_bytes": "bytes"}
    imported = metrics.pop("startup.import_s", None)  # absent in-process: torch was imported
    if imported is None:
        assert "already imported" in result["absent"]["startup.import_s"]
    else:
        assert imported["value"] > 0 and imported["unit"] == "s"
    assert set(metrics) == set(expected) | set(common) | {"cpu.user_pct", "cpu.sys_pct"}
    for name, unit in {**expected, **common}.items():
        assert metrics[name]["unit"] == unit, name
        assert metrics[name]["value"] > 0, name
    for name in ("cpu.user_pct", "cpu.sys_pct"):  # the kernel's split is tick-sampled: a
        assert metrics[name]["value"] >= 0, name  # short phase may truly have none of one
    split = metrics["cpu.user_pct"]["value"] + metrics["cpu.sys_pct"]["value"]
    assert split == pytest.approx(metrics["cpu.util_pct"]["value"])
    assert not set(metrics) & set(result["absent"])
    assert result["info"]["measured_iterations"] > 0


# --- train_step -----------------------------------------------------------------------------

TRAIN = {"train.throughput": "samples/s", "train.step_time_s": "s", "train.data_wait_s": "s"}


@pytest.mark.parametrize("model", ["mlp", "cnn", "transformer"])
def test_train_step_reports_measured_steps_only(model: str) -> None:
    result = run_workload(spec("train_step", model=model, batch_size=4, steps=3, warmup_steps=2))
    check_metrics(result, TRAIN)
    times = result["raw"]["step_time_s"]
    assert len(times) == 3 and len(result["raw"]["warmup_step_time_s"]) == 2
    throughput = result["metrics"]["train.throughput"]["value"]
    assert throughput == pytest.approx(4 * 3 / sum(times))
    assert result["metrics"]["train.step_time_s"]["value"] == pytest.approx(median(times))
    info = result["info"]
    assert info["measured_steps"] == 3 and info["warmup_steps"] == 2
    assert info["model"] == model and info["parameters"] > 0 and info["device"] == "cpu"


def test_train_step_reduced_precision_and_adam() -> None:
    result = run_workload(
        spec(
            "train_step", batch_size=2, steps=2, warmup_steps=0, dtype="bfloat16", optimizer="adam"
        )
    )
    check_metrics(result, TRAIN)
    assert result["raw"]["warmup_step_time_s"] == []
    assert result["info"]["dtype"] == "bfloat16"


@pytest.mark.skipif(not CPU_ONLY, reason="checks the reasons given on a host without CUDA")
def test_gpu_metrics_are_absent_with_a_reason_on_cpu() -> None:
    result = run_workload(spec("train_step", batch_size=2, steps=2, warmup_steps=0))
    for name in GPU_METRICS:
        assert name not in result["metrics"]
        assert result["absent"][name] == "workload ran on cpu"


# --- inference ------------------------------------------------------------------------------

LATENCY = {
    "infer.latency_p50_s": "s",
    "infer.latency_p90_s": "s",
    "infer.latency_p99_s": "s",
    "infer.latency_p999_s": "s",
}


def test_inference_single_stream_latency_percentiles() -> None:
    result = run_workload(spec("inference", model="cnn", min_query_count=10, warmup_queries=3))
    check_metrics(result, {"infer.throughput": "samples/s", **LATENCY})
    latencies = result["raw"]["latency_s"]
    assert len(latencies) == 10 and len(result["raw"]["warmup_latency_s"]) == 3
    metrics = result["metrics"]
    p50, p90, p99, p999 = (metrics[name]["value"] for name in LATENCY)
    assert p50 <= p90 <= p99 <= p999 == max(latencies)
    assert p90 == sorted(latencies)[9]  # LoadGen's rank: sorted[int(n * 0.9)]
    assert 0 < metrics["infer.throughput"]["value"] <= 1 / min(latencies)
    assert result["info"]["scenario"] == "single_stream"


def test_inference_offline_reports_throughput_only() -> None:
    result = run_workload(
        spec("inference", model="transformer", batch_size=8, min_query_count=32, scenario="offline")
    )
    check_metrics(result, {"infer.throughput": "samples/s"})
    for name in LATENCY:
        assert "offline" in result["absent"][name]
    assert len(result["raw"]["batch_time_s"]) == 4 and "latency_s" not in result["raw"]
    assert len(result["raw"]["warmup_latency_s"]) == 20  # the default


# --- data_loading ---------------------------------------------------------------------------


def live_children() -> list[int]:
    path = Path(f"/proc/self/task/{os.getpid()}/children")
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize("num_workers", [0, 2])
def test_data_loading_measures_post_warmup_batches(num_workers: int) -> None:
    """The loader's workers are gone at the end (children the session already had, such as
    a session-wide SSH server, are not the workload's)."""
    before = set(live_children())
    options = {"samples": 60, "sample_bytes": 1024, "batch_size": 8, "warmup_batches": 2}
    result = run_workload(spec("data_loading", num_workers=num_workers, **options))
    check_metrics(
        result,
        {"data.throughput": "samples/s", "data.bandwidth": "bytes/s", "data.loader_startup_s": "s"},
    )
    # 60 samples in batches of 8: 7 full batches and one of 4; two full ones are warmup.
    assert len(result["raw"]["batch_time_s"]) == 6
    assert len(result["raw"]["warmup_batch_time_s"]) == 2
    info, metrics = result["info"], result["metrics"]
    assert info["measured_samples"] == 60 - 16
    window = info["measured_window_s"]
    assert metrics["data.throughput"]["value"] == pytest.approx(44 / window)
    assert metrics["data.bandwidth"]["value"] == pytest.approx(44 * 1024 / window)
    assert sum(result["raw"]["batch_time_s"]) <= window
    assert not os.path.exists(info["dataset_dir"])
    assert not set(live_children()) - before and not multiprocessing.active_children()


def test_data_loading_epochs_and_cold_cache() -> None:
    options = {"samples": 16, "sample_bytes": 512, "batch_size": 8, "epochs": 3}
    result = run_workload(spec("data_loading", num_workers=1, cold_cache=True, **options))
    assert len(result["raw"]["batch_time_s"]) == 3 * 2 - 2
    assert result["info"]["cold_cache"] is True
    assert not os.path.exists(result["info"]["dataset_dir"])


def test_dataset_content_is_determined_by_the_seed(tmp_path: Path) -> None:
    def contents(seed: int, name: str) -> list[bytes]:
        directory = tmp_path / name
        directory.mkdir()
        paths = write_dataset(str(directory), 4, 256, seed, cold=False)
        return [Path(path).read_bytes() for path in paths]

    first, again, other = contents(7, "a"), contents(7, "b"), contents(8, "c")
    assert first == again and first != other
    assert all(len(data) == 256 for data in first) and len(set(first)) == 4
    dataset = FileDataset(sorted(str(p) for p in (tmp_path / "a").iterdir()), 256, cold=False)
    item = dataset[2]
    assert item.dtype == torch.uint8 and bytes(item.numpy()) == first[2]


# --- events and the in-process API ----------------------------------------------------------


def test_in_process_events_and_return_value() -> None:
    events: list[dict[str, Any]] = []
    run = spec("train_step", batch_size=2, steps=20, warmup_steps=2)
    result = run_workload({**run, "progress_every_s": 0.001}, events.append)
    names = [event["event"] for event in events]
    assert names[:3] == ["start", "ready", "first_step"] and names[-1] == "result"
    assert set(names[3:-1]) == {"progress"}
    assert result is events[-1]
    done = [event["done"] for event in events if event["event"] == "progress"]
    assert done == sorted(done) and all(event.get("t") for event in events)
    assert {event["total"] for event in events if event["event"] == "progress"} == {22}


def test_spec_defaults_and_rejections() -> None:
    filled = validate({"workload": {"kind": "inference"}})
    assert filled.workload["scenario"] == "single_stream"
    assert filled.workload["min_query_count"] == 200
    assert filled.workload["name"] == "inference" and filled.progress_every_s == 0.5
    bad = [
        {"workload": {"kind": "train_step", "model": "vgg"}},
        {"workload": {"kind": "train_step", "batch_size": 0}},
        {"workload": {"kind": "train_step", "batch_size": True}},
        {"workload": {"kind": "train_step", "batchsize": 8}},
        {"workload": {"kind": "sorting"}},
        {"workload": {"kind": "data_loading", "samples": 8, "batch_size": 8}},
    ]
    for raw in bad:
        with pytest.raises(SpecError):
            validate(raw)


def test_percentile_matches_numpy() -> None:
    values = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2]
    for q in (0, 10, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


# --- the worker process ---------------------------------------------------------------------


def test_worker_event_order_and_exit_code() -> None:
    run = spec("train_step", batch_size=2, steps=20, warmup_steps=3)
    done = worker("run", "--spec", "-", stdin=json.dumps({**run, "progress_every_s": 0.001}))
    assert done.returncode == 0, done.stderr
    events = events_of(done.stdout)
    names = [event["event"] for event in events]
    assert names[:3] == ["start", "ready", "first_step"] and names[-1] == "result"
    assert set(names[3:-1]) <= {"progress"}
    assert events[0]["pid"] > 0
    assert events[1]["device"] == "cpu" and events[1]["torch"] == torch.__version__
    assert [event["t"] for event in events] == sorted(event["t"] for event in events)
    assert len(events[-1]["raw"]["step_time_s"]) == 20


def test_worker_reads_a_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec("inference", min_query_count=3, warmup_queries=1)))
    done = worker("run", "--spec", str(path))
    assert done.returncode == 0, done.stderr
    assert events_of(done.stdout)[-1]["info"]["loadgen"]["query_count"] == 3


def test_worker_takes_an_inline_spec_and_only_one_source() -> None:
    inline = json.dumps(spec("inference", min_query_count=3, warmup_queries=1))
    done = worker("run", "--spec-json", inline)
    assert done.returncode == 0, done.stderr
    assert events_of(done.stdout)[-1]["info"]["loadgen"]["query_count"] == 3
    both = worker("run", "--spec", "-", "--spec-json", inline)
    assert both.returncode == 2 and "not allowed with" in both.stderr


@pytest.mark.parametrize(
    "stdin",
    [
        json.dumps(spec("train_step", model="vgg")),
        json.dumps(spec("train_step", batch_size=0)),
        "{not json",
    ],
    ids=["unknown-model", "zero-batch", "bad-json"],
)
def test_invalid_spec_exits_2_with_an_error_event(stdin: str) -> None:
    done = worker("run", "--spec", "-", stdin=stdin)
    assert done.returncode == 2
    events = events_of(done.stdout)
    assert [event["event"] for event in events] == ["start", "error"]
    assert events[1]["error"] == "SpecError" and "\n" not in events[1]["message"]
    assert "Traceback" in events[1]["traceback"] and "SpecError" in done.stderr


@pytest.mark.skipif(not CPU_ONLY, reason="needs a host without CUDA")
def test_cuda_request_without_cuda_exits_1() -> None:
    done = worker("run", "--spec", "-", stdin=json.dumps(spec("train_step", device="cuda")))
    assert done.returncode == 1
    error = events_of(done.stdout)[-1]
    assert error["event"] == "error" and "CUDA" in error["message"]
    assert torch.__version__ in error["message"]


def test_sigterm_reports_and_removes_the_dataset(tmp_path: Path) -> None:
    run = spec("data_loading", samples=64, sample_bytes=1024, batch_size=4, epochs=100000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "workloads", "run", "--spec", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(json.dumps({**run, "progress_every_s": 0.05}))
    proc.stdin.close()
    for line in proc.stdout:
        if json.loads(line)["event"] == "progress":
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 143
    assert events_of(rest)[-1]["error"] == "Terminated"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("workloads-data-")]


def test_stray_prints_do_not_reach_the_event_stream() -> None:
    code = textwrap.dedent(
        """
        from workloads.protocol import Emitter, make_event
        emit = Emitter.claim_stdout()
        print("library noise")
        emit(make_event("x"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert [event["event"] for event in events_of(done.stdout)] == ["x"]
    assert "library noise" in done.stderr


# --- fingerprint and light imports ----------------------------------------------------------

BASE_KEYS = {
    "cpu_model",
    "cores",
    "memory_bytes",
    "kernel",
    "machine",
    "os",
    "python",
    "hostname",
    "cpu_governor",
    "virtualization",
    "cgroup_limits",
    "environment",
}


def test_fingerprint_command() -> None:
    done = worker("fingerprint")
    assert done.returncode == 0, done.stderr
    (event,) = events_of(done.stdout)
    data = event["data"]
    assert event["event"] == "fingerprint"
    torch_keys = {"torch", "torch_cuda", "cuda_available", "gpu_count", "gpu_names"}
    assert set(data) == BASE_KEYS | torch_keys | {"nvml", "numpy"}
    assert data["torch"] == torch.__version__ and data["numpy"] == np.__version__
    assert data["gpu_count"] == len(data["gpu_names"])
    assert data["cores"]["logical"] == os.cpu_count()
    assert data["memory_bytes"] > 0 and data["python"]["executable"]


def test_light_modules_do_not_import_torch_or_numpy() -> None:
    code = textwrap.dedent(
        """
        import sys
        import workloads, workloads.fingerprint, workloads.protocol, workloads.spec
        data = workloads.fingerprint.collect(include_torch=False)
        assert set(data) >= {"cpu_model", "cores", "kernel"}, data
        heavy = {"torch", "numpy"} & set(sys.modules)
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


# --- NVML sampling, with a FAKE pynvml: the test machines have no GPU ---


class FakeNvml:
    """FAKE GPU (hardware absent here): answers like pynvml for one GPU without power readings.

    Utilisation and memory follow ``phase``, which the test moves from start-up to the
    measured phase; the clock drops and a thermal slowdown is reported once ``hot`` is set.
    """

    NVML_CLOCK_SM = 1

    def __init__(self, fail_init: bool = False) -> None:
        self.fail_init = fail_init
        self.phase = "startup"
        self.hot = False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=90 if self.phase == "steady" else 10)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=2**31 if self.phase == "steady" else 2**30)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        raise RuntimeError("Not Supported")

    def nvmlDeviceGetClockInfo(self, handle: int, kind: int) -> int:
        assert kind == self.NVML_CLOCK_SM
        return 1200 if self.hot else 1980

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: int) -> int:
        return 0x40 | 0x01 if self.hot else 0x01  # hardware thermal slowdown (+ idle bit)


class SteppedSampler(NvmlSampler):
    """The real sampler and its thread, with each sample taken under ``lock``: a test that
    switches the fake GPU's phase and marks the boundary under the same lock never gets a
    sample read in one phase and time-stamped in the other."""

    lock = threading.Lock()

    def _sample(self) -> None:
        with self.lock:
            super()._sample()


def _wait_for_samples(sampler: NvmlSampler, count: int) -> None:
    deadline = time.monotonic() + 10
    start = len(sampler.timeline.t)
    while len(sampler.timeline.t) < start + count:
        assert time.monotonic() < deadline, "the sampler's thread took no samples"
        time.sleep(0.005)


def test_nvml_sampler_splits_start_up_from_steady_state() -> None:
    nvml = FakeNvml()
    sampler = SteppedSampler(nvml, 0, interval_s=0.005, window_s=0.0)  # type: ignore[arg-type]
    sampler.start()
    _wait_for_samples(sampler, 3)
    with sampler.lock:
        nvml.phase = "steady"
        sampler.mark("measured_start")
    _wait_for_samples(sampler, 3)
    sampler.mark("measured_end")
    report = sampler.stop()
    steady = startup = report.metrics
    assert steady["gpu.util_mean_pct"] == {"value": 90.0, "unit": "%"}
    assert steady["gpu.util_max_pct"]["value"] == 90.0
    assert steady["gpu.mem_peak_bytes"] == {"value": float(2**31), "unit": "bytes"}
    assert steady["gpu.sm_clock_mean_mhz"] == {"value": 1980.0, "unit": "MHz"}
    assert startup["gpu.startup_util_mean_pct"]["value"] == 10.0
    assert startup["gpu.startup_mem_peak_bytes"]["value"] == float(2**30)
    assert report.absent == {
        "gpu.power_mean_w": "no steady-state samples collected (RuntimeError: Not Supported)",
        "gpu.startup_power_mean_w": "no start-up samples collected (RuntimeError: Not Supported)",
    }
    line = report.raw["gpu_timeline"]
    assert len(line["t_s"]) == len(line["util_pct"]) == len(line["power_w"]) >= 6
    assert set(line["power_w"]) == {None}  # failed readings stay visible as gaps, not zeros
    assert 0 < line["marks_s"]["measured_start"] < line["marks_s"]["measured_end"]
    assert report.info["gpu_steady"]["slowdowns"] == []


def test_nvml_sampler_reports_a_thermal_slowdown_in_the_measured_phase() -> None:
    nvml = FakeNvml()
    sampler = SteppedSampler(nvml, 0, interval_s=0.005)  # type: ignore[arg-type]
    sampler.start()
    sampler.mark("measured_start")
    _wait_for_samples(sampler, 3)
    with sampler.lock:
        nvml.hot = True
    _wait_for_samples(sampler, 3)
    sampler.mark("measured_end")
    steady = sampler.stop().info["gpu_steady"]
    assert steady["slowdowns"] == ["hardware thermal slowdown"]
    assert (steady["sm_clock_min_mhz"], steady["sm_clock_max_mhz"]) == (1200.0, 1980.0)


def test_averaged_readings_absent_for_a_phase_shorter_than_nvml_window() -> None:
    """Seen on an H100: 150 training steps took 0.11 s and every utilization reading in them
    was 0%, the share of NVML's previous sample period. Memory and clocks stay."""
    nvml = FakeNvml()
    sampler = SteppedSampler(nvml, 0, interval_s=0.005, window_s=0.5)  # type: ignore[arg-type]
    sampler.start()
    time.sleep(1.0)  # start-up: longer than the window even if the thread starts late
    with sampler.lock:
        nvml.phase = "steady"
        sampler.mark("measured_start")
    _wait_for_samples(sampler, 3)
    sampler.mark("measured_end")
    report = sampler.stop()
    for name in ("gpu.util_mean_pct", "gpu.util_max_pct", "gpu.power_mean_w"):
        assert report.absent[name].startswith("the steady-state phase lasted 0."), name
        assert "shorter than the 0.5 s over which NVML averages it" in report.absent[name]
    assert report.metrics["gpu.mem_peak_bytes"]["value"] == float(2**31)
    assert report.metrics["gpu.sm_clock_mean_mhz"]["value"] == 1980.0
    assert report.metrics["gpu.startup_util_mean_pct"]["value"] == 10.0  # start-up: 1 s


def test_gpu_monitor_absent_with_the_reason() -> None:
    failed = open_monitor("cuda", 0, nvml=FakeNvml(fail_init=True)).stop()  # type: ignore[arg-type]
    assert failed.absent == dict.fromkeys(GPU_METRICS, "NVML init failed: Driver Not Loaded")
    on_cpu = open_monitor("cpu", None).stop()
    assert on_cpu.absent == dict.fromkeys(GPU_METRICS, "workload ran on cpu") and not on_cpu.raw


def test_injected_slowdown_is_recorded_and_bad_values_refused(monkeypatch) -> None:
    monkeypatch.setenv("BENCH_INJECT_SLOWDOWN", "0.05")
    result = run_workload(spec("train_step", batch_size=2, steps=3, warmup_steps=0))
    assert result["info"]["injected_slowdown"] == 0.05
    for bad in ("5%", "-0.1", "11", "nan"):
        monkeypatch.setenv("BENCH_INJECT_SLOWDOWN", bad)
        with pytest.raises(ValueError, match="BENCH_INJECT_SLOWDOWN must be a fraction from 0"):
            run_workload(spec("train_step", batch_size=2, steps=3, warmup_steps=0))
