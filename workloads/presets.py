"""The language models' named sizes and the rules a size must follow, as plain data.

Only the standard library is imported, so the controller checks a suite's presets and sizing
keys with the same table the worker builds from, without torch or transformers.
"""

from __future__ import annotations

from collections.abc import Mapping

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
