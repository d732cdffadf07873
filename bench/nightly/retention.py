"""Which runs of a history keep their directory: the newest ``keep`` ones (``prune``), and none
whose directory was deleted by hand (``forget_missing``). A run without its directory keeps its
summary in the index, so trends and change points still cover it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from bench.errors import ResultsError
from bench.nightly import history
from bench.results.model import MANIFEST


def forget_missing(root: Path, entries: list[history.Entry]) -> list[str]:
    """Entries whose run directory is gone (deleted by hand) become summaries only, as pruned
    ones are, so the comparison looks further back; one line for the user about each."""
    out = []
    for entry in entries:
        if entry.path and not (root / entry.path / MANIFEST).is_file():
            out.append(
                f"run {entry.run_id}: its directory {root / entry.path} is missing; compared "
                "with the newest earlier run still stored (its summary stays in the history)"
            )
            entry.path = ""
    return out


def prune(root: Path, keep: int, warn: Callable[[str], None] = lambda line: None) -> list[str]:
    """Delete the run directories of all but the newest ``keep`` runs in the index; their
    summaries stay, so trends and change points still cover them. An entry whose path leaves
    the history is left as it is, and ``warn`` is told (one line each)."""
    store = history.History(root)
    entries = store.entries()
    pruned = []
    for entry in entries[: max(len(entries) - keep, 0)]:
        if entry.path:
            try:
                path = history.run_path(root, entry)
            except ResultsError as exc:
                warn(exc.one_line())
                continue
            shutil.rmtree(path, ignore_errors=True)
            pruned.append(entry.run_id)
            entry.path = ""
    if pruned:
        store.save(entries)
    return pruned
