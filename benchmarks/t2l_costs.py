"""Adaptation cost of Text-to-LoRA against 3-shot prompting: counted FLOPs and measured wall time.

FLOPs are counted, not profiled: every ``nn.Linear`` that runs adds ``2 * rows * in * out`` (rows = tokens or
flattened batch rows), and attention adds ``2 * 2 * T^2 * d`` per layer for QK^T and AV (half of it when causal).
The adapter's cost is the task encoder on one description plus the hypernetwork forward; the 3-shot cost is the
extra prefill of the demonstration tokens for one query, ``2 * non-embedding params * extra tokens`` plus the
extra attention (the language-model head runs on the last position only, so it is left out there).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from lora_hyper.data_modules.collate import chat_prompt_ids
from lora_hyper.encoders.task import (
    BASE_ENCODER,
    DEFAULT_ENCODER,
    TaskEncoder,
    normalize_description,
    packaged_minilm_dir,
)

from common import time_call


@contextmanager
def count_linear_flops() -> Iterator[dict[str, int]]:
    """Count ``2 * rows * in * out`` for every ``nn.Linear`` forward run inside the block (all modules)."""
    counter = {"flops": 0, "calls": 0}

    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        if isinstance(module, nn.Linear) and args:
            x = args[0]
            rows = x.numel() // x.shape[-1]
            counter["flops"] += 2 * rows * module.in_features * module.out_features
            counter["calls"] += 1

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()


def attention_flops(n_layers: int, hidden: int, tokens: int, causal: bool) -> int:
    """QK^T and AV matmuls of one sequence: ``2 * 2 * T^2 * d`` per layer (half when causal)."""
    full = 4 * tokens * tokens * hidden
    return n_layers * (full // 2 if causal else full)


def non_embedding_params(model: nn.Module) -> int:
    """Parameters outside the input embedding (a tied LM head counts once, as the embedding)."""
    emb = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters()) - emb.numel()


def _config_dims(config: Any) -> tuple[int, int]:
    config = getattr(config, "text_config", None) or config
    return int(config.num_hidden_layers), int(config.hidden_size)


def _fresh_encoder(module: Any, device: torch.device) -> TaskEncoder:
    """A task encoder like the module's but without any embedding cache, so every call really encodes."""
    cfg = module.encoder.config()
    if cfg["name"] == BASE_ENCODER:
        return TaskEncoder(**cfg, model=module.base_model, tokenizer=module.tokenizer, disk_cache=False)
    adapted = module.encoder.adapted_state() or None  # trained top layers (task_encoder.train_layers), if any
    return TaskEncoder(
        **cfg, disk_cache=False, device=device if device.type == "cuda" else None, adapted=adapted
    )


def adapter_cost(module: Any, descriptions: list[str], device: torch.device) -> dict[str, Any]:
    """FLOPs and wall time to turn one unseen description into an adapter (task encoder + hypernetwork)."""
    from transformers import AutoConfig, AutoTokenizer

    encoder = _fresh_encoder(module, device)
    hypernet = module.hypernet.eval()
    encoder.encode(["Load the encoder weights before timing."])
    base = encoder.name == BASE_ENCODER
    if base:
        tokenizer, config = module.tokenizer, module.base_model.config
    else:
        path = str(packaged_minilm_dir()) if encoder.name.lower() == DEFAULT_ENCODER else encoder.name
        tokenizer, config = AutoTokenizer.from_pretrained(path), AutoConfig.from_pretrained(path)
    n_layers, hidden = _config_dims(config)
    hyper_dev = next(hypernet.parameters()).device

    def one(text: str) -> None:
        with torch.no_grad():
            hypernet(encoder.encode([text]).to(hyper_dev))

    text = descriptions[0]
    with count_linear_flops() as enc_count:
        emb = encoder.encode([text])
    with count_linear_flops() as hyp_count, torch.no_grad():
        hypernet(emb.to(hyper_dev))
    tokens = len(tokenizer(normalize_description(text))["input_ids"])
    enc_attn = attention_flops(n_layers, hidden, tokens, causal=base)
    walls = [time_call(lambda t=t: one(t), device) for t in descriptions[1:] or descriptions]
    lm_head = 0
    if base:  # the base-LLM encoder runs the full forward, logits included
        head = module.base_model.get_output_embeddings()
        lm_head = 2 * tokens * head.in_features * head.out_features
    total = enc_count["flops"] + enc_attn + hyp_count["flops"]
    return {
        "encoder": encoder.name,
        "description_tokens": tokens,
        "encoder_linear_flops": enc_count["flops"],
        "encoder_attention_flops": enc_attn,
        "encoder_lm_head_flops_included": lm_head,
        "hypernet_flops": hyp_count["flops"],
        "hypernet_params": sum(p.numel() for p in hypernet.parameters()),
        "flops": total,
        "flops_without_unused_lm_head": total - lm_head,
        "wall_s_median": statistics.median(walls),
        "wall_s_all": walls,
    }


def few_shot_prompt(shots: list[Any], prompt: str) -> str:
    """The k-shot user prompt: demonstrations as ``Input:/Output:`` pairs, then the query."""
    demos = "\n\n".join(f"Input: {s.prompt}\nOutput: {s.response}" for s in shots)
    return f"{demos}\n\nInput: {prompt}\nOutput:"


def prompt_cost(
    model: nn.Module,
    tokenizer: Any,
    pairs: list[tuple[str, str, str | None]],
    device: torch.device,
    repeats: int = 3,
) -> dict[str, Any]:
    """Extra prefill FLOPs and wall time per query of a k-shot prompt over the zero-shot one.

    ``pairs`` holds ``(zero_shot_user, k_shot_user, system)`` per query (chat template applied here).
    """
    p_non_emb = non_embedding_params(model)
    n_layers, hidden = _config_dims(model.config)
    extra_tokens, extra_flops, extra_attn, walls = [], [], [], []
    for zero, shot, system in pairs:
        t0 = len(chat_prompt_ids(tokenizer, zero, system))
        t1 = len(chat_prompt_ids(tokenizer, shot, system))
        extra_tokens.append(t1 - t0)
        attn = attention_flops(n_layers, hidden, t1, True) - attention_flops(n_layers, hidden, t0, True)
        extra_attn.append(attn)
        extra_flops.append(2 * p_non_emb * (t1 - t0) + attn)
    for zero, shot, system in pairs[: max(1, min(len(pairs), 8))]:
        ids0 = torch.tensor([chat_prompt_ids(tokenizer, zero, system)], device=device)
        ids1 = torch.tensor([chat_prompt_ids(tokenizer, shot, system)], device=device)

        def fwd(ids: torch.Tensor) -> None:
            with torch.no_grad():
                model(input_ids=ids, logits_to_keep=1)

        fwd(ids1)  # warm-up
        t_zero = statistics.median(time_call(lambda ids=ids0: fwd(ids), device) for _ in range(repeats))
        t_shot = statistics.median(time_call(lambda ids=ids1: fwd(ids), device) for _ in range(repeats))
        walls.append(t_shot - t_zero)
    return {
        "non_embedding_params": p_non_emb,
        "queries": len(pairs),
        "extra_tokens_mean": statistics.fmean(extra_tokens),
        "extra_attention_flops_mean": statistics.fmean(extra_attn),
        "extra_flops_per_query_mean": statistics.fmean(extra_flops),
        "extra_prefill_wall_s_median": statistics.median(walls),
    }
