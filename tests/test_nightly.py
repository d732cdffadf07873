"""``bench nightly`` and ``bench history`` over a history of real small runs (local target).

The history's runs are real, so what they measure moves with the machine: separate runs on a
busy 2-core machine drift by 10% and more. What these tests assert about measured numbers
(a regression on the night the stack got slower, a change point at that night) therefore rests
on an injected slowdown of 3x, which no drift of this machine comes near; everything else they
assert (files, index entries, the lock, exports, events, the webhook) does not depend on the
machine's speed. How the change-point search behaves on noise, small steps and slow drift is
asserted on synthetic series with known answers in test_change_points.py."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.nightly import changepoints, history
from tests.conftest import REPO, bench_cli
from tests.test_run_e2e import run_dir_of

pytestmark = pytest.mark.slow  # a history of real runs

SUITE = """\
name: nightly
repetitions: 5
targets:
  - {name: bare, kind: local, baseline: true}
workloads:
  - {name: cmd, kind: command, argv: [sleep, "0.05"]}
"""
# A command cell: no torch start-up, so the history's 40 cells take seconds. Five repetitions:
# compare judges a metric only with stats.MIN_FOR_CI of them on each side.
RUNS, SLOW_FROM = 8, 4  # the worker is 3x slower from run 4 on: something in the stack changed
SLOWDOWN = "2"  # the command's span stretched by 200%; the nights' own drift is far smaller
METRIC = "command.wall_s"  # lower is better


def nightly(
    suite: Path, root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return bench_cli("nightly", str(suite), "--history", str(root), *args, env=env)


def slowed(fraction: str) -> dict[str, str]:
    return {"BENCH_INJECT_SLOWDOWN": fraction}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, list[subprocess.CompletedProcess[str]]]:
    """A history of RUNS nightly runs, slowed from SLOW_FROM on (the suite is unchanged: the
    slowdown comes from the environment, as a slower driver or kernel would)."""
    root = tmp_path_factory.mktemp("nightly")
    suite = root / "suite.yaml"
    suite.write_text(SUITE)
    done = []
    for run in range(RUNS):
        env = slowed(SLOWDOWN) if run >= SLOW_FROM else None
        done.append(nightly(suite, root / "history", env=env))
    return suite, root / "history", done


def test_every_night_is_recorded_and_compared_with_the_previous(built) -> None:
    _, root, done = built
    entries = history.History(root).entries()
    assert len(entries) == RUNS
    assert entries[0].compared_with is None and entries[0].verdict == "no earlier comparable run"
    for before, after in itertools.pairwise(entries):
        assert after.compared_with == before.run_id
    for result in done:
        assert result.stdout.strip().splitlines()[-1].startswith(str(root / "runs" / "nightly"))


def test_the_night_the_stack_got_slower_is_a_regression(built) -> None:
    _, root, done = built
    assert done[SLOW_FROM].returncode == 1, done[SLOW_FROM].stdout[-3000:]
    entry = history.History(root).entries()[SLOW_FROM]
    assert entry.regressions >= 1
    alert = (root / "alerts" / f"{entry.run_id}.md").read_text()
    assert "## Regressions" in alert and METRIC in alert


def test_change_point_found_at_the_slow_run(built) -> None:
    _, root, _ = built
    entries = history.History(root).entries()
    points = changepoints.detect(history.series(entries))
    step = [p for p in points if p.metric == METRIC]
    assert [(p.index, p.run_id) for p in step] == [(SLOW_FROM, entries[SLOW_FROM].run_id)]
    assert step[0].worse and step[0].change > 1.0
    # Other metrics are not asserted on: the machine's own drift between the two halves of
    # the history is a real shift. False alarms on flat series: test_change_points.py.


def test_history_command_prints_trends_and_writes_its_page(built) -> None:
    _, root, _ = built
    done = bench_cli("history", str(root))
    assert done.returncode == 0, done.stderr
    entries = history.History(root).entries()
    assert f"run {entries[SLOW_FROM].run_id}: +" in done.stdout
    assert "(worse)" in done.stdout
    page = (root / "history.html").read_text()
    assert "data:image/png;base64," in page and entries[SLOW_FROM].run_id in page


def test_exports_for_dashboards(built) -> None:
    _, root, _ = built
    text = (root / "metrics.prom").read_text()
    sample = re.compile(r'^[a-z_]+\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)+\} -?[0-9.e+-]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line
    # the latest night's medians, as Prometheus's own parser reads them
    latest = history.History(root).entries()[-1]
    medians = {
        (s.labels["target"], s.labels["workload"], s.labels["metric"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "bench_metric_median"
    }
    assert medians[("bare", "cmd", METRIC)] == next(
        row["median"] for row in latest.summary if row["metric"] == METRIC
    )
    frame = pd.read_parquet(root / "history.parquet")
    assert frame["run_id"].nunique() == RUNS
    assert {"run_id", "created_at", "target", "workload", "metric", "median"} <= set(frame)


class Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def changed_stack(built) -> tuple[list[history.Entry], subprocess.CompletedProcess[str], str]:
    """One more night, after the index was edited to say that last night ran another kernel and
    torch, with a webhook listening: the history before, the run, and the webhook's URL."""
    suite, root, _ = built
    store = history.History(root)
    entries = store.entries()
    entries[-1].targets["bare"]["kernel"] = "6.1.0-old"
    entries[-1].targets["bare"]["torch"] = "2.12.0"
    store.save(entries)
    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook/secret-token"
    try:
        done = nightly(suite, root, env={**slowed(SLOWDOWN), "BENCH_ALERT_WEBHOOK": url})
    finally:
        server.shutdown()
    return entries, done, url


