"""Text generation with a key/value cache: time to first token and time per output token.

A request is a prompt of ``prompt_tokens`` token ids in each of ``batch_size`` rows, then
``new_tokens`` greedy tokens: one forward pass over the whole prompt (prefill) gives the
first, and each later token is one pass over the previous token alone, attending to the rest
through the cache. Every token is timed with the device synchronised, so the time to first
token (TTFT) is prefill latency and the time per output token (TPOT) the decoding step: the
two figures LLM serving is judged by, and they stress a host differently (prefill is
compute-bound, decoding reads every weight once per token).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from workloads import models, modelsetup
from workloads.assets import StagedAssets
from workloads.common import median, metric, synchronizer
from workloads.context import Context, Outcome
from workloads.loop import run_loop

SINGLE_TOKEN = "new_tokens is 1: no token follows the first"
Forward = Callable[[torch.Tensor, Any], torch.Tensor]


def make_request(
    forward: Forward,
    new_cache: Callable[[], Any],
    prompt: torch.Tensor,
    new_tokens: int,
    sync: Callable[[], None],
    record: list[list[float]],
) -> Callable[[], None]:
    """One request: a fresh cache, the prompt, then greedy tokens; appends the per-token times
    (the first is the TTFT) to ``record``."""
    clock = time.perf_counter

    def request() -> None:
        cache = new_cache()
        tokens = prompt
        times: list[float] = []
        for _ in range(new_tokens):
            started = clock()
            logits = forward(tokens, cache)
            tokens = logits[:, -1].argmax(dim=-1, keepdim=True)
            sync()
            times.append(clock() - started)
        record.append(times)

    return request


def per_request(record: list[list[float]]) -> tuple[list[float], list[float]]:
    """Each request's TTFT, and its median time per token after the first (none when only
    one token was generated)."""
    ttft = [times[0] for times in record]
    tpot = [median(times[1:]) for times in record if len(times) > 1]
    return ttft, tpot


def _metrics(
    ttft: list[float], tpot: list[float], tokens: int, seconds: float
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    metrics = {
        "gen.ttft_s": metric(median(ttft), "s"),
        "gen.tokens_per_s": metric(tokens / seconds, "tokens/s"),
    }
    if not tpot:
        return metrics, {"gen.tpot_s": SINGLE_TOKEN}
    metrics["gen.tpot_s"] = metric(median(tpot), "s")
    return metrics, {}


def run(ctx: Context) -> Outcome:
    return modelsetup.run(ctx, _measure)


def _measure(ctx: Context, setup: modelsetup.Setup, _: StagedAssets) -> Outcome:
    cfg = ctx.workload
    batch_size = cfg["batch_size"]
    prompt_tokens, new_tokens = cfg["prompt_tokens"], cfg["new_tokens"]
    warmup, requests = cfg["warmup_requests"], cfg["requests"]
    model = setup.model.eval()
    options = models.options(cfg)
    vocab = models.vocab_size(cfg["model"], preset=options["preset"], sizing=options["sizing"])
    assert vocab is not None
    prompt = torch.randint(0, vocab, (batch_size, prompt_tokens)).to(ctx.device)
    record: list[list[float]] = []
    sync = synchronizer(ctx.device)
    with torch.inference_mode(), setup.autocast():
        forward = modelsetup.compiled(
            setup,
            cfg["compile"],
            lambda f: make_request(f, model.new_cache, prompt, new_tokens, sync, [])(),
            ctx,
        )
        request = make_request(forward, model.new_cache, prompt, new_tokens, sync, record)
        monitor = ctx.monitor(ctx.device)
        ctx.ready(str(ctx.device))
        reporter = ctx.reporter(warmup + requests)
        loop = run_loop(request, warmup, requests, sync, reporter, monitor)
    warm_ttft, warm_tpot = per_request(record[:warmup])
    ttft, tpot = per_request(record[warmup:])
    generated = batch_size * new_tokens * len(loop.measured_times)
    metrics, absent = _metrics(ttft, tpot, generated, sum(loop.measured_times))
    return Outcome(
        loop=loop,
        metrics=metrics,
        absent=absent,
        raw={
            "ttft_s": ttft,
            "tpot_s": tpot,
            "request_s": loop.measured_times,
            "warmup_ttft_s": warm_ttft,
            "warmup_tpot_s": warm_tpot,
            "warmup_request_s": loop.warmup_times,
        },
        info={
            "model": cfg["model"],
            "preset": options["preset"],
            "batch_size": batch_size,
            "prompt_tokens": prompt_tokens,
            "new_tokens": new_tokens,
            "generated_tokens": generated,
            "measured_requests": len(loop.measured_times),
            "warmup_requests": len(loop.warmup_times),
        },
    )
