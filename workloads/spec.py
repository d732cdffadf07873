"""Validation of run specs, done before torch is imported.

A spec that cannot run (unknown kind, model or option, a size of zero) is rejected here so
the worker fails fast with exit code 2 and a message naming the bad field, instead of failing
deep inside torch after seconds of import. Options missing from the spec take documented
defaults; options a kind does not know are rejected, because a misspelled option silently
replaced by its default would measure something other than what was asked for. The option
table (``COMMON``, ``KINDS``) is also what the controller's suite schema is built from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workloads import presets, userentry
from workloads.assetid import STAGED
from workloads.options import (
    Kind,
    Option,
    SpecError,
    boolean,
    choice,
    integer,
    optional,
    positive_number,
    text,
)
from workloads.scenarios import SCENARIOS, check_inference


@dataclass(frozen=True)
class Spec:
    """A validated spec with every workload option filled in."""

    workload: dict[str, Any]
    seed: int
    progress_every_s: float
    samplers: bool = True  # false only to measure what the samplers themselves cost
    assets: dict[str, Any] | None = None  # where the checkpoint and dataset are (location set)

    @property
    def kind(self) -> str:
        return str(self.workload["kind"])


MODELS = ("mlp", "cnn", "transformer", "resnet18", "resnet50", "bert", "llama")
VISION = ("cnn", "resnet18", "resnet50")
LANGUAGE = ("transformer", "bert", "llama")
PRESETS = {name: tuple(table) for name, table in presets.MODELS.items()}
"""Named sizes of the language models."""
SIZING = presets.SIZING
"""Keys that override a llama preset's size."""
LOCATIONS = ("image", "volume", "tmpfs")
"""Where a workload's checkpoint and dataset live on the target: in the image (container layer,
guest disk, a directory), on a volume (bind mount, second virtio disk) or in RAM (tmpfs)."""
DATASET_FORMATS = ("jpeg", "tar", "raw", "tokens")
TRANSFORMER_VOCAB = 1000
SEQ_LIMIT = {"bert": presets.BERT_MAX_POSITIONS, "transformer": 64}
"""The longest sequence a model's position table holds (llama's rotary positions have none)."""

COMMON: dict[str, Option] = {
    "device": Option("auto", str, choices=("auto", "cpu", "cuda")),
    "dtype": Option("float32", str, choices=("float32", "bfloat16", "float16")),
    "threads": Option(None, int, ge=1, optional=True),
}

DATASET: dict[str, Option] = {
    "format": Option("jpeg", str, choices=DATASET_FORMATS),
    "samples": Option(256, int, ge=1),
    "image_size": Option(64, int, ge=16),
    "sample_bytes": Option(65536, int, ge=1),
    "shard_samples": Option(64, int, ge=1),
    "seq_len": Option(64, int, ge=2),
    "vocab": Option(1000, int, ge=2),
}
"""An on-disk dataset made once by the controller and staged at the workload's location."""

STAGING: dict[str, Option] = {
    "location": Option(None, str, choices=LOCATIONS, optional=True),
}


def _model_options(models: tuple[str, ...], default: str) -> dict[str, Option]:
    """What every kind that runs a model takes: which model, its size, how it computes."""
    return {
        "model": Option(default, str, choices=models),
        "preset": Option(None, str, choices=("tiny", "small", "base", "1b"), optional=True),
        **{key: Option(None, int, ge=1, optional=True) for key in SIZING},
        "image_size": Option(None, int, ge=16, optional=True),
        "seq_len": Option(None, int, ge=2, optional=True),
        "precision": Option("fp32", str, choices=("fp32", "bf16", "fp16")),
        "compile": Option(False, bool),
        **STAGING,
    }


