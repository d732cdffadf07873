"""Commands around runs: ``bench validate`` and ``build`` (before), ``gc`` (after a killed
controller), ``doctor`` (this machine's noise sources) and ``targets`` (the kinds)."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import click

from bench.cli.common import err, line, out, translate
from bench.cli.run import print_exposure
from bench.suite import load_suite
from bench.targets import registry


@click.command()
@click.argument("suite", type=click.Path(path_type=Path))  # load_suite: one line for a dir
@translate
def validate(suite: Path) -> None:
    """Check SUITE without running it: schema, names, baseline; prints the plan size."""
    from bench.plan import build_plan

    spec = load_suite(suite)
    cells = build_plan(spec)
    print_exposure(spec)
    only = "; ".join(f"{t.name} only {', '.join(t.workloads)}" for t in spec.targets if t.workloads)
    out.print(
        f"{suite}: ok — {len(spec.targets)} targets × {len(spec.workloads)} workloads × "
        f"{spec.repetitions} repetitions{f' ({only})' if only else ''} = {len(cells)} cells "
        f"({spec.order} order)",
        highlight=False,
    )
    for of, made in spec.swept.items():  # what each matrix expanded to, by the names it runs as
        for name in made:
            out.print(f"  {of[:-1]} {name}", highlight=False, markup=False)


@click.command()
@click.argument("suite", type=click.Path(path_type=Path))  # load_suite: one line for a dir
@translate
def build(suite: Path) -> None:
    """Build the matched artefacts SUITE's targets use: the wheelhouse, the bare-metal venv,
    the container image and the VM guest disk, side by side as bench run prepares them.
    Optional: bench run builds what is missing."""
    from bench import preparing
    from bench.build import groups
    from bench.build.builder import Builder

    spec = load_suite(suite)
    builder = Builder(
        spec.build,
        note=lambda m: err.print(f"· {m}", highlight=False, soft_wrap=True),
        groups=groups.needed(spec.workloads),
        extra=groups.requirements(spec.workloads),
    )
    wanted = [t for t in spec.targets if t.builds()]
    if not wanted:
        out.print(f"{suite}: no target uses built artefacts; nothing to build", highlight=False)
        return
    jobs = {c.name: partial(registry.make_target(c).prepare, builder) for c in wanted}
    made = preparing.concurrently(jobs)
    for config in wanted:
        built = registry.kind(config.kind).built(made[config.name])
        out.print(f"{config.name}: {built}", highlight=False, markup=False)
    wheels = builder.record().get("wheelhouse", {})
    if wheels:
        extra = "".join(f" + {g}" for g in sorted(builder.groups))
        extra += f" + {len(builder.extra)} of the suite's own" if builder.extra else ""
        out.print(
            f"wheelhouse: {wheels['path']} ({len(wheels['files'])} wheels: base{extra})",
            highlight=False,
        )


@click.command()
@click.option("--docker-host", help="Engine to clean (default: $DOCKER_HOST or the local socket).")
@click.option("--all", "everything", is_flag=True, help="Also remove what live runs own.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@translate
def gc(docker_host: str | None, everything: bool, dry_run: bool) -> None:
    """Remove what runs left behind after the controller was killed: local worker processes
    and their temp dirs, remote run directories, static VMs bench booted, VM guests and
    containers.

    Only what bench marked or recorded as its own is touched, and by default only what no
    live bench process owns. Exit status 1 when something could not be removed (it stays
    recorded for the next gc).
    """
    from bench import gc as collector

    verb = "would remove" if dry_run else "removed"
    found = collector.collect(docker_host, everything, dry_run)
    for kind, removed in found.removed.items():
        for item in removed:
            line(f"{verb} {item}")
        out.print(f"{verb} {len(removed)} {kind}", highlight=False)
    for problem in found.unchecked:
        err.print(f"containers: not checked ({problem})", highlight=False, soft_wrap=True)
    for problem in found.problems:
        err.print(f"not removed: {problem}", highlight=False, soft_wrap=True)
    if found.problems:
        sys.exit(1)


@click.command()
def doctor() -> None:
    """Check this machine for what makes benchmark numbers noisy, and say how to fix it.

    Frequency governor, turbo/boost, ASLR, load, swap, memory pressure, other busy processes,
    GPU persistence mode and clocks. bench run records the same checks for every target (in
    its fingerprint) and warns about each problem before the first cell.
    """
    from bench.report.environment import checks_table
    from workloads.environment import check_all

    out.print(checks_table(check_all()))


@click.command()
def targets() -> None:
    """List the target kinds this build can deploy to."""
    for kind in registry.describe():
        out.print(f"[bold]{kind.name}[/]: {kind.summary}")
        for model in kind.models:
            fields = [f for f in model.model_fields if f not in ("name", "kind")]
            out.print(f"    keys: name, kind, {', '.join(fields)}", highlight=False)
