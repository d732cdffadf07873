"""``kind: docker``: a container per repetition, through the Docker Engine API (docker-py).

Start-up is split the way an engine spends it: ``create`` (container created with the spec on
its command line, the worker package copied in only for an image bench did not build, output
attached) and ``start``; together they are the ``provision`` phase. A pull is timed on its own
(``startup.pull_s``) before the first cell so that a cold image is visible instead of hidden in
start-up. Every container carries the run id as a label and is removed on success, failure and
Ctrl-C; they also carry their invocation's owner token, so a run removes only its own, and
``bench gc`` finds any that a killed controller left behind.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Annotated, Any, ClassVar, Literal

import docker.errors
import docker.types
import docker.utils
from docker.models.containers import Container
from pydantic import Field, model_validator

from bench import interrupts, metadata, owner, pagecache, state
from bench.build.builder import Builder
from bench.errors import TargetError, WorkerError
from bench.limits import Cpus, GpuCount
from bench.probes.container import ContainerMemorySampler
from bench.targets import envvars, package, worker
from bench.targets.base import Measurement, TargetConfig
from bench.targets.dockerclient import DockerTls, Engine, connect, is_local, resolve_url, translated
from bench.targets.envvars import EnvMap
from bench.targets.kind import Kind
from bench.targets.sizes import Size
from bench.targets.stream import EventStream
from bench.units import fmt

LABEL_RUN = "bench.run_id"
LABEL_TARGET = "bench.target"
LABEL_CONTROLLER = "bench.controller"
LABEL_OWNER = "bench.owner"
GPU_HINT = "install the NVIDIA Container Toolkit on the engine's host and restart the engine"
ENGINE_RETURN_S = 30.0  # how long the run's cleanup waits for an engine that went away
GC_HINT = "bench gc removes the run's containers once the engine answers again"
REMOTE_MEMORY = "remote Docker engine: host-side memory is only probed for an engine on this host"


class DockerTargetConfig(TargetConfig):
    """Suite keys of a Docker target."""

    kind: Literal["docker"]
    image: str | None = Field(default=None, min_length=1)
    build: bool = False
    pull: Literal["missing", "always", "never"] = "missing"
    python: str | None = None
    docker_host: str | None = None
    tls: DockerTls | None = None
    cpus: Cpus | None = None
    cpuset: str | None = Field(default=None, pattern=r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
    memory: Size | None = None
    shm_size: Size | None = None
    gpus: Literal["all"] | GpuCount | list[str] | None = None
    runtime: str | None = None
    network: str = "bridge"
    env: EnvMap = {}
    volumes: list[Annotated[str, Field(pattern=r"^[^:]+:/[^:]*(:(ro|rw))?$")]] = []

    @model_validator(mode="after")
    def _one_image_source(self) -> DockerTargetConfig:
        """A target runs either a given image or the matched one, never both."""
        if (self.image is None) == (not self.build):
            raise ValueError("set exactly one of image: (an existing image) or build: true")
        return self


class DockerDeployment:
    """One running container: its events, its host-side memory, its start-up split."""

    def __init__(
        self, container: Container, engine: Engine, label: str, memory_limit: int | None
    ) -> None:
        self.container = container
        self.engine = engine
        self.label = label
        self.memory_limit = memory_limit
        self.phases: dict[str, float] = {}
        self.pull: Measurement | None = None
        self.stream = EventStream(label)
        self.sampler: ContainerMemorySampler | None = None
        self._attached: Any = None

    def attach(self) -> None:
        """Attach to stdout and stderr before start, so no output is ever missed."""
        with translated(f"{self.label}: attach"):
            self._attached = self.engine.stream.api.attach(
                self.container.id, stdout=True, stderr=True, stream=True, demux=True
            )
        self.stream.attach_frames(self._attached)

    def start_probe(self) -> None:
        """Sample the container's memory from the host (local engines only), off the clock."""
        if self.engine.local:
            threading.Thread(target=self._probe, daemon=True).start()

    def _probe(self) -> None:
        with suppress(Exception):
            self.container.reload()
            pid = int(self.container.attrs["State"]["Pid"])
            if pid > 0:
                self.sampler = ContainerMemorySampler(pid).start()

    def events(
        self, deadline: float, cancel: threading.Event | None = None
    ) -> Iterator[dict[str, Any]]:
        """The worker's events; an out-of-memory kill is reported as such."""
        try:
            yield from self.stream.events(deadline, self._exit_status, cancel)
        except WorkerError as exc:
            if self._oom_killed():
                limit = fmt(self.memory_limit, "bytes") if self.memory_limit else "no limit"
                raise WorkerError(
                    f"{self.label}: out of memory: the container was killed by the kernel at "
                    f"its memory limit ({limit})",
                    stderr_tail=exc.stderr_tail,
                    hint="raise the target's memory: or make the workload smaller",
                ) from None
            if not engine_answers(self.engine):
                raise WorkerError(
                    f"{self.label}: the Docker engine at {self.engine.url} stopped answering "
                    "during the cell (stopped or restarted): the worker's result is lost",
                    stderr_tail=exc.stderr_tail,
                ) from None
            raise

    def _exit_status(self) -> int | None:
        try:
            return int(self.container.wait(timeout=30)["StatusCode"])
        except Exception:
            return None

    def _oom_killed(self) -> bool:
        try:
            self.container.reload()
            return bool(self.container.attrs["State"].get("OOMKilled"))
        except Exception:
            return False

    def host_measurements(self) -> list[Measurement]:
        """Start-up split, pull time, and what the host spends on the container.

        ``mem.overhead_bytes`` is taken from the host's peak sample itself: everything beyond
        the resident memory of the container's processes at that instant (the shim and the
        cgroup's kernel memory). The worker's own peak, sampled on another clock inside, can
        fall between two host samples and would make a short workload's overhead noise.
        """
        out = [Measurement(f"startup.{k}_s", "s", value=v) for k, v in self.phases.items()]
        if self.pull is not None:
            out.append(self.pull)
        return out + self._memory()

    def _memory(self) -> list[Measurement]:
        if not self.engine.local:
            reason = REMOTE_MEMORY
        elif self.sampler is None:
            reason = "the container exited before it could be sampled"
        else:
            self.sampler.stop()
            reason = self.sampler.reason or "no memory samples collected"
        peak = self.sampler.peak_sample if self.sampler is not None else None
        timeline = self.sampler.timeline if self.sampler is not None else []
        if peak is None:
            return [
                Measurement("mem.host_bytes", "bytes", reason=reason),
                Measurement("mem.overhead_bytes", "bytes", reason=reason),
            ]
        return [
            Measurement("mem.host_bytes", "bytes", value=float(peak.total), timeline=timeline),
            Measurement("mem.overhead_bytes", "bytes", value=float(peak.total - peak.processes)),
        ]

    def close(self) -> None:
        """Stop sampling and the attach stream (the container itself is removed by the target)."""
        if self.sampler is not None:
            self.sampler.stop()
        if self._attached is not None:
            with suppress(Exception):
                self._attached.close()
        self.stream.join()


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
        self._lock = threading.Lock()

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
        self._check_runtime()
        if self.config.build:
            built = builder.image(engine.url, engine.control)
            self._image, self._python = built.tag, self.config.python or built.python
            self._pull_reason = "the matched image was built on this engine by bench build"
            return {"image": built.record(), "engine": engine.url}
        self._image = self.config.image
        return {"image": self._obtain_image(), "engine": engine.url}

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

    def _host_config(self) -> dict[str, Any]:
        """The limits, runtime, devices and mounts, as the engine's HostConfig."""
        c = self.config
        args: dict[str, Any] = {"network_mode": c.network, "binds": list(c.volumes)}
        if c.cpus is not None:
            args["nano_cpus"] = int(c.cpus * 1e9)
        if c.cpuset is not None:
            args["cpuset_cpus"] = c.cpuset
        if c.memory is not None:  # no swap: a limit that swaps measures the disk, not the job
            args["mem_limit"] = args["memswap_limit"] = c.memory
        if c.shm_size is not None:
            args["shm_size"] = c.shm_size
        if c.runtime is not None:
            args["runtime"] = c.runtime
        if c.gpus is not None:
            args["device_requests"] = [_gpu_request(c.gpus)]
        return self.engine.control.api.create_host_config(**args)

    def _create(self, run_id: str, command: list[str], root: str) -> Container:
        """Create a container (through the low-level API: the high-level one inspects it
        again, a round trip on the start-up clock); ship the worker when the image lacks it."""
        if self._image is None:
            raise TargetError(f"{self.label}: the target was not prepared (no image)")
        env = {**envvars.resolve(self.config.env), "PYTHONUNBUFFERED": "1"}
        if self._ship_package:
            env["PYTHONPATH"] = f"{root}/lib"
        labels = {LABEL_RUN: run_id, LABEL_TARGET: self.config.name}
        labels[LABEL_CONTROLLER] = metadata.controller_label()
        labels[LABEL_OWNER] = owner.token()
        self._record_engine()
        client = self.engine.control
        try:
            created = client.api.create_container(
                self._image,
                command,
                environment=env,
                labels=labels,
                host_config=self._host_config(),
                detach=True,
            )
        except docker.errors.APIError as exc:
            raise self._api_error(exc, "cannot create a container") from None
        except docker.errors.DockerException as exc:
            raise TargetError(f"{self.label}: cannot create a container: {exc}") from None
        container = client.containers.prepare_model({"Id": created["Id"]})
        if self._ship_package:
            with translated(f"{self.label}: cannot copy the worker into the container"):
                container.put_archive("/", _archive(root))
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
        container: Container | None = None
        deployment: DockerDeployment | None = None
        try:
            started = time.monotonic()
            with interrupts.deferred():  # a container created is a container tracked
                container = self._create(run_id, command, root)
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

    def fingerprint(self, run_id: str) -> dict[str, Any]:
        """The worker's view from inside a container with the same limits, plus engine facts
        and the limits as the engine reports them back."""
        root = f"/bench-{uuid.uuid4().hex[:12]}"
        container = None
        try:
            with interrupts.deferred():
                container = self._create(run_id, worker.fingerprint_args(self._python), root)
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


