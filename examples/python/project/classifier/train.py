"""The entry bench calls: ``run(ctx, **params)`` trains the classifier for ``steps`` timed
steps, then records its accuracy on held-out images as a metric of its own."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from classifier import data, model


def forever(loader: torch.utils.data.DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


@torch.no_grad()
def accuracy(net: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device) -> float:
    net.eval()
    right = total = 0
    for images, labels in loader:
        predicted = net(images.to(device)).argmax(dim=1).cpu()
        right += int((predicted == labels).sum())
        total += len(labels)
    return right / total


def run(
    ctx,
    steps: int = 100,
    warmup: int = 10,
    batch_size: int = 32,
    samples: int = 1024,
    size: int = 16,
    channels: int = 16,
    workers: int = 0,
    lr: float = 0.01,
    held_out: int = 256,
) -> None:
    train = data.loader(samples, size, batch_size, ctx.seed, workers, shuffle=True)
    test = data.loader(held_out, size, min(held_out, 64), ctx.seed + 1, 0, shuffle=False)
    net = model.build(channels).to(ctx.device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    batches = forever(train)
    ctx.ready()  # the model and the loaders exist: start-up ends here

    net.train()
    for _ in ctx.iterations(steps, warmup=warmup, items_per_iteration=batch_size, unit="images"):
        images, labels = next(batches)
        images, labels = images.to(ctx.device), labels.to(ctx.device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(images), labels)
        loss.backward()
        optimizer.step()

    ctx.record("final_loss", loss.item())
    ctx.record("accuracy", accuracy(net, test, ctx.device))
