"""BERT and a Llama-style decoder, built by transformers from a config with random weights.

transformers is the field's definition of these architectures, so they are built with it rather
than restated; nothing is ever downloaded: the config is made here and the weights come from
the seeded global generator. This module imports only the standard library at module level, so
the preset table can be read where torch is absent (validating a spec), and transformers, whose
import alone takes seconds, is loaded only when a language model is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

# Sizes per preset. bert base is bert-base-uncased; llama 1b is Llama-3.2-1B (1,235,814,400
# parameters); the tiny presets run in seconds on one CPU and in an emulated guest.
MODELS: dict[str, dict[str, dict[str, int]]] = {
    "bert": {
        "tiny": {"layers": 2, "hidden": 128, "heads": 2, "intermediate": 512, "vocab": 1000},
        "base": {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072, "vocab": 30522},
    },
    "llama": {
        "tiny": {
            "layers": 2,
            "hidden": 64,
            "heads": 4,
            "kv_heads": 2,
            "intermediate": 256,
            "vocab": 1000,
        },
        "small": {
            "layers": 12,
            "hidden": 768,
            "heads": 12,
            "kv_heads": 4,
            "intermediate": 3072,
            "vocab": 32000,
        },
        "1b": {
            "layers": 16,
            "hidden": 2048,
            "heads": 32,
            "kv_heads": 8,
            "intermediate": 8192,
            "vocab": 128256,
        },
    },
}
DEFAULT_PRESET = {"bert": "base", "llama": "tiny"}
SIZING = ("layers", "hidden", "heads", "kv_heads", "vocab")  # what a workload may override
SIZED = ("llama",)  # the models that take those overrides
BERT_MAX_POSITIONS = 512  # learned absolute positions: the longest sequence BERT takes
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


def preset_name(name: str, preset: str | None) -> str:
    """``preset``, or the model's default when null; ValueError for one the model lacks."""
    if name not in MODELS:
        raise ValueError(f"model {name!r} is not a language model of {sorted(MODELS)}")
    chosen = DEFAULT_PRESET[name] if preset is None else preset
    if chosen not in MODELS[name]:
        raise ValueError(f"model {name}: unknown preset {chosen!r}; known: {list(MODELS[name])}")
    return chosen


def sizes(
    name: str, preset: str | None = None, sizing: Mapping[str, int] | None = None
) -> dict[str, int]:
    """The preset's sizes with the workload's overrides, checked to form a valid model.

    A hidden size given without an intermediate one keeps the preset's feed-forward ratio.
    """
    base = MODELS[name][preset_name(name, preset)]
    given = {key: value for key, value in (sizing or {}).items() if value is not None}
    if given and name not in SIZED:
        raise ValueError(f"model {name}: sizing keys {sorted(given)} apply to llama only")
    unknown = sorted(set(given) - set(SIZING))
    if unknown:
        raise ValueError(f"model {name}: unknown sizing keys {unknown}; known: {list(SIZING)}")
    out = {**base, **given}
    if "hidden" in given:
        out["intermediate"] = base["intermediate"] * out["hidden"] // base["hidden"]
    _check_sizes(name, out)
    return out


def _check_sizes(name: str, out: Mapping[str, int]) -> None:
    for key, value in out.items():
        if value < 1:
            raise ValueError(f"model {name}: {key} must be >= 1, got {value}")
    if out["hidden"] % out["heads"]:
        raise ValueError(
            f"model {name}: heads ({out['heads']}) must divide hidden ({out['hidden']})"
        )
    if "kv_heads" in out and out["heads"] % out["kv_heads"]:
        raise ValueError(
            f"model {name}: kv_heads ({out['kv_heads']}) must divide heads ({out['heads']})"
        )


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
