"""The nightly webhook: one overall deadline, a malformed URL named but never shown, and a
night that still exports and prunes whatever the webhook does."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.nightly import alerts, export, history, record
from tests.conftest import bench_cli

SECRET = "secret-token-4711"
MALFORMED = {
    f"hooks.example.com/{SECRET}": "no scheme",
    f"http://hooks.example.com:99999/{SECRET}": "cannot be parsed",
    f"http://hooks.example.com:{SECRET}/x": "cannot be parsed",
    f"http://[hooks.example.com/{SECRET}": "cannot be parsed",
    f"ftp://hooks.example.com/{SECRET}": "the scheme is not http or https",
    f"http:///{SECRET}": "no host",
    f"http://hooks.example.com/{SECRET} x": "contains a space",
    f"http://hooks.example.com/{SECRET}\r\nX-Injected: 1": "contains a space",
}


def outcome() -> record.Outcome:
    entry = history.Entry("r1", "s", "h", "", "", None, "failed", {}, [])
    return record.Outcome(entry, None, None, [], failed_cells=1)


@pytest.mark.parametrize("url", list(MALFORMED))
def test_a_malformed_url_is_named_but_never_shown(url: str) -> None:
    said = alerts.post_webhook(url, outcome(), "text")
    assert said.startswith("not sent: webhook URL is malformed (" + MALFORMED[url]), said
    assert SECRET not in said and "hooks.example.com" not in said


def test_a_failed_request_does_not_show_the_url() -> None:
    said = alerts.post_webhook(f"http://127.0.0.1:1/{SECRET}", outcome(), "text")
    assert said.startswith("not sent: ") and SECRET not in said and "127.0.0.1" not in said


@pytest.fixture
def trickling() -> Iterator[str]:
    """A real server that accepts, reads the request and answers one byte at a time, never
    finishing: each byte arrives well within urllib's per-operation timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000:
                if stop.wait(0.2):
                    return
                connection.sendall(bytes([byte]))

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/{SECRET}"
    stop.set()
    listener.close()


def test_a_server_that_never_finishes_answering_is_abandoned_at_the_deadline(trickling) -> None:
    said: list[str] = []
    caller = threading.Thread(
        target=lambda: said.append(alerts.post_webhook(trickling, outcome(), "t", timeout_s=1)),
        daemon=True,
    )
    caller.start()
    caller.join(20)  # only a post without an overall deadline gets anywhere near this
    assert said == ["not sent: no answer within 1 s"]


SUITE = """\
name: hookfail
repetitions: 1
targets:
  - {name: gone, kind: docker, image: "none:x", docker_host: "unix:///nonexistent/docker.sock"}
workloads:
  - {name: t, kind: train_step, steps: 3}
"""


@pytest.mark.slow
def test_a_night_with_a_malformed_webhook_url_still_exports_and_prunes(tmp_path: Path) -> None:
    suite, root = tmp_path / "suite.yaml", tmp_path / "history"
    suite.write_text(SUITE)
    seen = []
    for url in (f"hooks.example.com/{SECRET}", f"https://hooks.example.com:x/{SECRET}"):
        done = bench_cli(
            "nightly", str(suite), "--history", str(root), "--keep", "1",
            env={alerts.WEBHOOK_ENV: url},
        )  # fmt: skip
        assert done.returncode == 1, done.stderr  # the cell failed: the documented status
        assert "Traceback" not in done.stderr
        assert "webhook: not sent: webhook URL is malformed (" in done.stderr
        assert (root / export.PROM).is_file() and (root / export.PARQUET).is_file()
        seen += [done.stdout, done.stderr]
    assert "pruned (summary kept): " in done.stdout
    seen += [p.read_text(errors="replace") for p in root.rglob("*") if p.is_file()]
    assert not [text for text in seen if SECRET in text or "hooks.example" in text]
