"""Finding what a killed or crashed run left behind, and removing only what no live run owns.

A controller that dies from SIGKILL or a power cut cannot clean up. Everything it created
names its owner (``bench.owner``): containers by a label, QEMU guests by an owner file, local
worker directories by a marker file (their workers are the processes working in them), and
the invocation's record (``bench.state``) lists what carries no mark of its own or lies
elsewhere: remote run directories, static VMs it booted, the temp dir its workers used, and
the Docker engines it used. An owner is alive while that very process runs (pid and
start time match), so ``bench gc`` never touches a live run's artefacts unless told ``--all``.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from bench import leftovers, owner, state
from bench.errors import BenchError
from bench.targets import qemu
from bench.targets.docker import LABEL_CONTROLLER, LABEL_OWNER, LABEL_RUN, LABEL_TARGET
from bench.targets.dockerclient import DockerTls, connect, resolve_url, translated

KINDS = ("local worker(s)", "remote run dir(s)", "static VM(s)", "VM guest(s)", "container(s)")
UNOWNED_GRACE_S = 60.0  # a guest directory a moment old may not have its owner file yet


@dataclass
class Report:
    """What gc removed (or would remove), by kind, and what it could not."""

    removed: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # the default engine, when absent


def collect(docker_host: str | None, everything: bool, dry_run: bool) -> Report:
    """Clean every kind of leftover whose owner is gone (all of them with ``everything``)."""
    report = Report()
    scanned: set[str] = set()
    checked: dict[str, bool] = {}  # engine URL -> its containers were listed
    _records(report, everything, dry_run, scanned, checked)
    _workdirs(report, tempfile.gettempdir(), everything, dry_run, scanned)
    report.removed["VM guest(s)"] = guests(everything, dry_run)
    default = resolve_url(docker_host)
    if default not in checked:
        _engine(report, default, None, everything, dry_run, required=bool(docker_host))
    return report


def controller_alive(label: str) -> bool:
    """Whether ``host:pid`` (the label of artefacts made before owner tokens) names a process
    still running on this host; another host's controller is assumed alive."""
    host, _, pid = label.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _owned_by_live(token: str | None, label: str | None) -> bool:
    if token:
        return owner.alive(token)
    return controller_alive(label or "")


def _records(
    report: Report, everything: bool, dry_run: bool, scanned: set[str], checked: dict[str, bool]
) -> None:
    """Clean what dead invocations recorded; an item that could not be cleaned stays."""
    for path, body in state.records():
        if not everything and owner.alive(str(body.get("owner", ""))):
            continue
        left = {}
        for key, item in sorted(body["items"].items(), key=lambda kv: leftovers.order(kv[1])):
            kind = item.get("kind")
            if kind == "docker_engine":
                done = _recorded_engine(report, item, everything, dry_run, checked)
            elif kind == "local_tmp":
                done = _workdirs(report, str(item.get("root")), everything, dry_run, scanned)
            else:
                done = _clean_item(report, item, dry_run)
            if not done:
                left[key] = item
        if not dry_run:
            state.rewrite(path, body, left)


def _recorded_engine(
    report: Report, item: dict[str, Any], everything: bool, dry_run: bool, checked: dict[str, bool]
) -> bool:
    """The orphaned containers of an engine a dead run used (each engine is listed once)."""
    url, tls = str(item.get("url")), item.get("tls")
    if url not in checked:
        tls_config = DockerTls(**tls) if isinstance(tls, dict) else None
        checked[url] = _engine(report, url, tls_config, everything, dry_run, required=True)
    return checked[url] and not dry_run


def _clean_item(report: Report, item: dict[str, Any], dry_run: bool) -> bool:
    """Remove one recorded leftover; whether it is gone (a failure is reported)."""
    kind = item.get("kind")
    try:
        if kind == "remote_dir":
            report.removed["remote run dir(s)"].append(leftovers.remote_dir(item, dry_run))
        elif kind == "static_vm":
            report.removed["static VM(s)"].append(leftovers.static_vm(item, dry_run))
    except BenchError as exc:
        report.problems.append(exc.one_line())
        return False
    return not dry_run


def _workdirs(
    report: Report, root: str, everything: bool, dry_run: bool, scanned: set[str]
) -> bool:
    """Remove the marked worker directories in ``root`` whose owner is gone, with the worker
    processes in them; whether all went (each temp dir is searched once)."""
    if root in scanned:
        return True
    scanned.add(root)
    clean = True
    for workdir, token in leftovers.marked_workdirs(Path(root)):
        if not everything and owner.alive(token):
            continue
        try:
            report.removed["local worker(s)"].append(leftovers.local_worker(workdir, dry_run))
        except BenchError as exc:
            report.problems.append(exc.one_line())
            clean = False
    return clean and not dry_run


def _engine(
    report: Report,
    url: str,
    tls: DockerTls | None,
    everything: bool,
    dry_run: bool,
    required: bool,
) -> bool:
    """Orphaned containers on one engine; whether they were listed. An engine that does not
    answer is a problem only when something says it was used."""
    try:
        found = engine_containers(url, everything, dry_run, tls)
    except BenchError as exc:
        (report.problems if required else report.unchecked).append(exc.one_line())
        return False
    report.removed["container(s)"].extend(found)
    return True


def containers(client: docker.DockerClient, everything: bool, dry_run: bool) -> list[str]:
    """Remove bench's orphaned containers; one description per container removed."""
    with translated("gc: cannot list containers"):
        found = client.containers.list(all=True, filters={"label": LABEL_RUN})
    removed = []
    for container in found:
        labels = container.labels
        live = _owned_by_live(labels.get(LABEL_OWNER), labels.get(LABEL_CONTROLLER))
        if not everything and live:
            continue
        removed.append(
            f"{container.short_id} (run {labels.get(LABEL_RUN)}, target {labels.get(LABEL_TARGET)})"
        )
        if not dry_run:
            with suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
    return removed


def engine_containers(
    docker_host: str | None, everything: bool, dry_run: bool, tls: DockerTls | None = None
) -> list[str]:
    """``containers`` on the engine at ``docker_host`` (default: the usual resolution)."""
    engine = connect(docker_host, tls)
    try:
        return containers(engine.control, everything=everything, dry_run=dry_run)
    finally:
        engine.close()


def guests(everything: bool, dry_run: bool) -> list[str]:
    """Kill orphaned QEMU guests and delete their overlays; one description per guest."""
    removed = []
    for directory, record in qemu.owners():
        if not record and _age_s(directory) < UNOWNED_GRACE_S:
            continue  # being created right now: its owner file comes next
        live = _owned_by_live(record.get("owner"), record.get("controller"))
        if not everything and record and live:
            continue
        pid = record.get("qemu_pid") or "?"
        removed.append(
            f"{directory.name} (run {record.get('run_id')}, target {record.get('target')}, "
            f"QEMU pid {pid})"
        )
        if not dry_run:
            qemu.remove_guest(directory, record)
    return removed


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return UNOWNED_GRACE_S
