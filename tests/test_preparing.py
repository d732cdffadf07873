"""Targets are prepared side by side, and a preparation's failure reaches the caller."""

from __future__ import annotations

import threading

import pytest

from bench.preparing import concurrently


def test_jobs_run_at_the_same_time() -> None:
    both = threading.Barrier(2, timeout=10)  # only passes when both jobs are in it at once

    def job(name: str):
        return lambda: (both.wait(), name)[1]

    assert concurrently({"a": job("a"), "b": job("b")}) == {"a": "a", "b": "b"}


def test_the_first_error_is_raised_after_every_job_ended() -> None:
    finished = threading.Event()

    def slow() -> str:
        finished.wait(0.3)
        finished.set()
        return "done"

    def broken() -> str:
        raise KeyError("no such engine")

    with pytest.raises(KeyError, match="no such engine"):
        concurrently({"slow": slow, "broken": broken})
    assert finished.is_set()  # the other job was not abandoned half-way


def test_one_job_runs_in_the_callers_thread() -> None:
    caller = threading.current_thread()
    assert concurrently({"only": lambda: threading.current_thread() is caller}) == {"only": True}
