"""transformers models behind the call every workload makes: ``model(inputs) -> logits``.

transformers returns output records whose fields differ per model; the training, inference and
generation loops stay model-agnostic by calling these wrappers instead. The wrapped model is the
``model`` attribute, so state dicts carry a ``model.`` prefix on every key.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Classifier(nn.Module):
    """A sequence classifier (BERT): token ids [B, T] -> class logits [B, C]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=inputs).logits


class CausalLM(nn.Module):
    """A decoder: token ids [B, T] -> next-token logits [B, T, V].

    With a ``cache`` (see ``new_cache``) the call is one decoding step: the cache is extended
    in place with the new tokens' keys and values, and only the last position's logits
    [B, 1, V] are computed, as transformers' own ``generate`` does.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, cache: Any | None = None) -> torch.Tensor:
        if cache is None:
            return self.model(input_ids=inputs, use_cache=False).logits
        return self.model(input_ids=inputs, cache=cache, use_cache=True, logits_to_keep=1).logits

    def new_cache(self) -> Any:
        """An empty key/value cache for one generation request."""
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)
