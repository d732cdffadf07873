"""``kind: docker``: a container per repetition, through the Docker Engine API.

The suite keys and the kind's declaration. The implementation (docker-py) is
``bench.targets.dockertarget`` with ``dockerdeploy`` (one running container) and
``dockerspec`` (what a container is created with), imported when a target is made; ``bench
gc`` finds the containers a killed run left through ``bench.targets.dockergc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from bench.dockerhost import DockerTls
from bench.limits import Cpus, GpuCount
from bench.targets import dockerexposure
from bench.targets.base import TargetConfig
from bench.targets.envvars import EnvMap
from bench.targets.kind import Kind
from bench.targets.sizes import Size


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


class DockerKind(Kind):
    """A container's artefacts: the image (built or pulled, with its id) and the engine."""

    def runtime(self, artefacts: Mapping[str, Any]) -> str:
        image = artefacts.get("image")
        tag = image.get("tag") if isinstance(image, dict) else image
        engine = artefacts.get("engine_name")
        named = ""
        if isinstance(engine, dict):
            named = f" ({engine.get('name')} {engine.get('version')})"
        runtime = self.accel_label(artefacts)
        under = f" under {runtime}" if runtime else ""
        return f"docker {tag or '?'} on {artefacts.get('engine', '?')}{named}{under}"

    def built(self, artefacts: Mapping[str, Any]) -> str:
        image = artefacts.get("image")
        if isinstance(image, dict):
            return f"image {image.get('tag') or image.get('ref')} ({str(image.get('id'))[:19]})"
        return super().built(artefacts)

    def exposure(self, config: Any) -> list[str]:
        return dockerexposure.warnings(config)

    def accel_label(self, artefacts: Mapping[str, Any]) -> str | None:
        """The OCI runtime in the target's name (``ctr [runsc/ptrace]``): runc and a gVisor
        sandbox run the same image at different costs."""
        runtime = artefacts.get("runtime")
        if not isinstance(runtime, dict) or not runtime.get("name"):
            return None
        platform = runtime.get("platform")
        return f"{runtime['name']}/{platform}" if platform else str(runtime["name"])

    def accel_row(self, artefacts: Mapping[str, Any]) -> str:
        return "native"

    def identity(self, artefacts: Mapping[str, Any]) -> dict[str, Any]:
        image = artefacts.get("image")
        found = image.get("id") if isinstance(image, dict) else image
        return {"image": found} if found else {}


KIND = DockerKind(
    "docker",
    "a fresh container per repetition through the Docker Engine API, with resource limits",
    {DockerTargetConfig: "bench.targets.dockertarget:DockerTarget"},
    collector="bench.targets.dockergc:Containers",
)
