"""The bytes of each asset kind, written deterministically: the same params, the same files.

Sources of variation are pinned: numpy streams seeded per sample, Pillow's JPEG encoder at a
fixed quality with no metadata, tar members with fixed times, owners and modes, and a model
initialised from the seed and saved with ``torch.save`` (whose archive carries no times).
Imports only the standard library at module level; numpy, Pillow and torch load per writer.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable, Mapping
from typing import Any

from workloads.spec import SpecError

CLASSES = 10  # labels of the image datasets: every classifier here has at least this many
JPEG_QUALITY = 90


def _write_checkpoint(params: Mapping[str, Any], out: str) -> list[str]:
    """``model.pt``: the fp32 state dict of the model the params name, seeded."""
    import torch

    from workloads import models

    sizing = dict(params["sizing"]) or None
    torch.manual_seed(params["seed"])
    try:
        model = models.build(
            params["model"],
            torch.float32,
            torch.device("cpu"),
            preset=params["preset"],
            sizing=sizing,
        )
    except ValueError as exc:
        raise SpecError(f"asset params: {exc}") from exc
    torch.save(model.state_dict(), os.path.join(out, "model.pt"))
    return ["model.pt"]


def image_sample(seed: int, index: int, size: int) -> tuple[bytes, int]:
    """One JPEG and its label: a colour gradient under noise, so it compresses like a photo
    rather than like a flat fill. Drawn from its own seeded stream, so sample ``index`` is the
    same in every format and whatever the sample count."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng([seed, index])
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys + 2) / 4  # within [0.25, 0.75]
    pixels = start + (end - start) * ramp[..., None] + rng.normal(0, 24, (size, size, 3))
    buffer = io.BytesIO()
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), int(rng.integers(0, CLASSES))


def _write_jpeg(params: Mapping[str, Any], out: str) -> list[str]:
    """``images/<000000>.jpg`` and ``labels.json`` (``{"classes": n, "labels": [...]}``)."""
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    labels, names = [], []
    for index in range(params["samples"]):
        data, label = image_sample(params["seed"], index, params["image_size"])
        names.append(f"images/{index:06d}.jpg")
        with open(os.path.join(out, names[-1]), "wb") as handle:
            handle.write(data)
        labels.append(label)
    with open(os.path.join(out, "labels.json"), "w", encoding="utf-8") as handle:
        json.dump({"classes": CLASSES, "labels": labels}, handle)
    return [*names, "labels.json"]


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, io.BytesIO(data)


def _write_tar(params: Mapping[str, Any], out: str) -> list[str]:
    """``shard-<00000>.tar`` of ``shard_samples`` samples each, webdataset-style members
    ``<000000>.jpg`` and ``<000000>.cls`` (the label as decimal text)."""
    names = []
    samples, per_shard = params["samples"], params["shard_samples"]
    for shard, first in enumerate(range(0, samples, per_shard)):
        names.append(f"shard-{shard:05d}.tar")
        path = os.path.join(out, names[-1])
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
            for index in range(first, min(first + per_shard, samples)):
                data, label = image_sample(params["seed"], index, params["image_size"])
                archive.addfile(*_member(f"{index:06d}.jpg", data))
                archive.addfile(*_member(f"{index:06d}.cls", str(label).encode()))
    return names


def _write_raw(params: Mapping[str, Any], out: str) -> list[str]:
    """``sample-<000000>.bin``: random bytes, each file from its own seeded stream."""
    import numpy as np

    names = []
    for index in range(params["samples"]):
        names.append(f"sample-{index:06d}.bin")
        rng = np.random.default_rng([params["seed"], index])
        with open(os.path.join(out, names[-1]), "wb") as handle:
            handle.write(rng.bytes(params["sample_bytes"]))
    return names


def _write_tokens(params: Mapping[str, Any], out: str) -> list[str]:
    """``tokens.npy``: int32 token ids, one row of ``seq_len + 1`` per sample (inputs and the
    next-token targets shifted by one)."""
    import numpy as np

    rng = np.random.default_rng(params["seed"])
    shape = (params["samples"], params["seq_len"] + 1)
    rows = rng.integers(0, params["vocab"], size=shape, dtype=np.int32)
    np.save(os.path.join(out, "tokens.npy"), rows, allow_pickle=False)
    return ["tokens.npy"]


WRITERS: dict[str, Callable[[Mapping[str, Any], str], list[str]]] = {
    "checkpoint": _write_checkpoint,
    "jpeg": _write_jpeg,
    "tar": _write_tar,
    "raw": _write_raw,
    "tokens": _write_tokens,
}
