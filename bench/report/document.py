"""A run's report: gathered once from the stored results, rendered to one self-contained HTML
file (figures embedded as PNG data, no scripts, no fetches) and to Markdown for pull requests
and chat."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from matplotlib.figure import Figure

from bench import cpushare, fleetcheck, results, stability, stats
from bench.report import frames, headline, markdown, plots, sweeps
from bench.report.labels import target_labels
from bench.report.terminal import hardware_note
from bench.results.model import Manifest, as_manifest
from bench.units import fmt

HTML_NAME, MARKDOWN_NAME = "report.html", "report.md"
RUN_STATUS = {  # what an unfinished or failed run means for its numbers
    "failed": "the run failed: some cells produced no numbers (see INVALID cells)",
    "interrupted": "the run was interrupted: only the cells that finished are shown",
    "running": "the run has not finished, or its controller was killed: only the cells that "
    "finished are shown",
}
DPI = 100


@dataclass
class Figures:
    """Each figure's title and PNG bytes, in reading order."""

    items: list[tuple[str, bytes]] = field(default_factory=list)

    def add(self, title: str, figure: Figure) -> None:
        self.items.append((title, png(figure)))


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes, at the resolution every page of bench embeds."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def data_uri_payload(data: bytes) -> str:
    """Base64 text for an ``<img src="data:image/png;base64,…">``."""
    return base64.b64encode(data).decode("ascii")


@dataclass
class Report:
    """Everything a report shows, computed from one run directory."""

    run_dir: Path
    manifest: Manifest
    warnings: list[str]
    stability: list[str]
    invalid: pd.DataFrame
    isolation: pd.DataFrame  # what isolation cost, in words (``bench.report.headline``)
    headline: dict[str, pd.DataFrame]
    sweeps: dict[str, pd.DataFrame]
    environment: pd.DataFrame
    absent: pd.DataFrame
    summary: pd.DataFrame
    figures: Figures


def build(run_dir: str | Path) -> Report:
    """Read one run directory and compute its tables, warnings and figures."""
    run_dir = Path(run_dir)
    manifest = results.read_manifest(run_dir)
    samples, cells = results.load(run_dir), results.load_cells(run_dir)
    raw = results.tag_raw(results.load_raw(run_dir), cells)
    return Report(
        run_dir=run_dir,
        manifest=manifest,
        warnings=read_first(manifest, cells),
        stability=stability.warnings(samples, raw, cells)
        + cpushare.warnings(samples, manifest)
        + fleetcheck.warnings(samples, manifest, cells),
        invalid=frames.invalid(cells),
        isolation=isolation(samples, manifest),
        headline=frames.headline_tables(samples, manifest),
        sweeps=sweeps.tables(samples, manifest),
        environment=frames.environment(manifest),
        absent=absent_metrics(cells),
        summary=summary(samples, manifest),
        figures=figures(samples, cells, raw, manifest),
    )


def isolation(samples: pd.DataFrame, manifest: Manifest) -> pd.DataFrame:
    """The summary's headline, for the top of the report; empty without a baseline."""
    if not manifest.baseline:
        return pd.DataFrame()
    labels = target_labels(manifest)
    return headline.frame(samples, manifest.baseline, labels, manifest.paired)


def figures(
    samples: pd.DataFrame,
    cells: pd.DataFrame,
    raw: dict[str, dict[str, Any]],
    manifest: Manifest | dict[str, Any],
) -> Figures:
    """The report's figures as PNG, those the run has data for."""
    out = Figures()
    for title, figure in plots.named_figures(samples, cells, raw, manifest):
        out.add(title, figure)
    return out


