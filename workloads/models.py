"""The model registry: every model a workload can name, its synthetic batches and its loss.

Every model is called as ``model(inputs) -> logits``. Three small reference models stand for
the three common compute patterns and depend on nothing beyond torch: dense matmuls (mlp),
convolutions with normalisation (cnn) and attention (a transformer encoder); they run on any
CPU in seconds. The real architectures are ResNet-18/50 (``workloads.resnet``, plain torch),
BERT and a Llama-style decoder (``workloads.language``, transformers, imported only when one is
built). Weights and batches are drawn on the CPU from the seeded global generator and then
moved to the device, so the same seed gives the same model and data on every host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workloads import language, resnet
from workloads.spec import LANGUAGE, SEQ_LIMIT, TRANSFORMER_VOCAB, VISION
from workloads.spec import MODELS as NAMES

NUM_CLASSES = 10
MLP_FEATURES = 512
MLP_HIDDEN = 1024
IMAGE_SHAPE = (3, 32, 32)
SEQUENCE_LENGTH = 64
VOCABULARY = TRANSFORMER_VOCAB
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
    """Token classifier: embeddings, a 2-layer encoder, mean pooling. Its learned positions
    hold ``SEQUENCE_LENGTH`` tokens; a shorter sequence uses the first ones."""

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
        hidden = self.encoder(self.embed(tokens) + self.position[: tokens.shape[1]])
        return self.head(hidden.mean(dim=1))


def transformer() -> nn.Module:
    return Encoder()


TABULAR = ("mlp",)
DEFAULT_IMAGE_SIZE = {"cnn": IMAGE_SHAPE[1], "resnet18": 224, "resnet50": 224}
DEFAULT_SEQ_LEN = {"transformer": SEQUENCE_LENGTH, "bert": 128, "llama": 64}
"""The longest sequence a model's learned position table holds (llama's rotary ones do not end)."""
MIN_IMAGE_SIZE = 16  # ResNet's five halvings still leave one pixel
CLASSES = {
    "mlp": NUM_CLASSES,
    "cnn": NUM_CLASSES,
    "transformer": NUM_CLASSES,
    "resnet18": resnet.NUM_CLASSES,
    "resnet50": resnet.NUM_CLASSES,
    "bert": NUM_CLASSES,
}


@dataclass(frozen=True)
class Resolved:
    """A model's name and the options it takes, defaults filled in and checked."""

    name: str
    preset: str | None = None
    image_size: int | None = None
    seq_len: int | None = None
    sizing: Mapping[str, int] | None = None


def _refuse_foreign(name: str, given: Mapping[str, Any]) -> None:
    """A ValueError for an unknown model, or an option given to a model that does not take it."""
    if name not in NAMES:
        raise ValueError(f"unknown model {name!r}; known: {list(NAMES)}")
    takes = {
        "preset": name in language.MODELS,
        "image_size": name in VISION,
        "seq_len": name in LANGUAGE,
        "sizing": name in language.SIZED,
    }
    for key, value in given.items():
        if value is not None and not takes[key]:
            raise ValueError(f"model {name} takes no {key} (got {value!r})")


def resolve(
    name: str,
    *,
    preset: str | None = None,
    image_size: int | None = None,
    seq_len: int | None = None,
    sizing: Mapping[str, int] | None = None,
) -> Resolved:
    """Fill in ``name``'s defaults; ValueError for an option the model does not take, so a
    value meant for another model is never silently ignored."""
    given_sizing = {key: value for key, value in (sizing or {}).items() if value is not None}
    given = {"preset": preset, "image_size": image_size, "seq_len": seq_len}
    _refuse_foreign(name, {**given, "sizing": given_sizing or None})
    if name in language.MODELS:
        language.sizes(name, preset, given_sizing)  # raises on a bad preset or size
    if image_size is not None and image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"model {name}: image_size must be >= {MIN_IMAGE_SIZE}, got {image_size}")
    if name in VISION:
        image_size = image_size or DEFAULT_IMAGE_SIZE[name]
    if name in LANGUAGE:
        seq_len = seq_len or DEFAULT_SEQ_LEN[name]
        if seq_len > SEQ_LIMIT.get(name, seq_len):
            raise ValueError(f"model {name}: seq_len {seq_len} exceeds its {SEQ_LIMIT[name]}")
    return Resolved(name, preset, image_size, seq_len, given_sizing or None)


