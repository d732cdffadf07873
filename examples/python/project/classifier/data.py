"""Synthetic "stripes" images: class k is a horizontal, vertical or diagonal pattern at one of
a few frequencies, under noise. Made on the fly from a seed, so the dataset needs no files and
every target sees the same samples."""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset

CLASSES = 6


class Stripes(Dataset):
    """``samples`` images of ``size`` x ``size`` pixels (one channel) and their labels."""

    def __init__(self, samples: int, size: int, seed: int) -> None:
        self.samples, self.size, self.seed = samples, size, seed
        grid = torch.arange(size, dtype=torch.float32)
        self.ys, self.xs = torch.meshgrid(grid, grid, indexing="ij")

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        label = int(torch.randint(CLASSES, (), generator=generator))
        direction, frequency = divmod(label, 2)
        coordinate = (self.ys, self.xs, self.xs + self.ys)[direction]
        image = torch.sin(coordinate * math.pi * (frequency + 1) / 4)
        image = image + 0.3 * torch.randn(self.size, self.size, generator=generator)
        return image.unsqueeze(0), label


def loader(
    samples: int, size: int, batch_size: int, seed: int, workers: int, shuffle: bool
) -> DataLoader:
    """Batches of ``Stripes``; shuffled by a generator seeded from ``seed``."""
    order = torch.Generator().manual_seed(seed)
    return DataLoader(
        Stripes(samples, size, seed),
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        generator=order,
        drop_last=True,
    )
