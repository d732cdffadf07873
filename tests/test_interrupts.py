"""Deferred interrupts: a signal inside the block is raised only when the block is done."""

from __future__ import annotations

import os
import signal

import pytest

from bench import interrupts


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_is_held_until_the_block_ends(sig: signal.Signals) -> None:
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    finished = False
    try:
        with pytest.raises(KeyboardInterrupt), interrupts.deferred():
            os.kill(os.getpid(), sig)
            finished = True  # still running after the signal arrived
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_signal_no_interrupt() -> None:
    with interrupts.deferred():
        value = 1
    assert value == 1