def engine_answers(engine: Engine, within_s: float = 0.0) -> bool:
    """Whether the engine answers a ping, asking again for up to ``within_s`` seconds."""
    end = time.monotonic() + within_s
    while True:
        with suppress(Exception):
            return bool(engine.control.ping())
        if time.monotonic() >= end:
            return False
        time.sleep(0.5)


def _gpu_request(gpus: str | int | list[str]) -> docker.types.DeviceRequest:
    """``all`` / a count / device ids, as the engine's device request."""
    if gpus == "all":
        return docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    if isinstance(gpus, int):
        return docker.types.DeviceRequest(count=gpus, capabilities=[["gpu"]])
    return docker.types.DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])


def _archive(root: str) -> bytes:
    """The worker package as a tar under ``root``/lib, for images bench did not build."""
    buffer = io.BytesIO()
    top = root.lstrip("/")
    made = {top}
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _dir(tar, top)
        with tarfile.open(fileobj=io.BytesIO(package.build().archive), mode="r:gz") as pkg:
            for member in pkg.getmembers():
                member.name = f"{top}/lib/{member.name}"
                parts = member.name.split("/")
                for depth in range(2, len(parts)):
                    parent = "/".join(parts[:depth])
                    if parent not in made:
                        _dir(tar, parent)
                        made.add(parent)
                tar.addfile(member, pkg.extractfile(member))
    return buffer.getvalue()


def _dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)


class DockerKind(Kind):
    """A container's artefacts: the image (built or pulled, with its id) and the engine."""

    def runtime(self, artefacts: Mapping[str, Any]) -> str:
        image = artefacts.get("image")
        tag = image.get("tag") if isinstance(image, dict) else image
        return f"docker {tag or '?'} on {artefacts.get('engine', '?')}"

    def built(self, artefacts: Mapping[str, Any]) -> str:
        image = artefacts.get("image")
        if isinstance(image, dict):
            return f"image {image.get('tag') or image.get('ref')} ({str(image.get('id'))[:19]})"
        return super().built(artefacts)

    def identity(self, artefacts: Mapping[str, Any]) -> dict[str, Any]:
        image = artefacts.get("image")
        found = image.get("id") if isinstance(image, dict) else image
        return {"image": found} if found else {}


KIND = DockerKind(
    "docker",
    "a fresh container per repetition through the Docker Engine API, with resource limits",
    {DockerTargetConfig: "bench.targets.docker:DockerTarget"},
)
