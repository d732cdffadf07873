"""A run's key metrics pushed to a real Pushgateway and read back through a real Prometheus
that scrapes it (Debian's prometheus and prometheus-pushgateway, started here on loopback
ports and stopped after): ``bench export --pushgateway`` and ``bench nightly --pushgateway``,
and what a user sees when the gateway is down or refuses."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import results
from bench.metrics import KEY_METRICS
from bench.nightly import history
from tests.conftest import bench_cli
from tests.test_run_e2e import run_dir_of

pytestmark = pytest.mark.slow  # two daemons, a run and two nights

SUITE = """\
name: {name}
repetitions: 3
targets:
  - {{name: bare, kind: local, baseline: true}}
workloads:
  - {{name: cmd, kind: command, argv: [sleep, "0.01"]}}
"""
SCRAPE = """\
global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: pushgateway
    honor_labels: true  # keep the pushed job and suite labels
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, answer.read()
    except OSError:
        return 0, b""


class Daemon:
    """A server started here, answering on ``url`` once ready; ``stop`` ends it for sure."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while _get(f"{self.url}/-/ready")[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{argv[0]} did not become ready:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A Pushgateway (no persistence file: it forgets on exit) and a Prometheus scraping it
    every second: their base URLs. Both are gone after the module."""
    if not (shutil.which("prometheus") and shutil.which("prometheus-pushgateway")):
        pytest.skip("Debian's prometheus and prometheus-pushgateway are not installed")
    root = tmp_path_factory.mktemp("prometheus")
    gateway_port, prometheus_port = free_port(), free_port()
    gateway = Daemon(
        ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{gateway_port}"],
        gateway_port,
        root / "pushgateway.log",
    )
    config = root / "prometheus.yml"
    config.write_text(SCRAPE.format(port=gateway_port))
    try:
        prometheus = Daemon(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            prometheus_port,
            root / "prometheus.log",
        )  # fmt: skip
    except BaseException:
        gateway.stop()
        raise
    try:
        yield gateway.url, prometheus.url
    finally:
        prometheus.stop()
        gateway.stop()
    assert gateway.process.returncode is not None and prometheus.process.returncode is not None


def query(prometheus: str, promql: str, until: str, timeout_s: float = 20) -> list[dict]:
    """The instant vector of ``promql`` once one of its series has a label value ``until``
    (the scrape after a push may take a second or two)."""
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = _get(url)
        found = json.loads(body)["data"]["result"] if status == 200 else []
        if any(until in series["metric"].values() for series in found):
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{promql}: no series with {until!r} after {timeout_s} s: {found}")
        time.sleep(0.2)


def by_key(found: list[dict]) -> dict[tuple[str, str, str], float]:
    """(target, workload, metric) -> value, from a Prometheus API answer."""
    return {
        (s["metric"]["target"], s["metric"]["workload"], s["metric"]["metric"]): float(
            s["value"][1]
        )
        for s in found
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A small real run (a command cell, three repetitions)."""
    root = tmp_path_factory.mktemp("run")
    (root / "suite.yaml").write_text(SUITE.format(name="pushed"))
    done = bench_cli(
        "run", str(root / "suite.yaml"), "--results-dir", str(root / "r"), "--no-report"
    )
    assert done.returncode == 0, done.stderr
    return run_dir_of(done)


def test_an_exported_run_reads_back_from_prometheus_as_its_medians(servers, run) -> None:
    gateway, prometheus = servers
    done = bench_cli("export", str(run), "--pushgateway", gateway)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # pushed instead of writing a table
    run_id = results.run_name(run, results.read_manifest(run))
    assert f"pushed: run {run_id} to {gateway} (" in done.stderr
    query(prometheus, 'bench_run_info{suite="pushed"}', until=run_id)
    found = query(prometheus, 'bench_metric_median{suite="pushed"}', until="pushed")
    samples = results.load(run)
    keyed = samples[samples["metric"].isin(KEY_METRICS)]
    expected = keyed.groupby(["target", "workload", "metric"])["value"].median().to_dict()
    assert by_key(found) == expected and expected
    assert {s["metric"]["job"] for s in found} == {"bench"}
    manifest = results.read_manifest(run)
    (stamp,) = query(prometheus, 'bench_last_run_timestamp_seconds{suite="pushed"}', "pushed")
    finished = manifest.finished_at or manifest.created_at
    assert float(stamp["value"][1]) == pytest.approx(time_of(finished), abs=0.001)


def time_of(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_night_pushes_what_its_index_holds(servers, tmp_path) -> None:
    gateway, prometheus = servers
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(name="pushed-nightly"))
    root = tmp_path / "history"
    done = bench_cli("nightly", str(suite), "--history", str(root), "--pushgateway", gateway)
    assert done.returncode == 0, done.stderr
    assert f"pushed: {gateway} (" in done.stdout
    entry = history.History(root).entries()[-1]
    query(prometheus, 'bench_run_info{suite="pushed-nightly"}', until=entry.run_id)
    found = query(prometheus, 'bench_metric_median{suite="pushed-nightly"}', "pushed-nightly")
    expected = {
        (row["target"], row["workload"], row["metric"]): row["median"]
        for row in entry.summary
        if row["metric"] in KEY_METRICS
    }
    assert by_key(found) == expected and expected
    (regressions,) = query(prometheus, 'bench_regressions{suite="pushed-nightly"}', "bench")
    assert regressions["value"][1] == "0"


def test_a_gateway_that_is_down_or_refuses_is_one_line_and_status_1(servers, run) -> None:
    gateway, _ = servers
    nobody = f"http://127.0.0.1:{free_port()}"
    down = bench_cli("export", str(run), "--pushgateway", nobody)
    assert down.returncode == 1 and down.stdout == "", down.stderr
    assert down.stderr.count("\n") == 1, down.stderr
    assert down.stderr.startswith(f"error: Pushgateway {nobody}: run ")
    assert "not pushed: Connection refused" in down.stderr
    refused = bench_cli("export", str(run), "--pushgateway", f"{gateway}/no/such/prefix")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "not pushed: HTTP 404" in refused.stderr


def test_a_night_whose_push_fails_is_recorded_and_exported_all_the_same(tmp_path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(name="unpushed"))
    root, nobody = tmp_path / "history", f"http://127.0.0.1:{free_port()}"
    done = bench_cli("nightly", str(suite), "--history", str(root), "--pushgateway", nobody)
    assert done.returncode == 1, done.stderr
    assert f"warning: Pushgateway {nobody}: run " in done.stderr
    assert (
        "Connection refused" in done.stderr and "recorded and exported all the same" in done.stderr
    )
    (entry,) = history.History(root).entries()
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert run_dir == root / entry.path and (run_dir / "samples.jsonl").is_file()
    assert f'run_id="{entry.run_id}"' in (root / "metrics.prom").read_text()
    assert (root / "history.parquet").is_file()
