"""The datasets in asset directories, read the way training jobs read theirs.

JPEG files and webdataset-style tar shards are decoded with Pillow and augmented (random
resized crop, horizontal flip, ImageNet normalisation) inside the DataLoader's worker
processes, which hand batches back through shared memory (``/dev/shm``): that is the path where
isolation costs something. The augmentation is torchvision's algorithm restated in torch and
Pillow, because torchvision's compiled ops do not load beside this torch. Each dataset also
says how many bytes an item reads from its files (``nbytes``), so a loader's bandwidth counts
what was read, not what was decoded.

Pillow is imported only when an image is decoded: a raw or tokens dataset needs torch alone.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

if TYPE_CHECKING:
    from PIL import Image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)
CLASSES = 10  # class ids of a tokens dataset for a classifier (as many as the image labels)


def drop_from_page_cache(fd: int, offset: int = 0, length: int = 0) -> None:
    """Ask the kernel to forget a file's cached pages (all of them when ``length`` is 0)."""
    if not hasattr(os, "posix_fadvise"):
        raise OSError("cold_cache needs os.posix_fadvise, missing on this platform")
    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def read_range(path: str, offset: int, size: int, cold: bool = False) -> bytearray:
    """``size`` bytes of ``path`` from ``offset``, unbuffered; a short file is an error."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        handle.seek(offset)
        filled = 0
        while filled < size:
            count = handle.readinto(view[filled:])
            if not count:
                raise OSError(f"{path}: expected {size} bytes at {offset}, read {filled}")
            filled += count
        if cold:
            drop_from_page_cache(handle.fileno(), offset, size)
    return buffer


# --- augmentation --------------------------------------------------------------------------


def crop_box(width: int, height: int, generator: torch.Generator) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box: a random area fraction and aspect ratio, ten
    tries, then the central crop of the nearest allowed ratio."""
    area = width * height
    log_ratio = torch.log(torch.tensor(RATIO))
    for _ in range(10):
        target = area * torch.empty(1).uniform_(*SCALE, generator=generator).item()
        aspect = torch.exp(torch.empty(1).uniform_(*log_ratio.tolist(), generator=generator))
        w = round((target * aspect.item()) ** 0.5)
        h = round((target / aspect.item()) ** 0.5)
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return left, top, left + w, top + h
    ratio = width / height
    w, h = width, height
    if ratio < RATIO[0]:
        h = round(w / RATIO[0])
    elif ratio > RATIO[1]:
        w = round(h * RATIO[1])
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def normalise(image: Image.Image) -> torch.Tensor:
    """HWC uint8 pixels to a CHW float32 tensor with ImageNet's mean and std removed."""
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (pixels.float().div_(255) - mean).div_(std)


class Augment:
    """Training: random resized crop to ``size``, flip half the time, normalise. Evaluation:
    resize to ``size`` and normalise."""

    def __init__(self, size: int, train: bool) -> None:
        self.size = size
        self.train = train

    def __call__(self, image: Image.Image, generator: torch.Generator) -> torch.Tensor:
        from PIL import Image

        box = (0, 0, image.width, image.height)
        if self.train:
            box = crop_box(image.width, image.height, generator)
        out = image.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box)
        if self.train and torch.rand(1, generator=generator).item() < 0.5:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return normalise(out)


# --- datasets ------------------------------------------------------------------------------


class FileItems(Dataset[Any]):
    """Items that each read one byte range of a file: ``(path, offset, size, label)``.

    Random draws come from the dataset's own generator, reseeded in each loader worker
    (``make_loader``), so every worker augments differently and every run the same way.
    """

    def __init__(self, items: list[tuple[str, int, int, int]], cold: bool) -> None:
        self.items = items
        self.cold = cold
        self._generator: torch.Generator | None = None

    def __len__(self) -> int:
        return len(self.items)

    def nbytes(self, index: int) -> int:
        return self.items[index][2]

    def reseed(self, seed: int) -> None:
        self._generator = torch.Generator().manual_seed(seed)

    def generator(self) -> torch.Generator:
        if self._generator is None:
            self.reseed(torch.initial_seed())
        assert self._generator is not None
        return self._generator

    def read(self, index: int) -> bytearray:
        path, offset, size, _ = self.items[index]
        return read_range(path, offset, size, self.cold)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_generator": None}  # each process seeds its own


