"""The ``kind: docker`` implementation: a container per repetition, through the Docker Engine
API (docker-py).

Start-up is split the way an engine spends it: ``create`` (container created with the spec on
its command line, the worker package copied in only for an image bench did not build, output
attached) and ``start``; together they are the ``provision`` phase. A pull is timed on its own
(``startup.pull_s``) before the first cell so that a cold image is visible instead of hidden in
start-up. Every container carries the run id as a label and is removed on success, failure and
Ctrl-C; they also carry their invocation's owner token, so a run removes only its own, and
``bench gc`` finds any that a killed controller left behind.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, ClassVar

import docker.errors
from docker.models.containers import Container

from bench import interrupts, owner, pagecache, state
from bench.assets import docker as assets_docker
from bench.assets.model import AssetSet, Staged, cell_assets, key_of
from bench.build.builder import Builder
from bench.dockerengine import Engine, connect, translated
from bench.dockerhost import is_local, resolve_url
from bench.errors import TargetError
from bench.targets import dockerruntime, dockerspec, envvars, worker
from bench.targets.base import Measurement
from bench.targets.docker import DockerTargetConfig
from bench.targets.dockerdeploy import DockerDeployment, engine_answers
from bench.targets.dockerspec import LABEL_OWNER, LABEL_RUN
from workloads import fingerprint as host

GPU_HINT = "install the NVIDIA Container Toolkit on the engine's host and restart the engine"
ENGINE_RETURN_S = 30.0  # how long the run's cleanup waits for an engine that went away
GC_HINT = "bench gc removes the run's containers once the engine answers again"


class DockerTarget:
    """Runs each worker in a fresh container on one Docker engine."""

    kind: ClassVar[str] = "docker"

    def __init__(self, config: DockerTargetConfig, engine: Engine | None = None) -> None:
        self.config = config
        self._engine = engine
        self._image: str | None = None
        self._python = config.python or "python3"
        self._ship_package = not config.build
        self._pull_s: float | None = None
        self._pull_reason = "the image was already present on the engine (warm start)"
        self._info: dict[str, Any] = {}
        self._version: dict[str, Any] = {}
        self._runtime: dockerruntime.RuntimeFacts | None = None
        self._lock = threading.Lock()
        self._assets: dict[str, assets_docker.ContainerAssets] = {}

    @property
    def label(self) -> str:
        return f"target {self.config.name!r}"

    @property
    def engine(self) -> Engine:
        """The engine's clients, connected on first use."""
        with self._lock:
            if self._engine is None:
                self._engine = connect(self.config.docker_host, self.config.tls)
            return self._engine

    def drop_caches(self) -> str | None:
        """Containers share their host's page cache, so the host's is dropped; a remote
        engine's host is out of reach."""
        host = self.host_id()
        if host != "localhost":
            return f"the Docker engine at {host} is remote: its host's page cache is out of reach"
        return pagecache.drop_local()

    def host_id(self) -> str:
        """Containers on a local engine share this machine with ``local`` targets."""
        url = resolve_url(self.config.docker_host)
        return "localhost" if is_local(url) else url

    def prepare(self, builder: Builder) -> dict[str, Any]:
        """Put the image on the engine (build or pull); returns what the manifest keeps."""
        engine = self.engine
        with translated(f"{self.label}: engine info"):
            self._info = engine.control.info()
            self._version = engine.control.version()
        self._check_runtime()
        self._runtime = dockerruntime.runtime_facts(
            self._info, self._version, self.config.runtime, engine.local
        )
        found = {
            "engine": engine.url,
            "engine_name": dockerruntime.engine_record(self._version),
            "runtime": self._runtime.record(),
        }
        if self.config.build:
            built = builder.image(engine.url, engine.control)
            self._image, self._python = built.tag, self.config.python or built.python
            self._pull_reason = "the matched image was built on this engine by bench build"
            return {"image": built.record(), **found}
        self._image = self.config.image
        return {"image": self._obtain_image(), **found}

    def _check_runtime(self) -> None:
        runtimes = sorted(self._info.get("Runtimes") or {})
        if self.config.runtime and self.config.runtime not in runtimes:
            raise TargetError(
                f"{self.label}: runtime {self.config.runtime!r} is not configured on the engine "
                f"at {self.engine.url} (available: {', '.join(runtimes) or 'none'})"
            )

    def _obtain_image(self) -> dict[str, Any]:
        """The configured image per ``pull:``; a pull is timed for the first cell."""
        ref, client = str(self.config.image), self.engine.control
        present = True
        with translated(f"{self.label}: image {ref!r}"):
            try:
                client.images.get(ref)
            except docker.errors.ImageNotFound:
                present = False
        if self.config.pull == "always" or not present:
            if self.config.pull == "never":
                raise TargetError(
                    f"{self.label}: image {ref!r} is not present on the engine at "
                    f"{self.engine.url} and pull: never",
                    hint="build or load the image, allow pulls, or use build: true",
                )
            started = time.monotonic()
            with translated(f"{self.label}: image {ref!r} is missing and cannot be pulled"):
                client.images.pull(ref)
            self._pull_s = time.monotonic() - started
        with translated(f"{self.label}: image {ref!r}"):
            image_id = client.images.get(ref).id
        return {
            "ref": ref,
            "id": image_id,
            "pulled": self._pull_s is not None,
            "pull_s": self._pull_s,
        }

    def _take_pull(self) -> Measurement:
        """``startup.pull_s`` for the first cell after a pull; absent with the reason after."""
        with self._lock:
            value, self._pull_s = self._pull_s, None
        if value is not None:
            return Measurement("startup.pull_s", "s", value=value)
        return Measurement("startup.pull_s", "s", reason=self._pull_reason)

    def stage(self, assets: AssetSet, run_id: str) -> Staged:
        """A derived image with the assets as a layer (location image, built once and kept),
        or read-only bind mounts of the cached directories (plus a RAM filesystem for tmpfs)."""
        if self._image is None:
            raise TargetError(f"{self.label}: the target was not prepared (no image)")
        engine = self.engine
        found, staged = assets_docker.stage(
            engine.control, self._image, assets, engine.local, self.label
        )
        self._assets[assets.key] = found
        return staged

    def _host_config(self, assets: assets_docker.ContainerAssets | None = None) -> dict[str, Any]:
        """The target's limits, runtime, devices and mounts (the cell's assets' too), as the
        engine's HostConfig."""
        args = dockerspec.host_config(self.config)
        if assets is not None:
            args["binds"] = [*args["binds"], *assets.binds]
            if assets.tmpfs:
                args["tmpfs"] = dict(assets.tmpfs)
        return self.engine.control.api.create_host_config(**args)

    def _create(
        self,
        run_id: str,
        command: list[str],
        root: str,
        assets: assets_docker.ContainerAssets | None = None,
    ) -> Container:
        """Create a container (through the low-level API: the high-level one inspects it
        again, a round trip on the start-up clock); ship the worker when the image lacks it."""
        if self._image is None:
            raise TargetError(f"{self.label}: the target was not prepared (no image)")
        env = {**envvars.resolve(self.config.env), "PYTHONUNBUFFERED": "1"}
        if self._ship_package:
            env["PYTHONPATH"] = f"{root}/lib"
        labels = dockerspec.labels(run_id, self.config.name)
        self._record_engine()
        client = self.engine.control
        try:
            created = client.api.create_container(
                assets.image if assets is not None and assets.image else self._image,
                command,
                environment=env,
                labels=labels,
                host_config=self._host_config(assets),
                detach=True,
            )
        except docker.errors.APIError as exc:
            raise self._api_error(exc, "cannot create a container") from None
        except docker.errors.DockerException as exc:
            raise TargetError(f"{self.label}: cannot create a container: {exc}") from None
        container = client.containers.prepare_model({"Id": created["Id"]})
        if self._ship_package:
            with translated(f"{self.label}: cannot copy the worker into the container"):
                container.put_archive("/", dockerspec.worker_archive(root))
        return container

    def _start(self, container: Container) -> None:
        try:
            container.start()
        except docker.errors.APIError as exc:
            raise self._api_error(exc, "cannot start the container") from None
        except docker.errors.DockerException as exc:
            raise TargetError(f"{self.label}: cannot start the container: {exc}") from None

    def _api_error(self, exc: docker.errors.APIError, what: str) -> TargetError:
        """The engine's refusal, named: no GPU runtime and missing images get their own line."""
        text = str(exc.explanation or exc)
        if "could not select device driver" in text or "nvidia" in text.lower():
            return TargetError(
                f"{self.label}: GPU requested (gpus: {self.config.gpus}) but the engine at "
                f"{self.engine.url} has no GPU runtime: {text}",
                hint=GPU_HINT,
            )
        if "No such image" in text:
            return TargetError(f"{self.label}: image {self._image!r} not found: {text}")
        return TargetError(f"{self.label}: {what}: {text}")

    def _remove(self, container: Container) -> None:
        """Kill and remove; a container already gone is fine (idempotent)."""
        with suppress(docker.errors.NotFound), translated(f"{self.label}: cannot remove container"):
            container.remove(force=True, v=True)

    @contextmanager
    def deploy(self, spec: dict[str, Any], run_id: str) -> Iterator[DockerDeployment]:
        """A fresh container for one cell; leaving the context removes it."""
        root = f"/bench-{uuid.uuid4().hex[:12]}"
        command = worker.inline_run_args(self._python, spec)
        found = cell_assets(spec)
        assets = self._assets.get(key_of(found)) if found is not None else None
        if found is not None and assets is None:
            raise TargetError(f"{self.label}: the cell's assets were never staged")
        container: Container | None = None
        deployment: DockerDeployment | None = None
        try:
            started = time.monotonic()
            with interrupts.deferred():  # a container created is a container tracked
                container = self._create(run_id, command, root, assets)
            deployment = DockerDeployment(container, self.engine, self.label, self.config.memory)
            deployment.attach()
            created = time.monotonic()
            self._start(container)
            deployment.phases.update(create=created - started, start=time.monotonic() - created)
            deployment.pull = self._take_pull()
            deployment.start_probe()
            yield deployment
        finally:
            with interrupts.deferred():
                if deployment is not None:
                    deployment.close()
                if container is not None:
                    with suppress(TargetError):  # engine gone: cleanup retries, and says so
                        self._remove(container)

    def fingerprint(self, run_id: str, torch: bool = True) -> dict[str, Any]:
        """The worker's view from inside a container with the same limits, plus engine facts
        and the limits as the engine reports them back."""
        root = f"/bench-{uuid.uuid4().hex[:12]}"
        container = None
        try:
            with interrupts.deferred():
                container = self._create(run_id, worker.fingerprint_args(self._python, torch), root)
            self._start(container)
            with translated(f"{self.label}: fingerprint"):
                status = container.wait(timeout=300)["StatusCode"]
                stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
                stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
                container.reload()
            if status != 0:
                last = (stderr.strip().splitlines() or ["no stderr output"])[-1]
                raise TargetError(f"{self.label}: fingerprint failed (status {status}): {last}")
            data = worker.parse_fingerprint(stdout, self.label)
            data.update(self._engine_facts(container))
            if self.engine.local:
                _fill_hidden_hardware(data)
            return data
        finally:
            with interrupts.deferred():
                if container is not None:
                    self._remove(container)

    def _engine_facts(self, container: Container) -> dict[str, Any]:
        host = container.attrs.get("HostConfig", {})
        info = self._info
        return {
            "docker_server_version": info.get("ServerVersion"),
            "docker_runtime": host.get("Runtime") or info.get("DefaultRuntime"),
            "cgroup_version": info.get("CgroupVersion"),
            "cgroup_driver": info.get("CgroupDriver"),
            "storage_driver": info.get("Driver"),
            "engine_kernel": info.get("KernelVersion"),
            "image": self._image,
            "image_id": container.attrs.get("Image"),
            "container": {
                "engine": dockerruntime.engine_record(self._version),
                "runtime": self._runtime.record() if self._runtime else None,
            },
            "limits": {
                "nano_cpus": host.get("NanoCpus") or None,
                "cpuset_cpus": host.get("CpusetCpus") or None,
                "memory_bytes": host.get("Memory") or None,
                "shm_bytes": host.get("ShmSize") or None,
                "network": host.get("NetworkMode"),
            },
        }

    def _record_engine(self) -> None:
        """Name the engine in this invocation's record, so that ``bench gc`` looks for
        leftovers there too, even when it is not gc's default engine."""
        tls = self.config.tls.model_dump() if self.config.tls else None
        url = resolve_url(self.config.docker_host)
        state.current().add(f"docker:{self.config.name}", "docker_engine", url=url, tls=tls)

    def cleanup(self, run_id: str) -> None:
        """Remove every container of this run that this invocation made (normally none are
        left; another invocation given the same run id keeps its own), then close the
        engine's connections."""
        if self._engine is None:
            return
        labels = [f"{LABEL_RUN}={run_id}", f"{LABEL_OWNER}={owner.token()}"]
        try:
            engine_answers(self._engine, within_s=ENGINE_RETURN_S)  # a restart takes seconds
            with translated(f"{self.label}: cleanup", hint=GC_HINT):
                leftovers = self._engine.control.containers.list(
                    all=True, filters={"label": labels}
                )
            for container in leftovers:
                self._remove(container)
            state.current().discard(f"docker:{self.config.name}")
        finally:
            self._engine.close()
            self._engine = None


def _fill_hidden_hardware(data: dict[str, Any]) -> None:
    """Take the machine facts a sandbox hides from the engine's host, which is this one.

    gVisor answers ``model name: unknown`` and no physical core count: the container still
    runs on this machine's CPUs, and leaving the gaps would make every report say that the
    targets ran on different hardware. What was filled in is listed, so it is never mistaken
    for what the worker saw.
    """
    filled = []
    if data.get("cpu_model") in (None, "unknown"):
        data["cpu_model"] = host.cpu_model()
        filled.append("cpu_model")
    cores = data.get("cores")
    if isinstance(cores, dict):
        found = host.cores()
        for key, value in cores.items():
            if value is None and found.get(key) is not None:
                cores[key] = found[key]
                filled.append(f"cores.{key}")
    if data.get("memory_bytes") is None:
        data["memory_bytes"] = host.memory_bytes()
        filled.append("memory_bytes")
    if filled:
        data["from_engine_host"] = filled
