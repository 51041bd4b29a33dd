"""The batch contracts between DataModules and LightningModules, and the padding/prompt helpers behind them.

Any DataModule whose batches follow a contract works with the modules that consume it.

**Language-modelling rows** (shared by both contracts)::

    input_ids       LongTensor [rows, T]   chat-templated prompt + answer, LEFT-padded
    attention_mask  LongTensor [rows, T]   1 on real tokens
    labels          LongTensor [rows, T]   = input_ids on answer tokens, -100 elsewhere (prompt, padding)

**Text-to-LoRA batch** (``TextToLoRAModule``)::

    <language-modelling rows>              one row per example, WITHOUT the description in the prompt
    descriptions    list[str]  [rows]      the task description sampled for each row
    task_names      list[str]  [rows]      the task each row comes from
    task_index      LongTensor [rows]      index of the task in the corpus (stable across runs)

**Doc-to-LoRA batch** (``DocToLoRAModule``)::

    ctx_input_ids      LongTensor [chunks, Tc]  every chunk of every document, each chunk wrapped as its own
                                                chat user turn, LEFT-padded
    ctx_attention_mask LongTensor [chunks, Tc]
    ctx_doc_index      LongTensor [chunks]      document of each chunk (0..docs-1, non-decreasing)
    <language-modelling rows>                   one row per question, WITHOUT the document in the prompt
    qa_doc_index       LongTensor [rows]        document of each question (0..docs-1, non-decreasing)
    teacher_input_ids, teacher_attention_mask, teacher_labels   (optional; the distill objective)
                                                the same questions WITH the document in the prompt
    doc_ids            list[str]  [docs]        (optional) identifiers, for logging

Left padding everywhere keeps the last position of every row real, which batched generation needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

IGNORE_INDEX = -100


def pad_left(rows: Sequence[Sequence[int]], pad_value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into ``(ids [n, T], mask [n, T])``."""
    if not rows:
        raise ValueError("pad_left needs at least one row.")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            ids[i, width - len(r) :] = torch.as_tensor(list(r), dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask


def chat_prompt_ids(tokenizer: Any, user: str, system: str | None = None) -> list[int]:
    """Token ids of a chat prompt ending with the assistant header (the tokenizer's own template).

    ``system=None`` lets the template add its default system prompt (if it has one); ``""`` sends an explicit
    empty system message, so no default prompt is added (what Doc-to-LoRA uses, as the reference)."""
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": user}
    ]
    if getattr(tokenizer, "chat_template", None):
        out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(out, dict) or hasattr(out, "keys"):
            out = out["input_ids"]
        return list(out)
    text = (system + "\n\n" if system else "") + user + "\n"
    return tokenizer(text, add_special_tokens=True)["input_ids"]


def answer_ids(tokenizer: Any, answer: str) -> list[int]:
    """Token ids of an answer followed by the end-of-turn token (so the model learns to stop)."""
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return list(ids) + ([eos] if eos is not None else [])


def lm_example(
    tokenizer: Any, user: str, answer: str, system: str | None = None
) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` for one prompt/answer pair; labels are -100 on the prompt."""
    prompt = chat_prompt_ids(tokenizer, user, system)
    ans = answer_ids(tokenizer, answer)
    return prompt + ans, [IGNORE_INDEX] * len(prompt) + ans


def collate_lm(examples: Sequence[tuple[list[int], list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Left-pad ``(input_ids, labels)`` pairs into the language-modelling rows of the contracts."""
    ids, mask = pad_left([e[0] for e in examples], pad_token_id)
    labels, _ = pad_left([e[1] for e in examples], IGNORE_INDEX)
    labels[mask == 0] = IGNORE_INDEX
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
