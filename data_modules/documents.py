"""DocumentQADataModule: documents with question/answer pairs (JSONL or a `datasets` spec) as Doc-to-LoRA batches."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from .doc_batch import DocItem, DocQACollator, sample_n_chunks
from .hf_datasets import load_split
from .niah_protocol import example_rng
from .stateful import ResumableDataLoader

RECORD_FORMAT = '{"context": str, "qas": [{"question": str, "answer": str}, ...]}'


def parse_record(obj: Any, where: str) -> DocItem:
    """Check one record and return it as a ``DocItem``; errors name ``where`` (file and line, or row)."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object {RECORD_FORMAT}, got {type(obj).__name__}.")
    context, qas = obj.get("context"), obj.get("qas")
    if not isinstance(context, str):
        raise ValueError(f"{where}: 'context' must be a string (record format {RECORD_FORMAT}).")
    if not context.strip():
        raise ValueError(f"{where}: empty context; every record needs some document text.")
    if not isinstance(qas, list) or not qas:
        raise ValueError(f"{where}: 'qas' must be a non-empty list of {{'question', 'answer'}} objects.")
    pairs = []
    for j, qa in enumerate(qas):
        q = qa.get("question") if isinstance(qa, dict) else None
        a = qa.get("answer") if isinstance(qa, dict) else None
        if not isinstance(q, str) or not q.strip() or not isinstance(a, str) or not a.strip():
            raise ValueError(f"{where}: qas[{j}] needs non-empty string 'question' and 'answer'.")
        pairs.append((q, a))
    doc_id = obj.get("id", obj.get("doc_id", ""))
    return DocItem(context, pairs, doc_id=str(doc_id) if doc_id is not None else "")


