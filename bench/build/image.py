"""The matched container image, built through the Engine API from the base and the wheelhouse.

The Dockerfile installs the wheelhouse with ``--no-index`` in a build stage and copies only the
venv into the final image, so the wheels (hundreds of MB) are not a layer of what is measured.
The ``workloads`` package is the last layer: a change to it rebuilds seconds, not the venv.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import IO, Any

import docker
import docker.errors

from bench import workerpack
from bench.build import base, cache
from bench.build.config import BuildConfig
from bench.build.wheelhouse import INDEX_FILE, Wheelhouse
from bench.dockerengine import translated
from bench.errors import BuildError

IMAGE_REPO = "bench-workloads"
BASE_REPO = "bench-base"
PYTHON = "/opt/bench/venv/bin/python"
LIB = "/opt/bench/lib"

DOCKERFILE = """\
FROM {base} AS install
COPY wheelhouse /tmp/wheelhouse
RUN python3 -m venv /opt/bench/venv \\
 && /opt/bench/venv/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \\
    --find-links /tmp/wheelhouse -r /tmp/wheelhouse/requirements.txt

FROM {base}
COPY --from=install /opt/bench/venv /opt/bench/venv
RUN /opt/bench/venv/bin/python -c "import numpy, torch"
COPY workloads {lib}/workloads
ENV PYTHONPATH={lib} PYTHONUNBUFFERED=1
WORKDIR /tmp
"""


@dataclass(frozen=True)
class BuiltImage:
    """A matched image on one engine."""

    tag: str
    id: str
    base: str
    base_source: str
    python: str = PYTHON

    def record(self) -> dict[str, Any]:
        """What the run manifest stores about the image."""
        return {
            "tag": self.tag,
            "id": self.id,
            "base": self.base,
            "base_source": self.base_source,
        }


def ensure(
    client: docker.DockerClient,
    config: BuildConfig,
    wheelhouse: Wheelhouse,
    note: Callable[[str], None],
    base_ref: tuple[str, str] | None = None,
) -> BuiltImage:
    """The matched image on ``client``'s engine, built when it is not there yet, on
    ``base_ref`` (``base_image``'s answer) when the caller already has it."""
    base_ref, source = base_ref or base_image(client, config, note)
    with translated("image build", BuildError):
        base_id = client.images.get(base_ref).id
    pkg = workerpack.build()
    dockerfile = DOCKERFILE.format(base=base_ref, lib=LIB)
    key = cache.digest("image-v1", base_id, wheelhouse.key, pkg.digest, dockerfile)[:16]
    tag = f"{IMAGE_REPO}:{key}"
    with translated("image build", BuildError):
        try:
            return BuiltImage(tag, client.images.get(tag).id, base_ref, source)
        except docker.errors.ImageNotFound:
            pass
        note(f"building image {tag} on {base_ref}")
        with tempfile.TemporaryFile() as context:
            _write_context(context, dockerfile, wheelhouse, pkg)
            context.seek(0)
            run_build(client, context, tag, note)
        return BuiltImage(tag, client.images.get(tag).id, base_ref, source)


def base_image(
    client: docker.DockerClient,
    config: BuildConfig,
    note: Callable[[str], None],
    rootfs: Callable[[], base.RootFs] | None = None,
) -> tuple[str, str]:
    """(reference, how it was obtained) of the image the matched image is built on; an
    offline base is imported from ``rootfs()`` (the builder's, shared with the VM guest)."""
    if config.base_image:
        try:
            _present_or_pulled(client, config.base_image, note)
            return config.base_image, "registry"
        except (docker.errors.DockerException, OSError) as exc:
            note(f"cannot pull {config.base_image} ({_short(exc)}); using an offline base")
    key, mirror = base.rootfs_key(config)
    tag = f"{BASE_REPO}:{key}"
    with translated("offline base import", BuildError):
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            fs = rootfs() if rootfs else base.rootfs(config, note)
            note(f"importing the offline base as {tag}")
            reply = client.api.import_image(src=str(fs.tarball), repository=BASE_REPO, tag=key)
            _tagged(client, reply, key)
    return tag, f"debootstrap {config.release} from {mirror}"


def _tagged(client: docker.DockerClient, reply: str, key: str) -> None:
    """Tag the imported image by the id in the engine's reply: Podman's Docker-compatible
    import ignores the tag it is given and names the image ``bench-base:latest``."""
    tag = f"{BASE_REPO}:{key}"
    try:
        client.images.get(tag)
        return
    except docker.errors.ImageNotFound:
        pass
    image_id = None
    for line in reply.splitlines():
        with suppress(ValueError):
            image_id = json.loads(line).get("id") or image_id
    if not image_id:
        raise BuildError(f"offline base import: the engine named no image ({reply[:200]!r})")
    client.images.get(image_id).tag(BASE_REPO, key)


def _present_or_pulled(client: docker.DockerClient, ref: str, note: Callable[[str], None]) -> None:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        note(f"pulling {ref}")
        client.images.pull(ref)


def _short(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return " ".join(str(text).split())[:160]


def _write_context(
    out: IO[bytes], dockerfile: str, wheelhouse: Wheelhouse, pkg: workerpack.Package
) -> None:
    """The build context: Dockerfile, the wheelhouse and the workloads package, as one tar."""
    with tarfile.open(fileobj=out, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", dockerfile.encode())
        for path in sorted(wheelhouse.path.iterdir()):
            if path.suffix == ".whl" or path.name in ("requirements.txt", INDEX_FILE):
                tar.add(path, arcname=f"wheelhouse/{path.name}")
        with tarfile.open(fileobj=io.BytesIO(pkg.archive), mode="r:gz") as source:
            for member in source.getmembers():
                data = source.extractfile(member)
                tar.addfile(member, data)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def run_build(
    client: docker.DockerClient,
    context: IO[bytes],
    tag: str,
    note: Callable[[str], None],
    artefact: str = "image",
) -> None:
    """Build ``context`` (a tar with its Dockerfile) as ``tag``, labelled as bench's
    ``artefact``, relaying its steps; a failing step is one ``BuildError`` line."""
    log: list[str] = []
    stream = client.api.build(
        fileobj=context,
        custom_context=True,
        tag=tag,
        rm=True,
        forcerm=True,
        decode=True,
        labels={"bench.artefact": artefact},
    )
    for chunk in stream:
        if "error" in chunk:
            detail = " ".join(str(chunk["error"]).split())
            raise BuildError(f"image build {tag}: {detail}", hint=_tail(log))
        text = str(chunk.get("stream", "")).strip()
        if text:
            log.append(text)
            if text.startswith("Step "):
                note(f"{tag}: {text.splitlines()[0][:90]}")


def _tail(log: list[str]) -> str | None:
    lines = [line for line in log if not line.startswith(("Step ", "--->"))]
    return json.dumps(lines[-3:]) if lines else None
