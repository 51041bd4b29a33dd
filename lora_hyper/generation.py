"""Chat-templated batched generation with per-row adapters, shared by both hypernetworks and benchmarks."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lora_hyper.data_modules.collate import chat_prompt_ids, pad_left
from lora_hyper.lora import LoRABatch, apply_lora


@torch.no_grad()
def generate_answers(
    model: nn.Module,
    tokenizer: Any,
    questions: str | Sequence[str],
    adapters: LoRABatch | None,
    max_new_tokens: int = 32,
    system: str | None = None,
    **generate_kwargs: Any,
) -> list[str]:
    """Greedy (by default) chat-templated answers; question ``i`` uses adapter ``i``, or consecutive groups of
    questions share one when there are ``k * adapters.batch_size`` questions; ``None`` is the plain base.
    ``system`` is an optional system message put before every question."""
    questions = [questions] if isinstance(questions, str) else list(questions)
    if not questions:
        raise ValueError("No questions given.")
    if adapters is not None and len(questions) % adapters.batch_size:
        raise ValueError(
            f"{len(questions)} questions for {adapters.batch_size} adapters: give one question per adapter "
            "or the same number of questions for each."
        )
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids, mask = pad_left([chat_prompt_ids(tokenizer, q, system) for q in questions], pad)
    ids, mask = ids.to(device), mask.to(device)
    kwargs = {"do_sample": False, "pad_token_id": pad, "max_new_tokens": max_new_tokens, **generate_kwargs}
    if not kwargs["do_sample"]:
        kwargs.setdefault("temperature", None)
        kwargs.setdefault("top_p", None)
        kwargs.setdefault("top_k", None)
    ctx = apply_lora(model, adapters.to(device)) if adapters is not None else contextlib.nullcontext()
    with ctx:
        out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    return [t.strip() for t in tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)]