class Images(FileItems):
    """Encoded images: ``(float32 CHW tensor, int label)`` per item."""

    def __init__(self, items: list[tuple[str, int, int, int]], augment: Augment, cold: bool):
        super().__init__(items, cold)
        self.augment = augment

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        with Image.open(io.BytesIO(self.read(index))) as encoded:
            image = encoded.convert("RGB")
        return self.augment(image, self.generator()), self.items[index][3]


class RawFiles(FileItems):
    """Each item is one file's bytes as a uint8 tensor."""

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.frombuffer(self.read(index), dtype=torch.uint8)


class TokenRows(Dataset[torch.Tensor]):
    """Rows of ``seq_len + 1`` token ids (int64), read through a memory map opened once per
    process."""

    def __init__(self, path: str, vocab: int) -> None:
        self.path = path
        self.vocab = vocab
        header = np.load(path, mmap_mode="r")
        self.shape = header.shape
        self._rows: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.shape[0])

    def nbytes(self, index: int) -> int:
        return int(self.shape[1]) * 4

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._rows is None:
            self._rows = np.load(self.path, mmap_mode="r")
        return torch.from_numpy(np.array(self._rows[index], dtype=np.int64))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_rows": None}


def _jpeg_items(path: str) -> list[tuple[str, int, int, int]]:
    with open(os.path.join(path, "labels.json"), encoding="utf-8") as handle:
        labels = json.load(handle)["labels"]
    items = []
    for index, label in enumerate(labels):
        file = os.path.join(path, "images", f"{index:06d}.jpg")
        items.append((file, 0, os.path.getsize(file), label))
    return items


def _tar_items(path: str) -> list[tuple[str, int, int, int]]:
    """Every shard's members, indexed once: where each image's bytes are and its label."""
    images: dict[str, tuple[str, int, int]] = {}
    labels: dict[str, int] = {}
    for shard in sorted(
        n for n in os.listdir(path) if n.startswith("shard-") and n.endswith(".tar")
    ):
        shard_path = os.path.join(path, shard)
        with tarfile.open(shard_path) as archive:
            for member in archive:
                key, _, ext = member.name.rpartition(".")
                if ext == "jpg":
                    images[key] = (shard_path, member.offset_data, member.size)
                elif ext == "cls":
                    extracted = archive.extractfile(member)
                    assert extracted is not None
                    labels[key] = int(extracted.read())
    missing = sorted(set(images) ^ set(labels))
    if missing:
        raise OSError(f"{path}: sample {missing[0]} lacks its .jpg or .cls member")
    return [(*images[key], labels[key]) for key in sorted(images)]


def _raw_items(path: str) -> list[tuple[str, int, int, int]]:
    names = sorted(n for n in os.listdir(path) if n.startswith("sample-") and n.endswith(".bin"))
    return [(os.path.join(path, n), 0, os.path.getsize(os.path.join(path, n)), 0) for n in names]


def open_dataset(
    path: str,
    params: dict[str, Any],
    *,
    output_size: int | None,
    train: bool,
    cold: bool = False,
) -> Dataset[Any]:
    """The dataset in asset directory ``path`` whose params are ``params`` (its index's).

    ``output_size`` is the image edge a model takes (default: the stored size); ``train``
    switches the random augmentation on; ``cold`` drops every range read from the page cache.
    """
    fmt = params["format"]
    if fmt in ("jpeg", "tar"):
        items = _jpeg_items(path) if fmt == "jpeg" else _tar_items(path)
        return Images(items, Augment(output_size or params["image_size"], train), cold)
    if fmt == "raw":
        return RawFiles(_raw_items(path), cold)
    if fmt == "tokens":
        return TokenRows(os.path.join(path, "tokens.npy"), params["vocab"])
    raise ValueError(f"unknown dataset format {fmt!r}")