KINDS: dict[str, Kind] = {
    "train_step": Kind(
        "Training steps: batches from a DataLoader, copied to the device, forward, loss, "
        "backward and optimizer step.",
        {
            **_model_options(MODELS, "mlp"),
            "batch_size": Option(64, int, ge=1),
            "steps": Option(30, int, ge=1),
            "warmup_steps": Option(5, int, ge=0),
            "optimizer": Option("adamw", str, choices=("sgd", "adam", "adamw")),
            "lr": Option(0.001, float, gt=0),
            "dataset": Option(None, dict, fields=DATASET, optional=True),
            "num_workers": Option(0, int, ge=0),
            "pin_memory": Option(True, bool),
        },
    ),
    "inference": Kind(
        "Inference driven by MLPerf LoadGen in one of its scenarios (single_stream, "
        "multi_stream, server, offline), with LoadGen's percentiles and VALID/INVALID verdict.",
        {
            **_model_options(MODELS, "mlp"),
            "scenario": Option("single_stream", str, choices=SCENARIOS),
            "batch_size": Option(1, int, ge=1),
            "min_query_count": Option(200, int, ge=1),
            "min_duration_s": Option(None, float, gt=0, optional=True),
            "max_duration_s": Option(None, float, gt=0, optional=True),
            "warmup_queries": Option(20, int, ge=0),
            "target_qps": Option(None, float, gt=0, optional=True),
            "target_latency_s": Option(None, float, gt=0, optional=True),
            "samples_per_query": Option(None, int, ge=1, optional=True),
        },
    ),
    "generate": Kind(
        "Text generation with a KV cache: a prompt, then one new token per forward pass.",
        {
            **_model_options(("llama",), "llama"),
            "prompt_tokens": Option(16, int, ge=1),
            "new_tokens": Option(8, int, ge=1),
            "batch_size": Option(1, int, ge=1),
            "requests": Option(4, int, ge=1),
            "warmup_requests": Option(1, int, ge=0),
        },
    ),
    "data_loading": Kind(
        "A dataset on disk read through torch's DataLoader: raw bytes, or JPEG files and "
        "shards decoded and augmented in the loader's worker processes.",
        {
            "samples": Option(2000, int, ge=1),
            "sample_bytes": Option(65536, int, ge=1),
            "batch_size": Option(64, int, ge=1),
            "num_workers": Option(2, int, ge=0),
            "epochs": Option(1, int, ge=1),
            "warmup_batches": Option(2, int, ge=0),
            "shuffle": Option(True, bool),
            "cold_cache": Option(False, bool),
            "dataset": Option(None, dict, fields=DATASET, optional=True),
            "pin_memory": Option(False, bool),
            **STAGING,
        },
    ),
    "command": Kind(
        "Any program, run as an argument list without a shell and without torch: its wall "
        "time from launch to exit, and the metrics it prints as JSON lines.",
        {
            "argv": Option(None, list, items=str, ge=1),
            "env": Option(None, dict, optional=True),
        },
        torch=False,
    ),
    "python": Kind(
        "Your own code: a directory shipped to every target, its module:function called as "
        "run(ctx, **params), the iterations it asks for timed.",
        {
            "path": Option(None, str),
            "entry": Option(None, str),
            "params": Option(None, dict, optional=True),
            "requirements": Option(None, list, items=str, optional=True),
        },
    ),
}