def read_jsonl(path: str | Path) -> list[DocItem]:
    """Records of a JSONL file (one object a line, blank lines skipped) or of a JSON array file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Document QA file {str(path)!r} does not exist.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text.") from None
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: invalid JSON array ({err.msg}, line {err.lineno}).") from None
        items = [parse_record(r, f"{path} record {i}") for i, r in enumerate(rows)]
    else:
        items = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({err.msg}).") from None
            items.append(parse_record(obj, f"{path}:{lineno}"))
    if not items:
        raise ValueError(f"{path}: no records; expected one {RECORD_FORMAT} per line.")
    for i, item in enumerate(items):
        item.doc_id = item.doc_id or f"{path.stem}-{i}"
    return items


def load_datasets_split(spec: str | dict[str, Any], split: str) -> list[DocItem]:
    """Records of one split of a Hugging Face ``datasets`` spec (a hub name or ``load_dataset`` kwargs)."""
    rows, name = load_split(spec, split)
    items = [parse_record(dict(r), f"{name}[{split}] row {i}") for i, r in enumerate(rows)]
    if not items:
        raise ValueError(f"{name}[{split}]: no records.")
    for i, item in enumerate(items):
        item.doc_id = item.doc_id or f"{split}-{i}"
    return items


class DocQADataset(Dataset):
    """Documents of one split; training items sample questions and a chunk count from a per-index seed."""

    def __init__(
        self,
        items: list[DocItem],
        tokenizer: Any,
        split: str,
        seed: int = 0,
        questions_per_doc: int | None = None,
        max_chunks: int = 1,
        min_chunk_tokens: int = 25,
    ) -> None:
        self.items = items
        self.tokenizer = tokenizer
        self.split = split
        self.seed = seed
        self.questions_per_doc = questions_per_doc
        self.max_chunks = max_chunks
        self.min_chunk_tokens = min_chunk_tokens

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> DocItem:
        item = self.items[i]
        rng = example_rng(self.seed, self.split, i)
        qas = item.qas
        if self.questions_per_doc and len(qas) > self.questions_per_doc:
            keep = sorted(rng.sample(range(len(qas)), self.questions_per_doc))
            qas = [qas[k] for k in keep]
        n_chunks = None
        if self.max_chunks > 1:
            n_tokens = len(self.tokenizer(item.context, add_special_tokens=False)["input_ids"])
            n_chunks = sample_n_chunks(rng, self.max_chunks, n_tokens, self.min_chunk_tokens)
        return DocItem(item.context, qas, item.doc_id, n_chunks, dict(item.meta))


def _as_list(files: str | Sequence[str] | None) -> list[str]:
    if files is None:
        return []
    return [files] if isinstance(files, str) else list(files)


class DocumentQADataModule(L.LightningDataModule):
    """Documents and their questions for Doc-to-LoRA: read, checked, chat-templated, answer-only labels.

    Records are ``{"context": str, "qas": [{"question": str, "answer": str}]}`` (optional ``"id"``), from JSONL
    files or from a Hugging Face ``datasets`` spec. Batches follow the Doc-to-LoRA contract in
    ``data_modules/collate.py``; ``with_teacher`` adds the distillation rows (document in the prompt).

    Args:
        base_model: the base model whose tokenizer and chat template format prompts and chunks.
        train_files: JSONL file(s) for training.
        val_files: JSONL file(s) for validation.
        test_files: JSONL file(s) for testing.
        dataset: instead of files, a ``datasets`` spec: a hub name or ``load_dataset`` kwargs such as
            ``{"path": "json", "data_files": {"train": "docs.jsonl"}}`` (needs ``pip install datasets``).
        dataset_splits: which split of ``dataset`` feeds train/val/test, e.g. ``{"train": "train", "val":
            "validation"}`` (default: train only).
        batch_size: documents per batch (each brings all or ``questions_per_doc`` of its questions).
        questions_per_doc: at most this many questions per training document, sampled (``None``: all).
        chunk_length: chunk length in tokens for contexts (``None``: each context is one chunk).
        max_chunks: when > 1, training cuts each context into K chunks, K uniform in ``1..max_chunks``.
        min_chunk_tokens: smallest training chunk; caps K for short contexts.
        eval_chunk_length: chunk length for validation and test (default: ``chunk_length``).
        with_teacher: add ``teacher_*`` rows (document in the prompt) to training and validation batches, for
            the distill objective (test batches never carry them).
        shuffle: shuffle training documents (seeded).
        seed: seed of the shuffle and of question/chunk sampling.
        num_workers: DataLoader worker processes.
        system_prompt: system message of chunk wrappers and question rows (``""``: an empty one, as the
            reference; ``None``: the chat template's default). Must match the model's ``system_prompt``.
        encoder_model: the model's ``encoder.model`` when the context encoder is not the base model (a causal LM
            or a VLM): contexts are chunked and chat-wrapped with its tokenizer (default: the base model's).
    """

    def __init__(
        self,
        base_model: str = "smollm2-135m-instruct",
        train_files: str | list[str] | None = None,
        val_files: str | list[str] | None = None,
        test_files: str | list[str] | None = None,
        dataset: str | dict[str, Any] | None = None,
        dataset_splits: dict[str, str] | None = None,
        batch_size: int = 4,
        questions_per_doc: int | None = None,
        chunk_length: int | None = None,
        max_chunks: int = 1,
        min_chunk_tokens: int = 25,
        eval_chunk_length: int | None = None,
        with_teacher: bool = False,
        shuffle: bool = True,
        seed: int = 0,
        num_workers: int = 0,
        system_prompt: str | None = "",
        encoder_model: str | None = None,
    ) -> None:
        super().__init__()
        self.system_prompt = system_prompt
        self.encoder_model = encoder_model
        if dataset is not None and (train_files or val_files or test_files):
            raise ValueError("Give either JSONL files or a `dataset` spec, not both.")
        if dataset is None and not (train_files or val_files or test_files):
            raise ValueError(
                "DocumentQADataModule needs train_files/val_files/test_files or a `dataset` spec."
            )
        if batch_size < 1 or max_chunks < 1:
            raise ValueError(f"batch_size and max_chunks must be >= 1, got {batch_size} and {max_chunks}.")
        if questions_per_doc is not None and questions_per_doc < 1:
            raise ValueError(f"questions_per_doc must be >= 1 or None, got {questions_per_doc}.")
        self.base_model = base_model
        self.files = {
            "train": _as_list(train_files),
            "val": _as_list(val_files),
            "test": _as_list(test_files),
        }
        self.dataset = dataset
        self.dataset_splits = dict(dataset_splits) if dataset_splits else {"train": "train"}
        unknown = set(self.dataset_splits) - {"train", "val", "test"}
        if unknown:
            raise ValueError(f"dataset_splits keys must be train/val/test, got {sorted(unknown)}.")
        self.batch_size = batch_size
        self.questions_per_doc = questions_per_doc
        self.chunk_length = chunk_length
        self.max_chunks = max_chunks
        self.min_chunk_tokens = min_chunk_tokens
        self.eval_chunk_length = eval_chunk_length if eval_chunk_length is not None else chunk_length
        self.with_teacher = with_teacher
        self.shuffle = shuffle
        self.seed = seed
        self.num_workers = num_workers
        self.tokenizer: Any = None
        self.ctx_tokenizer: Any = None
        self.records: dict[str, list[DocItem]] = {}

    @property
    def context_tokenizer(self) -> Any:
        """The tokenizer contexts are chunked with: the encoder's when ``encoder_model`` is set, else the base's."""
        return self.ctx_tokenizer if self.ctx_tokenizer is not None else self.tokenizer

    def has_split(self, split: str) -> bool:
        """Whether ``train``/``val``/``test`` has a source configured."""
        return bool(self.files[split]) if self.dataset is None else split in self.dataset_splits

    def setup(self, stage: str | None = None) -> None:
        """Load the tokenizer and read (and check) every configured split once."""
        if self.tokenizer is None:
            from lora_hyper.base_model import load_tokenizer

            self.tokenizer = load_tokenizer(self.base_model)
        if self.ctx_tokenizer is None:
            from lora_hyper.encoders.models import load_encoder_tokenizer

            self.ctx_tokenizer = (
                load_encoder_tokenizer(self.encoder_model) if self.encoder_model else self.tokenizer
            )
        for split in ("train", "val", "test"):
            if split in self.records or not self.has_split(split):
                continue
            if self.dataset is None:
                self.records[split] = [item for f in self.files[split] for item in read_jsonl(f)]
            else:
                self.records[split] = load_datasets_split(self.dataset, self.dataset_splits[split])

    def split_dataset(self, split: str) -> DocQADataset:
        """The dataset of one split (sampling questions and chunk counts only for training)."""
        if split not in self.records:
            raise RuntimeError(
                f"No {split} data: configure {split}_files or dataset_splits[{split!r}], then setup()."
            )
        train = split == "train"
        return DocQADataset(
            self.records[split],
            self.context_tokenizer,  # counts context tokens to sample chunk counts
            split,
            self.seed,
            self.questions_per_doc if train else None,
            self.max_chunks if train else 1,
            self.min_chunk_tokens,
        )

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        collator = DocQACollator(
            self.tokenizer,
            self.chunk_length if train else self.eval_chunk_length,
            self.with_teacher and split != "test",
            self.system_prompt,
            self.context_tokenizer,
        )
        return (ResumableDataLoader if train else DataLoader)(  # training resumes mid-epoch exactly
            self.split_dataset(split),
            batch_size=self.batch_size,
            shuffle=self.shuffle and train,
            generator=torch.Generator().manual_seed(self.seed) if self.shuffle and train else None,
            collate_fn=collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches, or no loader (validation skipped) when no validation data is configured."""
        return self._loader("val") if self.has_split("val") else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
