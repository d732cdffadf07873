"""Headless Chromium driven over the DevTools protocol (``--remote-debugging-pipe``), so a test
can open a report the way a reader's browser does and ask what it decoded and fetched.

The pipe protocol is JSON messages separated by NUL bytes on file descriptors 3 (to the
browser) and 4 (from it); no extra client library is needed.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BINARY = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--remote-debugging-pipe",
    "--disable-background-networking",  # the browser's own update and account calls
    "--no-first-run",
)
DECODED_WIDTHS = (
    "Promise.all(Array.from(document.images).map("
    "i => i.decode().then(() => i.naturalWidth, () => 0)))"
)


class Chromium:
    """One headless browser; use as a context manager."""

    def __init__(self, binary: str | None = BINARY, timeout_s: float = 30.0) -> None:
        if binary is None:
            raise FileNotFoundError("chromium is not installed")
        to_browser, self._browser_in = os.pipe()
        self._browser_out, from_browser = os.pipe()

        def wire() -> None:  # in the child: the protocol's fixed descriptors
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self._process = subprocess.Popen(
            [binary, *FLAGS, "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=wire,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._timeout_s = timeout_s
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._browser_in)
        os.close(self._browser_out)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> Any:
        """Send one command and return its result (raises on a protocol error)."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._browser_in, json.dumps(message).encode() + b"\0")
        answer = self.wait(lambda m, wanted=self._id: m.get("id") == wanted)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def wait(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first message that matches; events seen on the way are kept in ``events``."""
        deadline = time.monotonic() + self._timeout_s
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if match(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            if select.select([self._browser_out], [], [], left)[0]:
                chunk = os.read(self._browser_out, 1 << 16)
                if not chunk:
                    raise EOFError("chromium exited")
                self._buffer += chunk

    def open(self, page: Path) -> tuple[list[int], list[str]]:
        """Load ``page``; return each image's decoded width (0: failed to decode) and the URL
        of every request the page made, its own included."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        self.call("Network.enable", session=session)
        self.call("Page.enable", session=session)
        self.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        self.wait(lambda m: m.get("method") == "Page.loadEventFired")
        found = self.call(
            "Runtime.evaluate",
            {"expression": DECODED_WIDTHS, "awaitPromise": True, "returnByValue": True},
            session=session,
        )
        requests = [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]
        return found["result"]["value"], requests
