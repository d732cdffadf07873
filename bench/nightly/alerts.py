"""What a noteworthy night leaves for people: a Markdown alert in the history, and the same
text posted to a webhook when ``BENCH_ALERT_WEBHOOK`` names one."""

from __future__ import annotations

from pathlib import Path

from bench import results
from bench.nightly import webhook
from bench.nightly.record import Outcome

ALERTS = "alerts"
WEBHOOK_ENV = "BENCH_ALERT_WEBHOOK"


def alert_text(outcome: Outcome, report: Path | None) -> str:
    """The Markdown summary: the verdict, fingerprint events, regressions, where to look."""
    entry = outcome.entry
    lines = [f"# bench nightly: {entry.suite}, run {entry.run_id}", ""]
    lines.append(f"- **status**: {entry.status}")
    base = outcome.previous.run_id if outcome.previous else "none (first comparable run)"
    lines.append(f"- **compared with**: {base}")
    lines.append(f"- **verdict**: {entry.verdict}")
    if outcome.failed_cells:
        lines.append(f"- **failed cells**: {outcome.failed_cells}")
    if report is not None:
        lines.append(f"- **report**: {report}")
    if outcome.events:
        lines += ["", "## Fingerprint changes since the previous run of this suite", ""]
        lines += [f"- {event}" for event in outcome.events]
    if outcome.comparison is not None and outcome.regressions:
        rows = outcome.comparison.regressions
        lines += ["", "## Regressions", ""]
        lines += [
            f"- {r.target} · {r.workload} · {r.metric}: {r.change:+.1%} "
            f"[{r.ci_low - 1:+.1%}, {r.ci_high - 1:+.1%}], p={r.p_value:.3g}"
            for r in rows.itertuples(index=False)
        ]
    return "\n".join(lines) + "\n"


def write_alert(root: Path, outcome: Outcome, report: Path | None) -> Path:
    """``root/alerts/<run-id>.md``, written atomically."""
    path = root / ALERTS / f"{outcome.entry.run_id}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    results.write_atomic(path, alert_text(outcome, report))
    return path


def post_webhook(
    url: str, outcome: Outcome, text: str, timeout_s: float = webhook.DEADLINE_S
) -> str:
    """POST the alert as JSON (``text`` is what chat webhooks display) within ``timeout_s``
    overall; "sent" or why not, in words that never include the URL (it comes from the
    environment, often holds a token, and is never written into the history or the log)."""
    payload = {
        "text": text,
        "suite": outcome.entry.suite,
        "run_id": outcome.entry.run_id,
        "regressions": outcome.regressions,
        "events": outcome.events,
        "failed_cells": outcome.failed_cells,
    }
    return webhook.post(url, payload, timeout_s)
