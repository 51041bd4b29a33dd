"""LoRALibraryDataModule: a folder of trained PEFT adapters plus their descriptions, for reconstruction training.

Layout::

    <library>/<task_name>/adapter_config.json          written by ``lora_hyper.lora.save_peft``
    <library>/<task_name>/adapter_model.safetensors
    <library>/<task_name>/descriptions.json            optional list[str]; else the corpus task's descriptions

Batches::

    descriptions  list[str]   [rows]   a random training description of each row's task
    task_names    list[str]   [rows]
    task_index    LongTensor  [rows]   position of the task in ``library_task_names`` (sorted)
    target        LoRABatch   [rows]   the task's adapter (stacked with ``LoRABatch.cat``)
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from lora_hyper.data_modules.resume_guard import check_resume_rows
from lora_hyper.data_modules.stateful import ResumableDataLoader
from lora_hyper.data_modules.task_corpus import TaskCorpus, pick_description, split_descriptions
from lora_hyper.data_modules.task_sampler import EpochSampler, _identity
from lora_hyper.lora import LoRABatch, load_peft
from lora_hyper.lora.peft_io import CONFIG_NAME

DESCRIPTIONS_FILE = "descriptions.json"


def collate_library_rows(rows: Sequence[tuple[str, int, str, LoRABatch]]) -> dict[str, Any]:
    """Stack ``(task_name, task_index, description, adapter)`` rows into one library batch."""
    return {
        "descriptions": [d for _, _, d, _ in rows],
        "task_names": [n for n, _, _, _ in rows],
        "task_index": torch.tensor([i for _, i, _, _ in rows], dtype=torch.long),
        "target": LoRABatch.cat([a for _, _, _, a in rows]),
    }


def _check_compatible(adapters: dict[str, LoRABatch], root: Path) -> None:
    names = list(adapters)
    first = adapters[names[0]]
    for name in names[1:]:
        other = adapters[name]
        same_targets = (
            other.spec.target_modules == first.spec.target_modules
            and other.spec.shapes == first.spec.shapes
            and other.spec.n_layers == first.spec.n_layers
        )
        if not same_targets:
            raise ValueError(
                f"LoRA library {root}: adapters {names[0]!r} and {name!r} target different modules or shapes "
                f"({first.spec.target_modules} x {first.spec.n_layers} layers vs {other.spec.target_modules} x "
                f"{other.spec.n_layers})."
            )
        if other.ranks != first.ranks:
            raise ValueError(
                f"LoRA library {root}: adapters {names[0]!r} and {name!r} have different ranks ({first.ranks} vs {other.ranks})."
            )


class _LibraryBatches(Dataset):
    """Item ``i`` is a whole batch of distinct tasks (a pure function of ``seed``, epoch and ``i``)."""

    def __init__(self, module: LoRALibraryDataModule, steps: int):
        self.module, self.steps, self.epoch = module, steps, 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> dict[str, Any]:
        m = self.module
        rng = random.Random(f"{m.seed}:{self.epoch}:{index}")
        extra_rng = random.Random(f"{m.seed}:{self.epoch}:{index}:extra")
        names = rng.sample(m.library_task_names, min(m.tasks_per_batch, len(m.library_task_names)))
        rows = [
            (
                n,
                m.library_task_names.index(n),
                pick_description(rng, m.train_descriptions[n], m.extra_descriptions[n], extra_rng),
                m.adapters[n],
            )
            for n in names
        ]
        return collate_library_rows(rows)


class LoRALibraryDataModule(L.LightningDataModule):
    """Batches of (description, trained adapter) pairs from a folder of PEFT adapters.

    Every adapter is loaded once in ``setup``. Training batches hold ``tasks_per_batch`` distinct tasks, each
    with a random training description; validation pairs every task with each of its evaluation descriptions.
    Adapters with different scales are stored with the scale folded into B (same deltas).
    """

    def __init__(
        self,
        library_dir: str,
        corpus: str | None = "builtin",
        tasks_per_batch: int = 4,
        n_eval_descriptions: int = 5,
        steps_per_epoch: int = 1000,
        val_batch_size: int = 16,
        seed: int = 0,
        training_descriptions: bool = True,
    ):
        """Args:
        library_dir: folder of ``<task_name>/`` PEFT adapter directories.
        corpus: task corpus giving descriptions of adapters without ``descriptions.json`` (None: all must have one)
            and the train-only ``training_descriptions`` of its tasks.
        tasks_per_batch: distinct tasks (adapters) per training batch.
        n_eval_descriptions: descriptions per task kept out of training for validation.
        steps_per_epoch: training batches per epoch.
        val_batch_size: rows per validation batch.
        seed: sampling seed.
        training_descriptions: with ``corpus``, also train on its tasks' train-only ``training_descriptions`` (never
            split off for validation; with False they are left out even where ``descriptions.json`` lists them).
        """
        super().__init__()
        if tasks_per_batch < 1 or steps_per_epoch < 1 or val_batch_size < 1:
            raise ValueError("tasks_per_batch, steps_per_epoch and val_batch_size must be >= 1.")
        self.save_hyperparameters()
        self.library_dir, self.corpus_path = library_dir, corpus
        self.tasks_per_batch, self.n_eval_descriptions = tasks_per_batch, n_eval_descriptions
        self.steps_per_epoch, self.val_batch_size, self.seed = steps_per_epoch, val_batch_size, seed
        self.training_descriptions = training_descriptions
        self.adapters: dict[str, LoRABatch] = {}
        self.library_task_names: list[str] = []
        self.train_descriptions: dict[str, list[str]] = {}
        self.eval_descriptions: dict[str, list[str]] = {}
        self.extra_descriptions: dict[str, list[str]] = {}  # the train-only ones train_descriptions ends with

    def setup(self, stage: str | None = None) -> None:
        """Load every adapter and its descriptions; check they share targets, shapes and ranks."""
        if self.adapters:
            return
        root = Path(self.library_dir).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"LoRA library {root} is not a directory.")
        folders = sorted(p for p in root.iterdir() if p.is_dir() and (p / CONFIG_NAME).is_file())
        if not folders:
            raise ValueError(f"LoRA library {root} is empty: no <task>/{CONFIG_NAME} adapter directories.")
        corpus = (
            TaskCorpus.load(self.corpus_path, [], self.n_eval_descriptions, self.seed)
            if self.corpus_path
            else None
        )
        adapters: dict[str, LoRABatch] = {}
        for folder in folders:
            name = folder.name
            adapters[name] = load_peft(folder)
            descriptions = self._descriptions(folder)
            # the corpus's train-only descriptions of this task: never split off for validation, and left out
            # (even when descriptions.json lists them) unless training_descriptions is on
            extra = corpus.tasks[name].extra_train_descriptions if corpus and name in corpus.tasks else []
            if descriptions is None:
                if corpus is None:
                    raise ValueError(
                        f"LoRA library {root}: {name!r} has no {DESCRIPTIONS_FILE} and no corpus is set."
                    )
                if name not in corpus.tasks:
                    raise ValueError(
                        f"LoRA library {root}: {name!r} has no {DESCRIPTIONS_FILE} and is not a task of {corpus.root}."
                    )
                train, evals = (
                    corpus.tasks[name].base_train_descriptions,
                    corpus.tasks[name].eval_descriptions,
                )
            else:
                known = set(extra)
                base = [d for d in descriptions if d not in known]
                train, evals = split_descriptions(name, base, self.n_eval_descriptions, self.seed)
            extra = extra if self.training_descriptions else []
            self.train_descriptions[name], self.eval_descriptions[name] = train + extra, evals
            self.extra_descriptions[name] = extra
        _check_compatible(adapters, root)
        if len({a.scale for a in adapters.values()}) > 1:
            adapters = {n: a.with_scale_folded() for n, a in adapters.items()}
        self.adapters = adapters
        self.library_task_names = list(adapters)

    # the arguments that decide which rows a training step draws (a resumed fit must keep them)
    ROW_KEYS = ("seed", "tasks_per_batch", "steps_per_epoch", "n_eval_descriptions", "training_descriptions")

    def check_resume(self, checkpoint: dict[str, Any], reads_descriptions: bool = True) -> None:
        """Called by the module when a fit resumes from ``checkpoint``: refuse other rows than the checkpoint's run
        drew (checkpoints from before ``training_descriptions`` existed were trained without them; without a
        corpus there are none to train on, so the setting does not count)."""
        keys = [k for k in self.ROW_KEYS if self.corpus_path or k != "training_descriptions"]
        check_resume_rows(self, checkpoint, keys, legacy={"training_descriptions": False})

    @staticmethod
    def _descriptions(folder: Path) -> list[str] | None:
        path = folder / DESCRIPTIONS_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"{path} cannot be read: {e}".rstrip(".") + ".") from e
        if not isinstance(data, list) or not data or not all(isinstance(d, str) and d.strip() for d in data):
            raise ValueError(f"{path} must hold a non-empty JSON list of non-empty strings.")
        return list(dict.fromkeys(d.strip() for d in data))

    @property
    def library(self) -> LoRABatch:
        """All adapters stacked in ``library_task_names`` order (e.g. for target statistics)."""
        if not self.adapters:
            raise RuntimeError("LoRALibraryDataModule.setup() has not run yet.")
        return LoRABatch.cat([self.adapters[n] for n in self.library_task_names])

    def train_dataloader(self) -> DataLoader:
        if not self.adapters:
            raise RuntimeError("LoRALibraryDataModule.setup() has not run yet.")
        dataset = _LibraryBatches(self, self.steps_per_epoch)
        return ResumableDataLoader(  # a mid-epoch checkpoint resumes at the next batch
            dataset, batch_size=None, sampler=EpochSampler(dataset), collate_fn=_identity
        )

    def val_dataloader(self) -> DataLoader:
        if not self.adapters:
            raise RuntimeError("LoRALibraryDataModule.setup() has not run yet.")
        rows = [
            (n, i, d, self.adapters[n])
            for i, n in enumerate(self.library_task_names)
            for d in (self.eval_descriptions[n] or self.train_descriptions[n])
        ]
        return DataLoader(
            rows, batch_size=self.val_batch_size, shuffle=False, collate_fn=collate_library_rows
        )