def read_first(manifest: Manifest | dict[str, Any], cells: pd.DataFrame) -> list[str]:
    """What a reader must know before trusting any number: an unfinished run, failed cells,
    the environment checks that warned, different hardware. (How stable each measurement was
    is ``stability.warnings``: more of them, about single metrics.) Settings that exposed a
    host (``bench.exposure``) come first: they matter beyond the numbers."""
    manifest = as_manifest(manifest)
    out = [f"security: {line}" for line in manifest.security_warnings]
    if manifest.status in RUN_STATUS:
        out.append(RUN_STATUS[manifest.status])
    if manifest.error:
        out.append(f"the run stopped: {manifest.error}")
    if not cells.empty and "status" in cells:
        failed = int((cells["status"] != "ok").sum())
        if failed:
            out.append(f"{failed} of {len(cells)} cells failed; see INVALID cells")
    for name, fingerprint in manifest.fingerprints().items():
        for check in fingerprint.warnings:
            fix = f" (fix: {check.fix})" if check.fix else ""
            out.append(f"{name}: {check.check}: {check.value}{fix}")
    note = hardware_note(manifest)
    if note:
        out.append(" ".join(line.strip() for line in note.removeprefix("note: ").splitlines()))
    return out


def absent_metrics(cells: pd.DataFrame) -> pd.DataFrame:
    """Metrics that could not be measured, with the reason, once per (workload, target,
    metric, reason) however many repetitions said so."""
    columns = ["workload", "target", "metric", "reason", "cells"]
    if cells.empty or "absent" not in cells:
        return pd.DataFrame(columns=columns)
    rows = [
        (row.workload, row.target, metric, reason)
        for row in cells.itertuples(index=False)
        if isinstance(row.absent, dict)
        for metric, reason in row.absent.items()
    ]
    frame = pd.DataFrame(rows, columns=columns[:-1])
    counted = frame.groupby(columns[:-1], sort=False).size().rename("cells").reset_index()
    return counted[columns]


def summary(samples: pd.DataFrame, manifest: Manifest | dict[str, Any]) -> pd.DataFrame:
    """Every metric's median, 95% CI and IQR per workload and target, as display text."""
    found = stats.summarize(samples)
    labels = target_labels(manifest)
    return pd.DataFrame(
        {
            "workload": found["workload"],
            "target": found["target"].map(lambda t: labels.get(t, t)),
            "metric": found["metric"],
            "n": found["n"],
            "median [95% CI]": [
                frames.interval_text(r.median, r.ci_low, r.ci_high, r.unit)
                for r in found.itertuples()
            ],
            "IQR": [fmt(r.iqr, r.unit) for r in found.itertuples()],
            "outliers": found["outliers"],
        }
    )


# --- rendering ------------------------------------------------------------------------------


def _facts(report: Report) -> list[tuple[str, str]]:
    manifest = report.manifest
    suite = manifest.suite
    controller = manifest.controller
    baseline = manifest.baseline
    how = "median of per-repetition ratios" if manifest.paired else "ratio of medians"
    run = results.run_name(report.run_dir, manifest)
    repetitions = "?" if suite.repetitions is None else suite.repetitions
    return [
        ("run", f"{run} ({manifest.status or '?'})"),
        ("started", str(manifest.created_at or "?")),
        ("finished", str(manifest.finished_at or "not finished")),
        ("order", f"{suite.order}, {repetitions} repetitions"),
        ("page cache", str(manifest.cache or suite.cache or "warm")),
        ("baseline", f"{baseline} ({how}, 95% CI)" if baseline else "none"),
        ("bench", f"{controller.bench_version or '?'} ({controller.git_commit or '?'})"),
    ]


def _environment_rows(report: Report) -> tuple[list[str], list[tuple[str, list[str], bool]]]:
    env = report.environment
    targets = [c for c in env.columns if c != "differs"]
    rows = [
        (str(index), [str(row[t]) for t in targets], bool(row["differs"]))
        for index, row in env.iterrows()
    ]
    return targets, rows


def template(name: str) -> jinja2.Template:
    """One of the package's HTML templates, autoescaped."""
    loader = jinja2.PackageLoader("bench.report", "templates")
    env = jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(name)


