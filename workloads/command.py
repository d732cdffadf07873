"""``kind: command``: any program, run as given, measured like every other workload.

The program's argument list is executed without a shell (a word is never split, expanded or
interpreted; ``[sh, -c, "a | b"]`` asks for a shell explicitly), with the worker's environment
plus the workload's ``env``, stdin from /dev/null and the cell's scratch directory as its working
directory. torch is never imported: the worker's own start-up stays a Python interpreter's, so
what a target adds to starting a program shows in ``startup.ready_s`` undiluted.

The measured span is the program's life, as hyperfine measures it: ``command.wall_s`` runs from
just before the launch to the moment the program's exit is collected. ``ready`` is announced
right before the launch and ``first_step`` right after the exit, so start-up phases, memory of
the process tree, CPU time (the program's and its children's), GPU samples (``nvmldevice``),
the verdict and the reports treat it like any other cell; the suite's repetitions are its sample.
``BENCH_INJECT_SLOWDOWN`` stretches the measured span as it stretches another kind's iteration.

The program reports metrics of its own as JSON lines on stdout (``metricline``): each becomes
``user.<name>`` (the last line of a name wins; all of its values go into the raw data). Its
other stdout lines and its stderr are copied to the worker's stderr, which the controller keeps
the end of. An exit status other than 0 fails the cell with one line carrying the status and the
end of stderr. Processes the program leaves behind are ended when it exits, and the whole tree
is ended when the worker is stopped (a timeout, Ctrl-C): see ``proctree``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from workloads import metricline, nvmldevice
from workloads.common import metric
from workloads.context import Context, Outcome
from workloads.cpustate import CpuState
from workloads.loop import LoopResult, injected_slowdown, stretch
from workloads.proctree import Reaper
from workloads.protocol import Emit, make_event
from workloads.spec import Spec

LINE_MAX = 1 << 16  # a longer line is read in pieces (and is no metric line)
STDERR_TAIL_LINES = 20
MESSAGE_TAIL_LINES = 5
MESSAGE_TAIL_CHARS = 400
DRAIN_S = 5.0  # how long the output may take to end once every process has gone


class CommandError(RuntimeError):
    """The program could not be started (not found, not executable)."""


class CommandFailed(RuntimeError):
    """The program ran but failed: a non-zero exit status, a signal, a malformed metric line."""

    traceback_helps = False  # the program's own stderr says why; the worker's stack would not


@dataclass
class CommandContext(Context):
    """A command's context: the environment it runs with and the name of the GPU watched.

    ``device`` is the label of where the command is reported ("cuda:0" or "cpu"), not a
    torch device, and ``threads`` and ``torch_version`` are None: nothing here imports torch.
    """

    env: dict[str, str] = field(default_factory=dict)
    gpu_name: str | None = None


class RunResult(LoopResult):
    """The one run of a command as a loop result: its CPU metrics come from the same code,
    but it has no iterations to count, so the verdict does not ask for a minimum of them
    (a command's sample is the suite's repetitions)."""

    def info(self) -> dict[str, Any]:
        out = super().info()
        del out["measured_iterations"], out["warmup_iterations"]
        return out


def command_env(workload: Mapping[str, Any], base: Mapping[str, str] | None = None) -> dict:
    """The command's environment: the worker's (``base``), the workload's ``env`` on top, and
    with ``device: cpu`` no GPU visible to CUDA, so that the label cannot be wrong."""
    env = dict(os.environ if base is None else base)
    env.update({key: str(value) for key, value in (workload["env"] or {}).items()})
    if workload["device"] == "cpu":
        env[nvmldevice.VISIBLE] = ""
    return env


def context(spec: Spec, emit: Emit, started: float) -> CommandContext:
    """The command's environment and the GPU to watch, chosen without torch."""
    env = command_env(spec.workload)
    if spec.samplers:
        choice = nvmldevice.choose(spec.workload["device"], env)
    else:
        off = "samplers switched off in the spec"
        choice = nvmldevice.Choice("cpu", nvmldevice.GpuMonitor(None, off))
    choice.monitor.start()
    return CommandContext(
        spec=spec,
        emit=emit,
        device=choice.label,
        threads=None,  # a command's threads are its own business
        torch_version=None,
        started=started,
        gpu=choice.monitor,
        env=env,
        gpu_name=choice.name,
    )


