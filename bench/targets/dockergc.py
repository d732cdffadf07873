"""``bench gc`` for ``kind: docker``: containers labelled by bench whose owner is gone, on every
engine a dead run recorded and on gc's default engine (``--docker-host``, ``$DOCKER_HOST`` or
the local socket).

An engine that does not answer is a problem only when something says it was used (a record,
or ``--docker-host``); then it stays recorded for the next gc. An absent default engine is
merely reported as not checked.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import docker
import docker.errors

from bench.dockerengine import connect, translated
from bench.dockerhost import DockerTls, resolve_url
from bench.errors import BenchError
from bench.leftovers import ENGINES, Sweep
from bench.targets.dockerspec import LABEL_CONTROLLER, LABEL_OWNER, LABEL_RUN, LABEL_TARGET

HEADING = "container(s)"


class Containers:
    """Orphaned containers, each engine listed once per pass."""

    stage = ENGINES
    headings = (HEADING,)
    records = ("docker_engine",)

    def __init__(self) -> None:
        self.checked: dict[str, bool] = {}  # engine URL -> its containers were listed

    def recorded(self, item: dict[str, Any], sweep: Sweep) -> bool:
        """The orphaned containers of an engine a dead run used."""
        url, tls = str(item.get("url")), item.get("tls")
        if url not in self.checked:
            tls_config = DockerTls(**tls) if isinstance(tls, dict) else None
            self.checked[url] = _engine(sweep, url, tls_config, required=True)
        return self.checked[url] and not sweep.dry_run

    def unrecorded(self, sweep: Sweep) -> None:
        """gc's default engine, unless a record named it already."""
        default = resolve_url(sweep.docker_host)
        if default not in self.checked:
            _engine(sweep, default, None, required=bool(sweep.docker_host))


def _engine(sweep: Sweep, url: str, tls: DockerTls | None, required: bool) -> bool:
    """Orphaned containers on one engine; whether they were listed. An engine that does not
    answer is a problem only when something says it was used."""
    try:
        found = engine_containers(url, sweep, tls)
    except BenchError as exc:
        (sweep.report.problems if required else sweep.report.unchecked).append(exc.one_line())
        return False
    sweep.report.removed[HEADING].extend(found)
    return True


def containers(client: docker.DockerClient, sweep: Sweep) -> list[str]:
    """Remove bench's orphaned containers; one description per container removed."""
    with translated("gc: cannot list containers"):
        found = client.containers.list(all=True, filters={"label": LABEL_RUN})
    removed = []
    for container in found:
        labels = container.labels
        if sweep.spares(labels.get(LABEL_OWNER), labels.get(LABEL_CONTROLLER)):
            continue
        removed.append(
            f"{container.short_id} (run {labels.get(LABEL_RUN)}, target {labels.get(LABEL_TARGET)})"
        )
        if not sweep.dry_run:
            with suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
    return removed


def engine_containers(url: str, sweep: Sweep, tls: DockerTls | None = None) -> list[str]:
    """``containers`` on the engine at ``url``."""
    engine = connect(url, tls)
    try:
        return containers(engine.control, sweep)
    finally:
        engine.close()
