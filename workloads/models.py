"""Small reference models and synthetic batches for them, in plain torch.

The three models stand for the three common compute patterns: dense
matmuls (mlp), convolutions with normalisation (cnn) and attention (a
transformer encoder). They are small enough to run on any CPU in seconds,
and they depend on nothing beyond torch so every target can run them.
Batches are drawn on the CPU from the seeded global generator and then moved
to the device, so the same seed gives the same data on every host.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

NUM_CLASSES = 10
MLP_FEATURES = 512
MLP_HIDDEN = 1024
IMAGE_SHAPE = (3, 32, 32)
SEQUENCE_LENGTH = 64
VOCABULARY = 1000
D_MODEL = 128


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(MLP_FEATURES, MLP_HIDDEN),
        nn.ReLU(),
        nn.Linear(MLP_HIDDEN, MLP_HIDDEN),
        nn.ReLU(),
        nn.Linear(MLP_HIDDEN, NUM_CLASSES),
    )


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions around a shortcut."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(channels_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False),
                nn.BatchNorm2d(channels_out),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(IMAGE_SHAPE[0], 32, 3, 1, 1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(inplace=True),
        BasicBlock(32, 32, 1),
        BasicBlock(32, 64, 2),
        BasicBlock(64, 128, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, NUM_CLASSES),
    )


class Encoder(nn.Module):
    """Token classifier: embeddings, a 2-layer encoder, mean pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCABULARY, D_MODEL)
        self.position = nn.Parameter(torch.randn(SEQUENCE_LENGTH, D_MODEL) * 0.02)
        layer = nn.TransformerEncoderLayer(
            D_MODEL, nhead=4, dim_feedforward=4 * D_MODEL, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(D_MODEL, NUM_CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(self.embed(tokens) + self.position)
        return self.head(hidden.mean(dim=1))


def transformer() -> nn.Module:
    return Encoder()


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "mlp": mlp,
    "cnn": cnn,
    "transformer": transformer,
}


def input_shape(name: str, batch_size: int) -> list[int]:
    if name == "mlp":
        return [batch_size, MLP_FEATURES]
    if name == "cnn":
        return [batch_size, *IMAGE_SHAPE]
    if name == "transformer":
        return [batch_size, SEQUENCE_LENGTH]
    raise ValueError(f"unknown model {name!r}")


def build(name: str, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """Build a model with weights from the seeded global generator."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}")
    return BUILDERS[name]().to(device=device, dtype=dtype)


def make_batch(
    name: str, batch_size: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic (inputs, class targets) pair of the shape ``name`` takes.

    The transformer takes token ids, so ``dtype`` applies to float inputs
    only.
    """
    shape = input_shape(name, batch_size)
    if name == "transformer":
        inputs = torch.randint(0, VOCABULARY, shape)
    else:
        inputs = torch.randn(shape, dtype=torch.float32).to(dtype)
    targets = torch.randint(0, NUM_CLASSES, (batch_size,))
    return inputs.to(device), targets.to(device)


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
