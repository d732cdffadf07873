"""Live progress for ``bench run``: one bar per cell, on stderr.

Progress goes to stderr so that stdout stays a clean record (the summary table and, last, the
run directory) that scripts can parse with ``tail -n 1``. The overall bar says how long the
rest of the run should take (``bench.eta``), from the cells finished so far.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from bench import eta
from bench.plan import Cell
from bench.results import CellRecord
from bench.runner import Observer


class RichObserver(Observer):
    """Renders runner callbacks as rich progress bars."""

    def __init__(
        self, console: Console, earlier: Mapping[tuple[str, str], float] | None = None
    ) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            _LeftColumn(self),
            console=console,
            refresh_per_second=4,  # cheap: the controller shares the CPU with the worker
        )
        self.overall: int | None = None
        self.tasks: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.earlier = earlier
        self.remaining: eta.Remaining | None = None

    def __enter__(self) -> RichObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def run_started(self, cells: list[Cell]) -> None:
        """Add the overall bar, with the time left when earlier runs say."""
        self.remaining = eta.Remaining(cells, self.earlier)
        self.overall = self.progress.add_task("[bold]cells", total=len(cells))

    def cell_started(self, cell: Cell) -> None:
        """Add this cell's bar (indeterminate until the worker reports its total)."""
        name = escape(f"{cell.workload} on {cell.target} #{cell.repetition + 1}")  # a[k=v]
        self.names[cell.index] = name
        self.tasks[cell.index] = self.progress.add_task(f"{name}: provisioning", total=None)
        if self.remaining is not None:
            self.remaining.started(cell)

    def cell_phase(self, cell: Cell, phase: str) -> None:
        """Show the start-up phase reached."""
        label = {"provisioned": "starting worker", "ready": "running", "first_step": "running"}
        text = f"{self.names[cell.index]}: {label.get(phase, phase)}"
        self.progress.update(self.tasks[cell.index], description=text)

    def cell_progress(self, cell: Cell, done: int, total: int) -> None:
        """Advance this cell's bar."""
        self.progress.update(self.tasks[cell.index], completed=done, total=total)

    def cell_finished(self, cell: Cell, record: CellRecord) -> None:
        """Mark the bar done (green) or failed (red) and advance the overall bar."""
        task = self.tasks[cell.index]
        name = self.names[cell.index]
        if record.status == "ok":
            total = self.progress.tasks[task].total or 1
            mark = "[green]✓" if record.verdict == "VALID" else "[yellow]✓ INVALID"
            self.progress.update(task, description=f"{name} {mark}", total=total, completed=total)
        else:
            self.progress.update(task, description=f"{name} [red]✗ failed")
            # the reason, on one line above the bars: a bar says only that the cell failed
            self.progress.console.print(
                f"cell failed: {cell.workload} on {cell.target} #{cell.repetition + 1}: "
                f"{record.error}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        if self.overall is not None and self.remaining is not None:
            self.remaining.finished(cell, record.duration_s)
            self.progress.advance(self.overall)

    def note(self, message: str) -> None:
        """A preparation step (building, pulling) printed above the bars."""
        self.progress.console.print(f"[dim]·[/] {escape(message)}", highlight=False, soft_wrap=True)


class _LeftColumn(ProgressColumn):
    """The time left in the run, on the overall bar only, re-estimated at every refresh."""

    def __init__(self, observer: RichObserver) -> None:
        super().__init__()
        self.observer = observer

    def render(self, task: Task) -> Text:
        remaining = self.observer.remaining
        if task.id != self.observer.overall or remaining is None:
            return Text("")
        return Text(eta.say(remaining.seconds()), style="progress.remaining")
