"""A run's key metrics in the Prometheus text format (``bench.promexport``) and the nightly
``metrics.prom``, read back by prometheus_client's own parser; Pushgateway addresses checked
before anything runs; the nightly exports where pyarrow cannot be imported. No daemon here: the
round trip through a real Pushgateway and Prometheus is tests/test_prometheus.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench import promexport
from bench.cli import main
from bench.errors import InputError
from bench.nightly import export, history, lock, record
from tests.conftest import REPO

# Label values a target or workload name may hold that the text format must escape (quote,
# backslash, line break) or pass through untouched (braces, commas, non-ASCII).
ODD = ['say "hi"', "back\\slash", "two\nlines", 'all\\"\n3', "ünï, cödé {x}"]
KEY, OTHER = "train.throughput", "train.data_wait_s"  # a key metric and one that is not


def _row(target: str, workload: str, metric: str, median: float) -> dict[str, object]:
    return {"workload": workload, "target": target, "metric": metric, "unit": "samples/s",
            "n": 3, "median": median, "q1": median, "q3": median,
            "ci_low": None, "ci_high": None}  # fmt: skip


def _summary() -> list[dict[str, object]]:
    """One key metric per odd name (as target and as workload), medians no decimal rounds
    exactly, and a metric that is not key."""
    rows = [_row(name, "w", KEY, 1 / (i + 3)) for i, name in enumerate(ODD)]
    rows += [_row("bare", name, KEY, 1e9 + i / 7) for i, name in enumerate(ODD)]
    return [*rows, _row("bare", "w", OTHER, 2.5)]


def _parsed(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """metric name -> sorted labels -> value, as Prometheus's parser reads the text."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _medians(suite: str, summary: list[dict[str, object]]) -> dict[tuple, float]:
    return {
        tuple(sorted({"suite": suite, **{k: str(r[k]) for k in promexport.METRIC_LABELS[1:]}}
                     .items())): r["median"]
        for r in summary
        if r["metric"] == KEY
    }  # fmt: skip


def test_odd_label_values_and_medians_read_back_exactly() -> None:
    run = promexport.Published('s"\\\n', "r-1", 1_700_000_000.125, _summary(), 2, 1)
    parsed = _parsed(generate_latest(promexport.registry(run)).decode())
    assert parsed["bench_metric_median"] == _medians('s"\\\n', run.summary)
    suite = (("suite", 's"\\\n'),)
    assert parsed["bench_regressions"] == {suite: 2.0}
    assert parsed["bench_fingerprint_changes"] == {suite: 1.0}
    assert parsed["bench_last_run_timestamp_seconds"] == {suite: 1_700_000_000.125}
    assert parsed["bench_run_info"] == {(("run_id", "r-1"), *suite): 1.0}


def test_a_run_outside_a_history_has_no_comparison_gauges() -> None:
    run = promexport.Published("s", "r-1", 1.0, _summary())
    parsed = _parsed(generate_latest(promexport.registry(run)).decode())
    assert "bench_regressions" not in parsed and "bench_fingerprint_changes" not in parsed
    assert len(parsed["bench_metric_median"]) == 2 * len(ODD)  # the key metric only


def _history(root: Path) -> history.Entry:
    """A history holding one run's index entry with odd names (no run directory needed)."""
    entry = history.Entry("r1", "nightly", "h", "runs/s/r1", "2026-01-02T03:04:05Z",
                          "2026-01-02T03:05:06Z", "complete", {}, _summary())  # fmt: skip
    with lock.locked(root):
        history.History(root).append(entry)
    return entry


def test_metrics_prom_replaces_the_old_file_whole_and_is_readable_by_all(tmp_path) -> None:
    root = tmp_path / "history"
    entry = _history(root)
    prom = root / export.PROM
    prom.write_text("old complete text\n")
    reader = prom.open()  # a textfile collector in the middle of reading the old file
    umask = os.umask(0o077)  # a root cron job's umask on a hardened host
    try:
        written, _ = export.export(root, record.Outcome(entry, None, None, ["x"], 0))
    finally:
        os.umask(umask)
    assert written == prom
    assert reader.read() == "old complete text\n"  # the old file, untouched: a rename
    reader.close()
    assert oct(prom.stat().st_mode & 0o777) == oct(0o644)
    parsed = _parsed(prom.read_text())
    assert parsed["bench_metric_median"] == _medians("nightly", entry.summary)
    assert parsed["bench_fingerprint_changes"] == {(("suite", "nightly"),): 1.0}
    assert parsed["bench_last_run_timestamp_seconds"] == {(("suite", "nightly"),): 1767323106.0}
    assert sorted(p.name for p in root.iterdir()) == [
        "history.parquet",
        "index.jsonl",
        "metrics.prom",
        "nightly.lock",
    ]  # fmt: skip  (no temporary file or directory left behind)


