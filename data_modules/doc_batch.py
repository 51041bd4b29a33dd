"""Turn documents with question/answer pairs into the Doc-to-LoRA batch contract (shared by NIAH and document QA)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lora_hyper.encoders.chunking import encode_documents

from .collate import collate_lm, lm_example


@dataclass
class DocItem:
    """One document and its questions, as a dataset yields it (tokenized later, in the collate function)."""

    context: str
    qas: list[tuple[str, str]]
    doc_id: str = ""
    n_chunks: int | None = None
    """Chunks to cut the context into (training samples it); ``None`` uses the collator's ``chunk_length``."""
    meta: dict[str, Any] = field(default_factory=dict)


def context_prompt(context: str, question: str) -> str:
    """The teacher's user message: the document, a blank line, then the question (the in-context baseline)."""
    return f"{context}\n\n{question}"


CHUNK_DISTRIBUTIONS = ("reference", "uniform")


def chunk_count_weights(max_chunks: int, distribution: str = "reference") -> list[float]:
    """Probabilities of K = 1..max_chunks: ``uniform``, or the reference's NIAH distribution (weights 8, 2, then
    1 each for K >= 3; with max_chunks 8: P(1)=0.5, P(2)=0.125, P(3..8)=0.0625)."""
    if max_chunks < 1:
        raise ValueError(f"max_chunks must be >= 1, got {max_chunks}.")
    if distribution not in CHUNK_DISTRIBUTIONS:
        raise ValueError(f"Unknown chunk distribution {distribution!r}: use one of {CHUNK_DISTRIBUTIONS}.")
    w = (
        [1.0] * max_chunks
        if distribution == "uniform"
        else [8.0, 2.0, *[1.0] * (max_chunks - 2)][:max_chunks]
    )
    return [x / sum(w) for x in w]


def sample_n_chunks(
    rng: random.Random,
    max_chunks: int,
    n_tokens: int,
    min_chunk_tokens: int,
    distribution: str = "uniform",
    max_chunk_tokens: int | None = None,
) -> int:
    """K drawn from ``distribution`` over ``1..max_chunks``, then kept within ``[ceil(n / max_chunk_tokens),
    ceil(n / min_chunk_tokens)]`` (the reference's bounds) and at most ``n_tokens`` chunks."""
    weights = chunk_count_weights(max_chunks, distribution)
    k = (
        rng.choices(range(1, max_chunks + 1), weights)[0]
        if distribution != "uniform"
        else rng.randint(1, max_chunks)
    )
    hi = max(1, min(-(-n_tokens // max(1, min_chunk_tokens)), n_tokens))
    lo = -(-n_tokens // max_chunk_tokens) if max_chunk_tokens else 1
    return max(1, min(max(k, lo), hi))


def pad_id(tokenizer: Any) -> int:
    """The pad token id, falling back to end-of-sequence."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


class DocQACollator:
    """Collate ``DocItem``s into a Doc-to-LoRA batch (see ``data_modules/collate.py``); picklable for workers.

    Args:
        tokenizer: the base model's tokenizer (chat template of the question rows; of chunks too by default).
        chunk_length: token length of each chunk for items without ``n_chunks`` (``None``: one chunk).
        with_teacher: also emit ``teacher_*`` rows with the document in the prompt (distill objective).
        system_prompt: system message of chunk wrappers and question rows (``""``: an empty one, as the
            reference; ``None``: the chat template's default system prompt).
        ctx_tokenizer: the context encoder's tokenizer, when the encoder is not the base model (chunks are cut
            and chat-wrapped with it; default: ``tokenizer``).
    """

    def __init__(
        self,
        tokenizer: Any,
        chunk_length: int | None = None,
        with_teacher: bool = False,
        system_prompt: str | None = "",
        ctx_tokenizer: Any = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.ctx_tokenizer = ctx_tokenizer if ctx_tokenizer is not None else tokenizer
        self.chunk_length = chunk_length
        self.with_teacher = with_teacher
        self.system_prompt = system_prompt

    def __call__(self, items: Sequence[DocItem]) -> dict[str, Any]:
        if not items:
            raise ValueError("Cannot collate an empty list of documents.")
        tok = self.tokenizer
        n_chunks = [it.n_chunks for it in items]
        batch: dict[str, Any] = encode_documents(
            self.ctx_tokenizer,
            [it.context for it in items],
            chunk_length=self.chunk_length,
            n_chunks=n_chunks,
            system=self.system_prompt,
        )
        rows, teacher_rows, qa_doc = [], [], []
        for d, it in enumerate(items):
            if not it.qas:
                raise ValueError(f"Document {it.doc_id or d} has no questions.")
            for question, answer in it.qas:
                rows.append(lm_example(tok, question, answer, self.system_prompt))
                if self.with_teacher:
                    prompt = context_prompt(it.context, question)
                    teacher_rows.append(lm_example(tok, prompt, answer, self.system_prompt))
                qa_doc.append(d)
        batch.update(collate_lm(rows, pad_id(tok)))
        batch["qa_doc_index"] = torch.tensor(qa_doc, dtype=torch.long)
        if self.with_teacher:
            teacher = collate_lm(teacher_rows, pad_id(tok))
            batch.update({f"teacher_{k}": v for k, v in teacher.items()})
        batch["doc_ids"] = [it.doc_id for it in items]
        return batch