class Wrapped(Dataset[Any]):
    """A view of another dataset; ``nbytes`` and ``reseed`` reach the one underneath."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name: str) -> Any:
        if name == "base":  # not set yet: unpickling in a worker
            raise AttributeError(name)
        return getattr(self.base, name)


class ForModel(Wrapped):
    """A dataset's items mapped to what a model's ``(inputs, targets)`` are."""

    def __init__(self, base: Any, convert: Callable[[Any], Any]) -> None:
        super().__init__(base)
        self.convert = convert

    def __getitem__(self, index: int) -> Any:
        return self.convert(self.base[index])


class WithSizes(Wrapped):
    """Each item with the bytes it read from files: ``(item, nbytes)``, so a batch carries
    what its items cost to read wherever the worker that read them ran."""

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.base[index], self.base.nbytes(index)


def next_token(row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return row[:-1], row[1:]


def class_of_row(row: torch.Tensor) -> tuple[torch.Tensor, int]:
    return row[:-1], int(row[-1]) % CLASSES


def for_model(dataset: Any, family: str, target: str = "class", vocab: int | None = None) -> Any:
    """``dataset`` yielding what a model of ``family`` trains on: images and class ids for
    vision; for language, token ids and either the next-token ids (``target`` "next_token",
    the decoder's) or a class id. A pairing that cannot train, or token ids beyond the model's
    ``vocab``, is a ``ValueError``."""
    if family == "vision" and isinstance(dataset, Images):
        return dataset
    if family == "language" and isinstance(dataset, TokenRows):
        if vocab is not None and dataset.vocab > vocab:
            raise ValueError(f"the dataset's vocab {dataset.vocab} exceeds the model's {vocab}")
        return ForModel(dataset, next_token if target == "next_token" else class_of_row)
    raise ValueError(f"a {type(dataset).__name__} dataset cannot feed a {family} model")


# --- the loader ----------------------------------------------------------------------------


def _seed_worker(worker_id: int) -> None:
    """Give the worker's copy of the dataset its own stream, from the seed the loader derived
    for this worker (the loader's seeded generator plus the worker's id)."""
    info = get_worker_info()
    reseed = getattr(info.dataset, "reseed", None) if info is not None else None
    if reseed is not None:
        reseed(info.seed)


def make_loader(
    dataset: Any,
    *,
    batch_size: int,
    num_workers: int,
    shuffle: bool,
    pin_memory: bool,
    seed: int,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader whose order and augmentation follow ``seed``. Workers persist across
    epochs, as in most training scripts; pinning needs an accelerator and is dropped without
    one (torch would only warn)."""
    reseed = getattr(dataset, "reseed", None)
    if reseed is not None and num_workers == 0:
        reseed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
    )


SHM_SIGNS = ("bus error", "out of shared memory", "shared memory", "no space left on device")


def _shm_size(path: str = "/dev/shm") -> str:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return f"{path} is missing"
    return f"{path} is {usage.total / 2**20:.0f} MiB ({usage.free / 2**20:.0f} MiB free)"


def explain_loader_error(exc: BaseException) -> Exception | None:
    """A DataLoader worker that died for lack of shared memory, as one line saying what to
    change; None for any other error. A worker that merely exited unexpectedly (torch cannot
    tell why) is explained as the likely cause, and said to be likely."""
    text = str(exc).lower()
    if "dataloader worker" not in text and "torch_" not in text:
        return None
    if any(sign in text for sign in SHM_SIGNS):
        what = "a DataLoader worker died for lack of shared memory"
    elif "exited unexpectedly" in text:
        what = "a DataLoader worker exited unexpectedly, most often for lack of shared memory"
    else:
        return None
    return RuntimeError(
        f"{what}: {_shm_size()}; batches from worker processes pass through it, so raise "
        "shm_size: on the docker target (e.g. shm_size: 1g), or lower num_workers or batch_size"
    )
