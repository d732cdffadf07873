"""BERT and a Llama-style decoder, built by transformers from a config with random weights.

transformers is the field's definition of these architectures, so they are built with it rather
than restated; nothing is ever downloaded: the config is made here and the weights come from
the seeded global generator. The sizes live in ``workloads.presets``; transformers, whose
import alone takes seconds, is loaded only when a language model is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workloads.presets import (  # noqa: F401 (the registry reads the tables here too)
    BERT_MAX_POSITIONS,
    DEFAULT_PRESET,
    MODELS,
    SIZED,
    SIZING,
    preset_name,
    sizes,
)

if TYPE_CHECKING:
    from torch import nn

LLAMA_COMMON: dict[str, Any] = {  # Llama 3.2's, for every size
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
    "rope_parameters": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
    },
}


def bert_config(size: Mapping[str, int], num_classes: int) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=size["vocab"],
        hidden_size=size["hidden"],
        num_hidden_layers=size["layers"],
        num_attention_heads=size["heads"],
        intermediate_size=size["intermediate"],
        max_position_embeddings=BERT_MAX_POSITIONS,
        num_labels=num_classes,
    )


def llama_config(size: Mapping[str, int]) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=size["vocab"],
        hidden_size=size["hidden"],
        num_hidden_layers=size["layers"],
        num_attention_heads=size["heads"],
        num_key_value_heads=size["kv_heads"],
        intermediate_size=size["intermediate"],
        **LLAMA_COMMON,
    )


def build(
    name: str, preset: str | None, sizing: Mapping[str, int] | None, num_classes: int
) -> nn.Module:
    """The model wrapped so that ``model(token_ids) -> logits``: BERT with a linear classifier
    on its pooled output (``num_classes`` classes), or a Llama-style causal LM."""
    from transformers import BertForSequenceClassification, LlamaForCausalLM

    from workloads.hfwrappers import CausalLM, Classifier

    size = sizes(name, preset, sizing)
    if name == "bert":
        return Classifier(BertForSequenceClassification(bert_config(size, num_classes)))
    return CausalLM(LlamaForCausalLM(llama_config(size)))