def _workload(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise SpecError("spec.workload must be an object")
    kind = choice(*KINDS)("workload.kind", raw.get("kind"))
    known = options(kind)
    unknown = sorted(set(raw) - set(known) - {"name", "kind"})
    if unknown:
        raise SpecError(f"unknown option(s) {unknown} for kind {kind!r}; known: {sorted(known)}")
    workload: dict[str, Any] = {
        "name": text("workload.name", raw.get("name", kind)),
        "kind": kind,
    }
    for key, option in known.items():
        workload[key] = option.check(f"workload.{key}", raw.get(key, option.default))
    return workload


def options(kind: str) -> dict[str, Option]:
    """Every option of ``kind``, common ones first, in the order a filled spec lists them."""
    return {**COMMON, **KINDS[kind].options}


def total_batches(workload: Mapping[str, Any]) -> int:
    """Batches a data-loading run reads: every epoch, last partial batch kept."""
    samples = (workload.get("dataset") or {}).get("samples", workload["samples"])
    per_epoch = -(-samples // workload["batch_size"])
    return per_epoch * workload["epochs"]


def warmup_leaves_batches(workload: Mapping[str, Any]) -> bool:
    """Whether a data-loading run measures anything: its warmup batches are left out of the
    statistics, so it must read more batches than that."""
    return workload["warmup_batches"] < total_batches(workload)


def _check_data_loading(workload: Mapping[str, Any]) -> None:
    if not warmup_leaves_batches(workload):
        raise SpecError(
            f"workload.warmup_batches ({workload['warmup_batches']}) must be less than the "
            f"number of batches ({total_batches(workload)} = ceil(samples / batch_size) x epochs)"
        )
    dataset = workload["dataset"]
    if dataset is not None and dataset["format"] == "tokens":
        raise SpecError("workload.dataset.format tokens feeds a language model's train_step")


def _check_model(workload: Mapping[str, Any]) -> None:
    """Options that only some models understand: given to another, they would be ignored,
    and the run would measure something other than what the suite says."""
    model = workload["model"]
    preset = workload["preset"]
    if preset is not None and preset not in PRESETS.get(model, ()):
        known = list(PRESETS.get(model, ())) or "none"
        raise SpecError(
            f"workload.preset {preset!r} is not a size of {model}; its presets: {known}"
        )
    sizing = [key for key in SIZING if workload[key] is not None]
    if sizing and model != "llama":
        raise SpecError(f"workload.{sizing[0]} sizes a llama model, not {model}")
    if workload["image_size"] is not None and model not in VISION:
        raise SpecError(f"workload.image_size applies to {list(VISION)}, not {model}")
    if workload["seq_len"] is not None and model not in LANGUAGE:
        raise SpecError(f"workload.seq_len applies to {list(LANGUAGE)}, not {model}")
    limit = SEQ_LIMIT.get(model)
    if limit is not None and (workload["seq_len"] or 0) > limit:
        raise SpecError(f"workload.seq_len {workload['seq_len']} exceeds {model}'s {limit}")
    if model in presets.MODELS:
        overrides = {key: workload[key] for key in SIZING}
        try:
            presets.sizes(model, preset, overrides)
        except ValueError as exc:
            raise SpecError(f"workload: {exc}") from None
    if workload["dtype"] != "float32" and workload["precision"] != "fp32":
        raise SpecError("workload.dtype and workload.precision both set: use precision")


def _check_dataset(workload: Mapping[str, Any]) -> None:
    dataset = workload.get("dataset")
    if dataset is None:
        return
    if workload.get("location") is None:
        raise SpecError("workload.dataset needs workload.location (image, volume or tmpfs)")
    model = workload.get("model")
    if model is None:
        return
    wanted = ("jpeg", "tar") if model in VISION else ("tokens",) if model in LANGUAGE else ()
    if dataset["format"] not in wanted:
        fits = f"one of {list(wanted)}" if wanted else "none (it trains on synthetic rows)"
        raise SpecError(
            f"workload.dataset.format {dataset['format']!r} cannot feed {model}: {fits}"
        )
    if dataset["format"] == "tokens" and dataset["vocab"] > model_vocab(workload):
        raise SpecError(
            f"workload.dataset.vocab {dataset['vocab']} exceeds {model}'s vocabulary "
            f"of {model_vocab(workload)} token ids"
        )


def model_vocab(workload: Mapping[str, Any]) -> int:
    """The token-id range a language model embeds."""
    model = workload["model"]
    if model not in presets.MODELS:
        return TRANSFORMER_VOCAB
    overrides = {key: workload[key] for key in SIZING}
    return presets.sizes(model, workload["preset"], overrides)["vocab"]


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_command(workload: Mapping[str, Any]) -> None:
    """What a program cannot be started with, found before any deployment, and the common
    options that mean nothing to a program bench does not build (they would be ignored)."""
    for index, word in enumerate(workload["argv"]):
        if "\0" in word:
            raise SpecError(f"workload.argv[{index}] contains a NUL character")
    env = workload["env"] or {}
    for key, value in env.items():
        if not ENV_NAME.fullmatch(key):
            raise SpecError(
                f"workload.env: invalid variable name {key!r} (letters, digits and '_', "
                "not starting with a digit)"
            )
        if not isinstance(value, str) or "\0" in value:
            raise SpecError(f'workload.env.{key}: a value is a string (quote numbers: "4")')
    if workload["device"] == "cpu" and "CUDA_VISIBLE_DEVICES" in env:
        raise SpecError(
            "workload.env.CUDA_VISIBLE_DEVICES contradicts device: cpu, which hides every GPU"
        )
    for key, default in (("dtype", "float32"), ("threads", None)):
        if workload[key] != default:
            raise SpecError(
                f"workload.{key} does not apply to a command: set the program's own "
                "precision or thread count in its argv or env"
            )


def check_workload(workload: Mapping[str, Any]) -> None:
    """Rules across a filled workload's options; the controller's suite check calls this too."""
    if "model" in workload:
        _check_model(workload)
    if workload["kind"] == "inference":
        check_inference(workload)
    if workload["kind"] == "data_loading":
        _check_data_loading(workload)
    if workload["kind"] == "command":
        _check_command(workload)
    if workload["kind"] == "python":
        userentry.check_options(workload)
    _check_dataset(workload)


def extras(workload: Mapping[str, Any]) -> set[str]:
    """The optional package groups a filled workload needs on its targets: Pillow to decode a
    JPEG dataset, transformers to build BERT and Llama. The others need torch alone."""
    needed = set()
    if (workload.get("dataset") or {}).get("format") in ("jpeg", "tar"):
        needed.add("pillow")
    if workload.get("model") in ("bert", "llama"):
        needed.add("transformers")
    return needed


ASSET = {"path": text, "sha256": text}


def _assets(raw: Any) -> dict[str, Any] | None:
    """Where the controller put the workload's checkpoint and dataset on this target."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SpecError("spec.assets must be an object")
    unknown = sorted(set(raw) - {*STAGED, "stage_to", "location"})
    if unknown:
        raise SpecError(f"unknown key(s) {unknown} in spec.assets")
    out: dict[str, Any] = {
        "location": choice(*LOCATIONS)("spec.assets.location", raw.get("location")),
        "stage_to": optional(text)("spec.assets.stage_to", raw.get("stage_to")),
    }
    for name in STAGED:
        entry = raw.get(name)
        if entry is not None:
            if not isinstance(entry, Mapping) or set(entry) != set(ASSET):
                raise SpecError(f"spec.assets.{name} must be an object with path and sha256")
            out[name] = {
                k: check(f"spec.assets.{name}.{k}", entry[k]) for k, check in ASSET.items()
            }
    return out


def validate(raw: Any) -> Spec:
    """Check a decoded spec and fill in defaults."""
    if not isinstance(raw, Mapping):
        raise SpecError("spec must be a JSON object")
    if "workload" not in raw:
        raise SpecError("spec.workload is missing")
    workload = _workload(raw["workload"])
    check_workload(workload)
    assets = _assets(raw.get("assets"))
    if workload.get("location") is not None and assets is None:
        raise SpecError("workload.location is set but the spec carries no assets")
    seed = integer(0)("spec.seed", raw.get("seed", 0))
    every = raw.get("progress_every_s")
    every = 0.5 if every is None else positive_number("spec.progress_every_s", every)
    samplers = boolean("spec.samplers", raw.get("samplers", True))
    return Spec(
        workload=workload, seed=seed, progress_every_s=every, samplers=samplers, assets=assets
    )


def parse(source: str) -> Spec:
    """Decode and validate a JSON spec."""
    try:
        raw = json.loads(source)
    except json.JSONDecodeError as exc:
        raise SpecError(f"spec is not valid JSON: {exc}") from exc
    return validate(raw)
