"""A small convolutional classifier."""

from __future__ import annotations

from torch import nn

from classifier.data import CLASSES


def build(channels: int) -> nn.Module:
    """Two convolutions, global pooling, one linear layer."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, CLASSES),
    )