def render_html(report: Report) -> str:
    """One HTML document that needs nothing else: styles inline, figures as data URIs, and a
    Content-Security-Policy that forbids every fetch, so it reads the same offline."""
    targets, env_rows = _environment_rows(report)
    figures = [(title, data_uri_payload(data)) for title, data in report.figures.items]
    return template("report.html.j2").render(
        title=f"bench report: {_name(report)}",
        description=report.manifest.suite.description,
        facts=_facts(report),
        warnings=report.warnings,
        stability=report.stability,
        invalid=report.invalid.to_dict("records"),
        isolation=_records(report.isolation) if not report.isolation.empty else None,
        isolation_title=_isolation_title(report),
        headline={w: _records(t) for w, t in report.headline.items()},
        sweeps={title: _records(t) for title, t in report.sweeps.items()},
        figures=figures,
        env_targets=targets,
        env_rows=env_rows,
        absent=report.absent.to_dict("records"),
        summary=report.summary.to_dict("records"),
        ci_floor=stats.MIN_FOR_CI,
    )


def _isolation_title(report: Report) -> str:
    baseline = report.manifest.baseline
    return headline.title(baseline, report.manifest.paired) if baseline else ""


def _name(report: Report) -> str:
    return report.manifest.suite.name or report.run_dir.name


def _records(table: pd.DataFrame) -> dict[str, Any]:
    return {"columns": list(table.columns), "rows": list(table.itertuples(name=None))}


def render_markdown(report: Report) -> str:
    """The same report as text: tables and warnings; the figures are in report.html."""
    lines = [f"# bench report: {_name(report)}", ""]
    lines += [f"- **{key}**: {value}" for key, value in _facts(report)]
    if not report.isolation.empty:
        lines += ["", f"**{_isolation_title(report)}**", ""]
        lines.append(markdown.frame_table(report.isolation))
    if report.warnings or report.stability or not report.invalid.empty:
        lines += ["", "## Read this first", ""]
        lines += [f"- ⚠ {warning}" for warning in report.warnings]
        if not report.invalid.empty:
            lines += ["", "**INVALID cells** (their numbers are in the statistics below):", ""]
            lines.append(markdown.frame_table(report.invalid))
        if report.stability:
            lines += ["", f"**How stable the measurements were** ({len(report.stability)}):", ""]
            lines += [f"- {warning}" for warning in report.stability]
    lines += ["", "## Results", ""]
    lines.append(
        f"Median [95% CI]; change vs the baseline with its 95% CI; *n.s.*: the interval "
        f"contains no change. No interval below {stats.MIN_FOR_CI} repetitions."
    )
    for workload, table in report.headline.items():
        lines += ["", f"### {workload}", "", markdown.frame_table(table, index=True)]
    for title, table in report.sweeps.items():
        lines += ["", f"### Matrix: {title}", "", markdown.frame_table(table)]
    lines += ["", "## Environment", "", "Rows marked ≠ differ between targets.", ""]
    env = report.environment.copy()
    if not env.empty:
        env.index = [f"≠ {i}" if d else i for i, d in zip(env.index, env["differs"], strict=True)]
        lines.append(markdown.frame_table(env.drop(columns="differs"), index=True))
    if not report.absent.empty:
        lines += ["", "## Not measured", "", markdown.frame_table(report.absent)]
    lines += ["", f"Figures: see `{HTML_NAME}` beside this file.", ""]
    return "\n".join(lines)


def write(run_dir: str | Path) -> tuple[Path, Path]:
    """Write report.html and report.md into the run directory (each replaced atomically);
    return their paths."""
    report = build(run_dir)
    html_path, md_path = Path(run_dir) / HTML_NAME, Path(run_dir) / MARKDOWN_NAME
    results.write_atomic(html_path, render_html(report))
    results.write_atomic(md_path, render_markdown(report))
    return html_path, md_path
