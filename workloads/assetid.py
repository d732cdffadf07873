"""What identifies an asset: the params of the checkpoint and the dataset a workload reads,
and the name of an asset directory's index.

Kept apart from the code that makes and checks assets (``workloads.assets``, which re-exports
all of this) because the controller imports it to name the assets a suite needs: it imports
only the standard library, and nothing it imports reaches the writers (numpy, Pillow, torch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

GENERATOR = "bench-assets/1"
"""Changes whenever a layout or a generator's bytes change, so such a change changes the key."""
INDEX = "asset.json"
CHUNK = 1 << 20
STAGED = ("checkpoint", "dataset", "code")
"""What a spec's ``assets`` may carry: made assets, and a ``kind: python`` workload's code."""
CODE_DIR = "src"
"""Where a ``code`` asset (a ``kind: python`` workload's directory) keeps the user's files, apart
from its index: a user's own ``asset.json`` cannot collide with it."""
SIZING = ("layers", "hidden", "heads", "kv_heads", "vocab")
DATASET_DEFAULTS = {
    "samples": 256,
    "image_size": 64,
    "sample_bytes": 65536,
    "shard_samples": 64,
    "seq_len": 64,
    "vocab": 1000,
}
FORMAT_KEYS = {  # besides samples: the dataset options that change each format's bytes
    "jpeg": ("image_size",),
    "tar": ("image_size", "shard_samples"),
    "raw": ("sample_bytes",),
    "tokens": ("seq_len", "vocab"),
}


def file_sha256(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def digest(files: Mapping[str, str]) -> str:
    """One hash over the file list: each file's sha256 and relative path, sorted by path (an
    asset's identity: the controller names a code asset by it, a worker checks its copy)."""
    text = "".join(f"{files[name]} {name}\n" for name in sorted(files))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def checkpoint_params(workload: Mapping[str, Any], seed: int) -> dict[str, Any] | None:
    """The params of the checkpoint a filled workload loads; None when it loads none (no
    model, or ``location`` null: weights are then random-initialised in memory)."""
    if workload.get("location") is None or workload.get("model") is None:
        return None
    return {  # image_size and seq_len change no weight, so they do not split the cache
        "kind": "checkpoint",
        "generator": GENERATOR,
        "model": workload["model"],
        "preset": workload.get("preset"),
        "sizing": {key: workload[key] for key in SIZING if workload.get(key) is not None},
        "seed": seed,
    }


def dataset_params(workload: Mapping[str, Any], seed: int) -> dict[str, Any] | None:
    """The params of the dataset a filled workload reads; None when it reads none. Only the
    options that change the format's bytes are kept, so an unused one does not split the
    cache."""
    dataset = workload.get("dataset")
    if workload.get("location") is None or dataset is None:
        return None
    fmt = dataset.get("format")

    def option(key: str) -> Any:
        value = dataset.get(key)
        return DATASET_DEFAULTS[key] if value is None else value

    keys = ("samples", *FORMAT_KEYS.get(fmt, ()))
    params: dict[str, Any] = {"kind": "dataset", "generator": GENERATOR, "format": fmt}
    params.update({key: option(key) for key in keys})
    params["seed"] = seed
    return params
