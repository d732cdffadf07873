"""POST a JSON alert to a webhook, within one overall deadline, never revealing the URL.

The URL usually carries a secret (chat webhooks put the token in the path), so no message
here is built from it or from an exception that may quote it: a malformed URL is described
by what is wrong with it, a failed request by the kind of failure. A webhook is a side
effect of a nightly run: whatever happens here is reported as text, never raised, so the
run's exports and pruning still happen.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEADLINE_S = 10.0  # name lookup, connect, send and answer together


def malformed(url: str) -> str | None:
    """What is wrong with ``url`` (never a part of it), or None when it can be posted to."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return "contains a space or a control character"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # a port that is not a number in 0-65535 raises here
    except ValueError:
        return "cannot be parsed (a bad port or bracketed host)"
    if not parts.scheme:
        return "no scheme"
    if parts.scheme not in ("http", "https"):
        return "the scheme is not http or https"
    if not parts.hostname:
        return "no host"
    if port == 0:
        return "port 0"
    return None


def post(url: str, payload: dict[str, Any], deadline_s: float = DEADLINE_S) -> str:
    """POST ``payload`` as JSON; "sent (HTTP <status>)" or "not sent: <why>".

    The request runs in a daemon thread joined with the deadline: urllib's timeout bounds
    each socket operation, not the whole exchange, and the name lookup has none at all, so
    only a deadline outside the request bounds both a hung resolver and a server that
    trickles its answer. A request still hanging is abandoned (the thread ends with the
    process)."""
    problem = malformed(url)
    if problem is not None:
        return f"not sent: webhook URL is malformed ({problem})"
    answer: list[str] = []
    worker = threading.Thread(
        target=lambda: answer.append(_send(url, payload, time.monotonic() + deadline_s)),
        name="webhook",
        daemon=True,
    )
    worker.start()
    worker.join(deadline_s)
    if not answer:
        return f"not sent: no answer within {deadline_s:g} s"
    return answer[0]


def _send(url: str, payload: dict[str, Any], deadline: float) -> str:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        timeout = max(0.1, deadline - time.monotonic())
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return f"sent (HTTP {response.status})"
    except Exception as exc:  # a failed notification must not stop the night
        return f"not sent: {describe(exc)}"


def describe(exc: BaseException) -> str:
    """The kind of failure, from fields that cannot contain the URL (status codes, error
    names, the system's message for an errno), never from the exception's text."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return describe(exc.reason)
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({type(exc).__name__}, {exc.reason or 'no reason given'})"
    if isinstance(exc, socket.gaierror):
        return f"name lookup failed ({exc.strerror})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, http.client.HTTPException):
        return f"bad HTTP answer ({type(exc).__name__})"
    return type(exc).__name__