def test_nothing_planted_at_a_predictable_name_is_written_through(tmp_path) -> None:
    """prometheus_client writes ``<path>.<pid>.<thread>`` first; beside the real file that
    name could be a planted link to any file the nightly job (root) may write."""
    root = tmp_path / "history"
    entry = _history(root)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    planted = root / f"{export.PROM}.{os.getpid()}.{threading.current_thread().ident}"
    planted.symlink_to(victim)
    export.export(root, record.Outcome(entry, None, None, [], 0))
    assert victim.read_text() == "precious\n" and planted.is_symlink()
    assert "bench_metric_median" in (root / export.PROM).read_text()


NO_PYARROW = "import sys; sys.modules['pyarrow'] = None  # what an absent package looks like\n"


def without_pyarrow(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where ``import pyarrow`` fails as if not installed."""
    return subprocess.run(
        [sys.executable, "-c", NO_PYARROW + code, *args],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip


def test_without_pyarrow_the_nightly_exports_skip_only_the_parquet_file(tmp_path) -> None:
    root = tmp_path / "history"
    _history(root)
    done = without_pyarrow(
        "import json, pandas\n"
        "from pathlib import Path\n"
        "from bench.nightly import export, history, record\n"
        "root = Path(sys.argv[1])\n"
        "try:\n"
        "    pandas.DataFrame({'a': [1]}).to_parquet(root / 'probe.parquet')\n"
        "    wrote = True\n"
        "except ImportError:\n"
        "    wrote = False\n"
        "outcome = record.Outcome(history.History(root).entries()[-1], None, None, [], 0)\n"
        "seen = []\n"
        "prom, parquet = export.export(root, outcome, seen.append)\n"
        "print(json.dumps([wrote, str(prom), parquet, seen]))\n",
        str(root),
    )
    assert done.returncode == 0, done.stderr
    wrote, prom, parquet, seen = json.loads(done.stdout)
    assert wrote is False  # pandas could not write Parquet in there
    assert prom == str(root / export.PROM) and parquet is None
    assert seen == [export.NO_PYARROW] and "isolation-bench[parquet]" in seen[0]
    assert not (root / export.PARQUET).exists()
    assert "bench_metric_median" in (root / export.PROM).read_text()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("127.0.0.1:9091", "no scheme"),
        ("pushgateway:9091", "the scheme is not http or https"),
        ("ftp://gw:9091", "the scheme is not http or https"),
        ("http://", "no host"),
        ("http://gw:99999", "cannot be parsed"),
        ("http://gw:9091/?job=x", "a query or fragment"),
        ("http://gw 9091", "contains a space"),
        ("http://user:s3cret@gw:9091", "credentials in the URL are not supported"),
    ],
)
def test_a_url_no_push_can_go_to_is_bad_input(url: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem) as raised:
        promexport.check_url(url)
    assert "s3cret" not in raised.value.one_line()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9091", "https://gw.example.com/prefix/"])
def test_a_gateway_address_with_or_without_a_path_is_accepted(url: str) -> None:
    assert promexport.check_url(url) == url


def cli(*args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return done.exit_code, done.stdout, done.stderr


def test_a_bad_pushgateway_url_is_one_line_and_status_2_before_anything_runs(tmp_path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ntargets: [{name: bare, kind: local}]\n"
                     "workloads: [{name: c, kind: command, argv: [true]}]\n")  # fmt: skip
    status, _, err = cli("nightly", str(suite), "--history", str(tmp_path / "h"),
                         "--pushgateway", "gw:9091")  # fmt: skip
    assert status == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --pushgateway 'gw:9091': the scheme is not http or https")
    assert not (tmp_path / "h").exists()  # refused before the night began
    status, out, err = cli("export", str(tmp_path), "--pushgateway", "localhost")
    assert (status, out) == (2, "") and err.count("\n") == 1, err
    assert "error: --pushgateway 'localhost': no scheme" in err


def test_only_one_run_can_be_pushed(tmp_path) -> None:
    status, out, err = cli("export", str(tmp_path), "--pushgateway", "http://127.0.0.1:1")
    assert (status, out) == (2, "") and err.count("\n") == 1, err
    assert "not a run directory (no manifest.json)" in err


@pytest.mark.slow  # a real night
def test_a_night_without_pyarrow_writes_everything_but_the_parquet_file(tmp_path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\nrepetitions: 2\ntargets: [{name: bare, kind: local}]\n"
                     "workloads: [{name: c, kind: command, argv: [sleep, '0.01']}]\n")  # fmt: skip
    root = tmp_path / "history"
    done = without_pyarrow(
        "from bench.cli import entry\nentry()\n", "nightly", str(suite), "--history", str(root)
    )
    assert done.returncode == 0, done.stderr
    assert f"warning: {export.NO_PYARROW}" in " ".join(done.stderr.split())
    assert f"exports: {root / export.PROM}\n" in done.stdout
    (entry,) = history.History(root).entries()
    assert (root / entry.path / "report.html").is_file()
    assert f'run_id="{entry.run_id}"' in (root / export.PROM).read_text()
    assert not (root / export.PARQUET).exists()
