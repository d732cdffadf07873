"""``bench gc``: finding what killed or crashed runs left behind, and removing only what no
live run owns (everything with ``--all``).

Only the orchestration lives here; what each target kind leaves and how it goes is the kind's
``Collector`` (``bench.leftovers``). A pass reads the records of dead invocations
(``bench.state``), hands each recorded item to the collector of its kind in teardown order and
keeps in the record what could not be removed, then lets every collector look for the
artefacts it marks (worker directories, QEMU guests, containers). An owner is alive while that
very process runs (pid and start time match), so a live run's artefacts are never touched.
"""

from __future__ import annotations

from bench import owner, state
from bench.leftovers import Collector, Report, Sweep
from bench.targets import registry


def collect(docker_host: str | None, everything: bool, dry_run: bool) -> Report:
    """Clean every kind of leftover whose owner is gone (all of them with ``everything``)."""
    collectors = _collectors()
    report = Report(removed={h: [] for c in collectors for h in c.headings})
    sweep = Sweep(everything=everything, dry_run=dry_run, docker_host=docker_host, report=report)
    _records(sweep, collectors)
    for collector in collectors:
        collector.unrecorded(sweep)
    return report


def _collectors() -> list[Collector]:
    """A fresh collector of every kind that leaves something behind, in teardown order."""
    found = [kind.leftovers() for kind in registry.describe()]
    return sorted((c for c in found if c is not None), key=lambda c: c.stage)


def _records(sweep: Sweep, collectors: list[Collector]) -> None:
    """Clean what dead invocations recorded; an item that could not be cleaned stays. An item
    of a kind no collector knows is forgotten (nothing here can remove it)."""
    by_item = {name: c for c in collectors for name in c.records}
    last = max((c.stage for c in collectors), default=0) + 1
    for path, body in state.records():
        if not sweep.everything and owner.alive(str(body.get("owner", ""))):
            continue
        left = {}
        items = [
            (key, item, by_item.get(str(item.get("kind")))) for key, item in body["items"].items()
        ]
        items.sort(key=lambda entry: entry[2].stage if entry[2] else last)
        for key, item, collector in items:
            done = collector.recorded(item, sweep) if collector else not sweep.dry_run
            if not done:
                left[key] = item
        if not sweep.dry_run:
            state.rewrite(path, body, left)