def test_a_fingerprint_change_is_an_event_and_not_compared_across(built, changed_stack) -> None:
    _, root, _ = built
    entries, done, _ = changed_stack
    assert "fingerprint change: bare: kernel '6.1.0-old' -> " in done.stderr
    newest = history.History(root).entries()[-1]
    assert newest.events and newest.compared_with == entries[-2].run_id  # skips the odd one
    alert = (root / "alerts" / f"{newest.run_id}.md").read_text()
    assert "## Fingerprint changes since the previous run of this suite" in alert


def test_webhook_gets_the_alert_and_its_url_is_never_stored(built, changed_stack) -> None:
    _, root, _ = built
    entries, done, _ = changed_stack
    assert "webhook: sent (HTTP 204)" in done.stderr, done.stderr
    (payload,) = Hook.received
    assert payload["suite"] == "nightly" and payload["text"].startswith("# bench nightly")
    kernel, torch = (entries[-2].targets["bare"][key] for key in ("kernel", "torch"))
    assert payload["events"] == [
        f"bare: kernel '6.1.0-old' -> {kernel!r}",
        f"bare: torch '2.12.0' -> {torch!r}",
    ]
    stored = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".parquet"]
    assert not [p for p in stored if "secret-token" in p.read_text(errors="replace")]


def test_pruning_keeps_summaries(built) -> None:
    suite, root, _ = built
    done = nightly(suite, root, "--keep", "3")
    assert "pruned (summary kept):" in done.stdout
    entries = history.History(root).entries()
    assert [bool(e.path) for e in entries].count(True) == 3
    assert not (root / "runs" / "nightly" / entries[0].run_id).exists()
    assert history.series(entries)["run_id"].nunique() == len(entries)


def test_a_second_nightly_on_the_same_history_is_refused(built) -> None:
    suite, root, _ = built
    before = sorted(p.name for p in (root / "runs" / "nightly").iterdir())
    # The longest slowdown keeps the first night's cells going well past the second's start.
    first = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "nightly", str(suite), "--history", str(root)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **slowed("10")},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while "pid" not in _read(root / "nightly.lock") and time.monotonic() < deadline:
        time.sleep(0.05)
    second = nightly(suite, root)
    stdout, stderr = first.communicate(timeout=300)
    assert second.returncode == 2
    assert f"another bench nightly is running (pid {first.pid} since" in second.stderr
    assert "nothing was changed" in second.stderr
    assert first.returncode in (0, 1), stderr
    after = sorted(p.name for p in (root / "runs" / "nightly").iterdir())
    assert len(after) == len(before) + 1  # only the first run's directory was added
    assert run_dir_of(subprocess.CompletedProcess([], 0, stdout, "")).name == after[-1]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