def options(workload: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``build``/``make_batch``/``input_shape`` that a filled workload
    gives (an absent key is null: the model's default)."""
    sizing = {key: workload[key] for key in language.SIZING if workload.get(key) is not None}
    return {
        "preset": workload.get("preset"),
        "image_size": workload.get("image_size"),
        "seq_len": workload.get("seq_len"),
        "sizing": sizing or None,
    }


def family(name: str) -> str:
    """What a model's inputs are: "vision" images, "language" token ids, "tabular" features."""
    for label, names in (("tabular", TABULAR), ("vision", VISION), ("language", LANGUAGE)):
        if name in names:
            return label
    raise ValueError(f"unknown model {name!r}; known: {list(NAMES)}")


def target_kind(name: str) -> str:
    """ "next_token" for the decoder (targets [B, T] of token ids), else "class" ([B])."""
    family(name)
    return "next_token" if name == "llama" else "class"


def num_classes(name: str) -> int | None:
    """The class count of a classifier; None for the decoder, whose targets are token ids."""
    family(name)
    return CLASSES.get(name)


def vocab_size(
    name: str, *, preset: str | None = None, sizing: Mapping[str, int] | None = None
) -> int | None:
    """The token-id range a language model takes; None for the others."""
    if name in language.MODELS:
        return language.sizes(name, preset, sizing)["vocab"]
    family(name)
    return VOCABULARY if name == "transformer" else None


def _construct(model: Resolved) -> nn.Module:
    name = model.name
    if name == "mlp":
        return mlp()
    if name == "cnn":
        return cnn()
    if name == "transformer":
        return transformer()
    if name == "resnet18":
        return resnet.resnet18(CLASSES[name])
    if name == "resnet50":
        return resnet.resnet50(CLASSES[name])
    return language.build(name, model.preset, model.sizing, CLASSES.get(name, 0))


def build(
    name: str,
    dtype: torch.dtype,
    device: torch.device,
    *,
    preset: str | None = None,
    image_size: int | None = None,
    seq_len: int | None = None,
    sizing: Mapping[str, int] | None = None,
) -> nn.Module:
    """Build a model with weights from the seeded global generator.

    The weights do not depend on ``image_size`` or ``seq_len``; they are checked here all the
    same, so an option the model cannot take fails before the run.
    """
    model = resolve(name, preset=preset, image_size=image_size, seq_len=seq_len, sizing=sizing)
    return _construct(model).to(device=device, dtype=dtype)


def input_shape(
    name: str,
    batch_size: int,
    *,
    preset: str | None = None,
    image_size: int | None = None,
    seq_len: int | None = None,
    sizing: Mapping[str, int] | None = None,
) -> list[int]:
    model = resolve(name, preset=preset, image_size=image_size, seq_len=seq_len, sizing=sizing)
    if name == "mlp":
        return [batch_size, MLP_FEATURES]
    if model.image_size is not None:
        return [batch_size, IMAGE_SHAPE[0], model.image_size, model.image_size]
    assert model.seq_len is not None
    return [batch_size, model.seq_len]


def make_batch(
    name: str,
    batch_size: int,
    dtype: torch.dtype,
    device: torch.device,
    *,
    preset: str | None = None,
    image_size: int | None = None,
    seq_len: int | None = None,
    sizing: Mapping[str, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic (inputs, targets) pair of what ``name`` takes and ``loss`` compares.

    Language models take token ids, so ``dtype`` applies to float inputs only. The decoder's
    targets are its inputs shifted by one token, as in causal language-model training.
    """
    kwargs = {"preset": preset, "image_size": image_size, "seq_len": seq_len, "sizing": sizing}
    shape = input_shape(name, batch_size, **kwargs)
    vocab = vocab_size(name, preset=preset, sizing=sizing)
    if name == "llama":
        assert vocab is not None
        tokens = torch.randint(0, vocab, [batch_size, shape[1] + 1])
        inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
        return inputs.to(device), targets.to(device)
    if vocab is not None:
        inputs = torch.randint(0, vocab, shape)
    else:
        inputs = torch.randn(shape, dtype=torch.float32).to(dtype)
    targets = torch.randint(0, CLASSES[name], (batch_size,))
    return inputs.to(device), targets.to(device)


def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in float32, so reduced-precision runs differ in the model's arithmetic
    only; a decoder's [B, T, V] logits and [B, T] targets are flattened to one row a token."""
    return nn.functional.cross_entropy(logits.float().flatten(0, -2), targets.flatten())


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
