"""The model registry: published sizes, one call shape and loss for all, seeded weights, and the
generate kind on the tiny decoder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from workloads import models, run_workload
from workloads.common import median

REPO = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")
F32 = torch.float32

# Small inputs for every model, so one forward pass each takes well under a second.
TINY: dict[str, dict[str, Any]] = {
    "mlp": {},
    "cnn": {},
    "transformer": {"seq_len": 8},
    "resnet18": {"image_size": 32},
    "resnet50": {"image_size": 32},
    "bert": {"preset": "tiny", "seq_len": 8},
    "llama": {"preset": "tiny", "seq_len": 8},
}


def build(name: str, seed: int = 0, **options: Any) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.build(name, F32, CPU, **options)


def test_resnet_parameter_counts_are_torchvisions() -> None:
    assert models.parameter_count(build("resnet18")) == 11_689_512
    resnet50 = build("resnet50")
    assert models.parameter_count(resnet50) == 25_557_032
    # ResNet v1.5, as torchvision: a bottleneck strides in its 3x3 convolution, not its 1x1.
    first = resnet50.layer2[0]
    assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2)
    assert resnet50.state_dict()["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)


def test_bert_base_is_bert_base_uncased_with_a_classifier() -> None:
    meta = torch.device("meta")
    with meta:  # shapes only: initialising 110 M weights takes seconds
        model = models.build("bert", F32, meta)  # preset null: base
    encoder = models.parameter_count(model.model.bert)
    assert encoder == 109_482_240  # BertModel of bert-base-uncased, pooler included
    classes = models.num_classes("bert")
    assert models.parameter_count(model) == encoder + 768 * classes + classes


def test_llama_presets_and_sizing() -> None:
    meta = torch.device("meta")
    with meta:  # shapes only: no memory for a billion weights
        one_b = models.build("llama", F32, meta, preset="1b")
        small = models.build("llama", F32, meta, preset="small")
    assert models.parameter_count(one_b) == 1_235_814_400  # Llama-3.2-1B, tied embeddings
    assert 50_000_000 < models.parameter_count(small) < 200_000_000
    tiny = build("llama")  # preset null: tiny
    assert models.parameter_count(tiny) < 1_000_000
    sizing = {"layers": 3, "hidden": 32, "heads": 4, "kv_heads": 1, "vocab": 50}
    sized = build("llama", sizing=sizing)
    config = sized.model.config
    assert (config.num_hidden_layers, config.hidden_size) == (3, 32)
    assert (config.num_attention_heads, config.num_key_value_heads, config.vocab_size) == (4, 1, 50)
    assert config.intermediate_size == 4 * 32  # the preset's feed-forward ratio is kept


@pytest.mark.parametrize("name", models.NAMES)
def test_every_model_maps_inputs_to_logits_the_loss_takes(name: str) -> None:
    options = TINY[name]
    model = build(name, **options)
    inputs, targets = models.make_batch(name, 2, F32, CPU, **options)
    assert list(inputs.shape) == models.input_shape(name, 2, **options)
    logits = model(inputs)
    if models.target_kind(name) == "next_token":
        vocab = models.vocab_size(name, preset=options.get("preset"))
        assert logits.shape == (2, 8, vocab) and targets.shape == (2, 8)
        assert torch.equal(inputs[:, 1:], targets[:, :-1])  # targets: the next token
    else:
        assert logits.shape == (2, models.num_classes(name)) and targets.shape == (2,)
    loss = models.loss(logits, targets)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert models.family(name) in ("vision", "language", "tabular")


@pytest.mark.parametrize("name", ["resnet18", "bert", "llama"])
def test_weights_are_drawn_from_the_seed(name: str) -> None:
    options = {"preset": "tiny"} if name in ("bert", "llama") else {}
    first, again, other = (build(name, seed, **options).state_dict() for seed in (1, 1, 2))
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("mlp", {"image_size": 32}, "takes no image_size"),
        ("resnet18", {"preset": "tiny"}, "takes no preset"),
        ("cnn", {"seq_len": 8}, "takes no seq_len"),
        ("bert", {"sizing": {"layers": 2}}, "takes no sizing"),
        ("llama", {"preset": "base"}, "unknown preset 'base'"),
        ("llama", {"sizing": {"heads": 5}}, "heads (5) must divide hidden (64)"),
        ("llama", {"sizing": {"kv_heads": 3}}, "kv_heads (3) must divide heads (4)"),
        ("bert", {"seq_len": 513}, "seq_len 513 exceeds its 512"),
        ("transformer", {"seq_len": 65}, "seq_len 65 exceeds its 64"),
        ("resnet50", {"image_size": 8}, "image_size must be >= 16"),
        ("vgg", {}, "unknown model 'vgg'"),
    ],
)
def test_options_a_model_cannot_take_are_refused(
    name: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        models.resolve(name, **options)


def test_cached_decoding_matches_a_full_forward_pass() -> None:
    """A decoding step through the cache sees the same context as the whole sequence would."""
    model = build("llama").eval()
    tokens = torch.randint(0, 1000, (2, 6))
    with torch.inference_mode():
        cache = model.new_cache()
        model(tokens[:, :5], cache)
        step = model(tokens[:, 5:], cache)
        full = model(tokens)
    assert step.shape == (2, 1, 1000)
    torch.testing.assert_close(step[:, 0], full[:, -1], rtol=1e-4, atol=1e-4)


def test_language_models_load_transformers_only_when_built() -> None:
    """An mlp or cnn run must not pay transformers' import; the preset table needs no torch."""
    code = (
        "import sys, workloads.language\n"
        "assert 'torch' not in sys.modules\n"
        "import workloads.models\n"
        "assert 'transformers' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def generate(**options: Any) -> dict[str, Any]:
    workload = {"kind": "generate", "device": "cpu", "threads": 1, "preset": "tiny", **options}
    return run_workload({"workload": workload, "seed": 3})


def test_generate_reports_ttft_tpot_and_token_rate() -> None:
    result = generate(prompt_tokens=6, new_tokens=4, batch_size=2, requests=3, warmup_requests=1)
    metrics, raw = result["metrics"], result["raw"]
    assert len(raw["ttft_s"]) == len(raw["tpot_s"]) == len(raw["request_s"]) == 3
    assert len(raw["warmup_ttft_s"]) == len(raw["warmup_tpot_s"]) == 1
    assert metrics["gen.ttft_s"] == {"value": pytest.approx(median(raw["ttft_s"])), "unit": "s"}
    assert metrics["gen.tpot_s"]["value"] == pytest.approx(median(raw["tpot_s"]))
    rate = metrics["gen.tokens_per_s"]
    assert rate["unit"] == "tokens/s"
    assert rate["value"] == pytest.approx(2 * 4 * 3 / sum(raw["request_s"]))
    for ttft, tpot, whole in zip(raw["ttft_s"], raw["tpot_s"], raw["request_s"], strict=True):
        assert 0 < ttft < whole and 0 < tpot < whole  # each token is timed within its request
    info = result["info"]
    assert info["generated_tokens"] == 24 and info["measured_requests"] == 3
    assert result["info"]["parameters"] == models.parameter_count(build("llama"))


def test_generate_one_token_has_no_time_per_output_token() -> None:
    result = generate(prompt_tokens=4, new_tokens=1, requests=2, warmup_requests=0)
    assert "gen.tpot_s" not in result["metrics"]
    assert "no token follows the first" in result["absent"]["gen.tpot_s"]
    assert result["raw"]["tpot_s"] == [] and len(result["raw"]["ttft_s"]) == 2


@pytest.mark.parametrize(
    ("model", "options", "shape"),
    [
        ("llama", {"preset": "tiny", "seq_len": 8}, [1, 8]),
        ("resnet18", {"image_size": 32}, [1, 3, 32, 32]),
    ],
)
def test_inference_runs_the_new_models(model: str, options: dict[str, Any], shape: list) -> None:
    workload = {"kind": "inference", "model": model, "device": "cpu", "threads": 1, **options}
    workload |= {"min_query_count": 2, "warmup_queries": 1}
    result = run_workload({"workload": workload, "seed": 0})
    assert result["info"]["input_shape"] == shape
    assert len(result["raw"]["latency_s"]) == 2 and result["metrics"]["infer.throughput"]
