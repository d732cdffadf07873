"""Assets in a container: a layer of a derived image (``image``), a read-only bind mount of
the controller's cache (``volume``), or that mount plus a RAM filesystem the worker copies
them to (``tmpfs``).

The derived image is ``FROM`` the target's image, by id, with the asset directories as one
more layer, tagged by the base's id and the assets' digests: built once, then found on every
later run (it is cache, labelled as bench's, like the matched image). The asset directories
sit at the same path in the container whichever the location, so the worker reads them the
same way and only the filesystem under them differs (overlay, the host's, tmpfs).
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from dataclasses import dataclass, field

import docker
import docker.errors

from bench.assets.model import AssetSet, Staged
from bench.build import cache
from bench.build.image import run_build
from bench.dockerengine import translated
from bench.errors import TargetError

ROOT = "/bench-assets"
STAGE_TO = "/bench-stage"
IMAGE_REPO = "bench-assets"
ARTEFACT = "assets"  # the label bench.artefact of the derived images: cache, kept
MARGIN = 16 << 20  # a RAM filesystem's room beyond the assets' pages (directories, the index)


@dataclass(frozen=True)
class ContainerAssets:
    """What a container of one cell is created with to see one asset set."""

    image: str | None = None  # the derived image to run instead of the target's
    binds: tuple[str, ...] = ()
    tmpfs: dict[str, str] = field(default_factory=dict)


def stage(
    client: docker.DockerClient, base: str, assets: AssetSet, local: bool, label: str
) -> tuple[ContainerAssets, Staged]:
    """How the target's containers see ``assets``, and the spec's ``assets`` for them."""
    if assets.location == "image":
        tag, image_id = derived_image(client, base, assets, label)
        staged = Staged(assets.under(ROOT), {"image": tag, "id": image_id})
        return ContainerAssets(image=tag), staged
    if not local:  # the suite's rules refuse this; a target made by hand may still ask
        where = f"location: {assets.location} needs a Docker engine on this host"
        raise TargetError(f"{label}: {where}")
    binds = tuple(f"{a.path}:{ROOT}/{a.key}:ro" for a in assets.assets)
    record: dict[str, object] = {"binds": list(binds)}
    if assets.location != "tmpfs":
        return ContainerAssets(binds=binds), Staged(assets.under(ROOT), record)
    size = assets.footprint + assets.footprint // 10 + MARGIN
    tmpfs = {STAGE_TO: f"size={size},mode=1777"}
    record["tmpfs"] = tmpfs
    staged = Staged(assets.under(ROOT, stage_to=STAGE_TO), record)
    return ContainerAssets(binds=binds, tmpfs=tmpfs), staged


def derived_image(
    client: docker.DockerClient, base: str, assets: AssetSet, label: str
) -> tuple[str, str]:
    """(tag, id) of ``base`` plus the assets as a layer, built when the engine lacks it."""
    with translated(f"{label}: image {base!r}"):
        base_id = client.images.get(base).id
    key = cache.digest("assets-image-v1", base_id, *(a.sha256 for a in assets.assets))[:16]
    tag = f"{IMAGE_REPO}:{key}"
    with translated(f"{label}: assets image {tag}"):
        try:
            return tag, client.images.get(tag).id
        except docker.errors.ImageNotFound:
            pass
        with tempfile.TemporaryFile() as context:
            _write_context(context, base_id, assets)
            context.seek(0)
            run_build(client, context, tag, _quiet, artefact=ARTEFACT)
        return tag, client.images.get(tag).id


def _write_context(out: io.BufferedIOBase, base_id: str, assets: AssetSet) -> None:
    """Dockerfile and the asset directories, as one tar (streamed from disk, not memory)."""
    dockerfile = f"FROM {base_id}\nCOPY assets {ROOT}\n".encode()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode = len(dockerfile), 0o644
        tar.addfile(info, io.BytesIO(dockerfile))
        for asset in assets.assets:
            tar.add(asset.path, arcname=f"assets/{asset.key}")


def _quiet(message: str) -> None:
    """The derived image's build steps are not relayed (a copy of the assets, seconds)."""