class Output:
    """Drains the program's stdout and stderr in two threads, so that it never blocks on a full
    pipe: metric lines are collected, everything else is copied to this process's stderr and
    the end of stderr is kept."""

    def __init__(self) -> None:
        self.metrics: dict[str, metricline.MetricLine] = {}
        self.series: dict[str, list[float]] = {}
        self.malformed: str | None = None
        self.output_lines = 0
        self.stderr: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def attach(self, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        for pump, pipe in ((self._stdout, stdout), (self._stderr, stderr)):
            thread = threading.Thread(target=pump, args=(pipe,), name="command-output", daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float) -> bool:
        """Wait for both streams to end; False if one is still held open (by a process out of
        this worker's reach) when ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _stdout(self, pipe: IO[bytes]) -> None:
        for number, raw in enumerate(iter(lambda: pipe.readline(LINE_MAX), b""), 1):
            try:
                found = metricline.parse(raw.decode(errors="replace"))
            except metricline.MetricLineError as exc:
                self.malformed = self.malformed or f"stdout line {number}: {exc}"
                found = None
            if found is None:
                self.output_lines += 1
                self._forward(raw)
                continue
            self.metrics[found.metric] = found
            self.series.setdefault(found.metric, []).append(found.value)
        pipe.close()

    def _stderr(self, pipe: IO[bytes]) -> None:
        for raw in iter(lambda: pipe.readline(LINE_MAX), b""):
            self.stderr.append(raw.decode(errors="replace").rstrip())
            self._forward(raw)
        pipe.close()

    def _forward(self, raw: bytes) -> None:
        data = raw if raw.endswith(b"\n") else raw + b"\n"
        with self._lock:
            while data:
                try:
                    data = data[os.write(2, data) :]
                except OSError:
                    return  # nobody reads our stderr any more: the output is not the result

    def stderr_tail(self) -> str:
        return "\n".join(self.stderr)

    def message_tail(self) -> str:
        """The last lines of stderr for a one-line error message."""
        lines = [line.strip() for line in self.stderr if line.strip()][-MESSAGE_TAIL_LINES:]
        text = " | ".join(lines)
        if len(text) > MESSAGE_TAIL_CHARS:
            text = "..." + text[-MESSAGE_TAIL_CHARS:]
        return text or "no stderr output"


def _launch(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the program; a program that cannot be started is named with the reason."""
    try:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        where = "no such file" if "/" in argv[0] else "not found on the target's PATH"
        raise CommandError(f"cannot run {argv[0]!r}: {where}") from None
    except OSError as exc:
        raise CommandError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None


def _wait(proc: subprocess.Popen[bytes]) -> tuple[int, int]:
    """Wait for the program's exit; its status (negative: the signal that ended it) and the
    kernel's peak RSS of it and its waited-for children, in bytes."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024


def _status_text(status: int) -> str:
    if status >= 0:
        return f"exited with status {status}"
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = "an unknown signal"
    return f"was killed by signal {-status} ({name})"


def run(ctx: CommandContext) -> Outcome:
    """Run the program once, with every process it starts ended before this returns."""
    argv = list(ctx.workload["argv"])
    output = Output()
    slowdown = injected_slowdown()
    with Reaper() as reaper:
        ctx.ready(str(ctx.device))
        ctx.gpu.mark("measured_start")
        before = CpuState.now()
        began = time.perf_counter()
        proc = _launch(argv, ctx.env)
        assert proc.stdout is not None and proc.stderr is not None
        output.attach(proc.stdout, proc.stderr)
        status, max_rss = _wait(proc)
        stretch(began, slowdown)  # BENCH_INJECT_SLOWDOWN: the program's life is its iteration
        wall = time.perf_counter() - began
        after = CpuState.now()
        ctx.gpu.mark("measured_end")
        ctx.emit(make_event("first_step"))
        leftovers = reaper.end_all()
        adopting = reaper.adopting
    drained = output.join(DRAIN_S)
    if status != 0:
        raise CommandFailed(
            f"{argv[0]} {_status_text(status)} after {wall:.3g} s; stderr: {output.message_tail()}"
        )
    if output.malformed is not None:
        raise CommandFailed(f"{argv[0]} printed a malformed metric line: {output.malformed}")
    loop = RunResult([], [wall], [], wall, before, after, slowdown)
    return _outcome(ctx, loop, output, max_rss, leftovers, adopting, drained)


def _outcome(
    ctx: CommandContext,
    loop: RunResult,
    output: Output,
    max_rss: int,
    leftovers: int,
    adopting: bool,
    drained: bool,
) -> Outcome:
    metrics = {"command.wall_s": metric(loop.window_s, "s")}
    absent: dict[str, str] = {}
    for name, found in output.metrics.items():
        reason = metricline.absent_reason(found)
        if reason is None:
            metrics[name] = metric(found.value, found.unit)
        else:
            absent[name] = reason
    # The kernel's high-water mark is exact where the 10 Hz tree sampler would miss a program
    # that lived less than one interval: the worker floors its tree peak with it.
    metrics["mem.rss_peak_bytes"] = metric(max_rss, "bytes")
    info = {
        "command": {
            "argv": list(ctx.workload["argv"]),
            "env": sorted(ctx.workload["env"] or {}),
            "exit_status": 0,
            "stderr_tail": output.stderr_tail(),
            "output_lines": output.output_lines,
            "metric_lines": sum(len(v) for v in output.series.values()),
            "leftover_processes": leftovers,
            "orphans_adopted": adopting,
            "output_complete": drained,
        },
    }
    if ctx.gpu_name is not None:
        info["device_name"] = ctx.gpu_name
    raw = {"wall_s": [loop.window_s], **output.series}
    return Outcome(loop=loop, metrics=metrics, raw=raw, info=info, absent=absent)
