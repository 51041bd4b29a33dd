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

**Image-classification batch** (``ImagenetteDataModule``; read by ``ImageClassificationEvaluation``)::

    images          list[PIL.Image]  [n]   RGB images, any size (the VLM's processor resizes them)
    labels          LongTensor [n]         class index into the data module's ``class_names``
    image_ids       list[str]  [n]         file path inside the root, or ``<split>-<row>`` of a dataset

Left padding everywhere keeps the last position of every row real, which batched generation needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lora_hyper.prompts import IGNORE_INDEX, answer_ids, chat_prompt_ids, lm_example, pad_left

__all__ = ["IGNORE_INDEX", "answer_ids", "chat_prompt_ids", "collate_lm", "lm_example", "pad_left"]


def collate_lm(examples: Sequence[tuple[list[int], list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Left-pad ``(input_ids, labels)`` pairs into the language-modelling rows of the contracts."""
    ids, mask = pad_left([e[0] for e in examples], pad_token_id)
    labels, _ = pad_left([e[1] for e in examples], IGNORE_INDEX)
    labels[mask == 0] = IGNORE_INDEX
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
