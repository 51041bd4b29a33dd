"""TaskCorpusDataModule: hierarchical task-first sampling of a task corpus into Text-to-LoRA batches."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lora_hyper.data_modules.collate import IGNORE_INDEX, collate_lm, lm_example
from lora_hyper.data_modules.resume_guard import check_resume_rows
from lora_hyper.data_modules.stateful import ResumableDataLoader
from lora_hyper.data_modules.task_corpus import BUILTIN, Task, TaskCorpus, pick_description


def _identity(batch: Any) -> Any:
    return batch


def description_prompt(description: str, prompt: str) -> str:
    """The user message of the description-in-prompt baseline: the description, a blank line, the input."""
    return f"{description}\n\n{prompt}"


def encode_row(
    tokenizer: Any,
    task: Task,
    example_prompt: str,
    response: str,
    description: str,
    description_in_prompt: bool,
    max_length: int | None,
) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of one example in the task's chat format, truncated on the left to ``max_length``."""
    user = description_prompt(description, example_prompt) if description_in_prompt else example_prompt
    ids, labels = lm_example(tokenizer, user, response, task.system_message)
    if max_length is not None and len(ids) > max_length:
        ids, labels = ids[-max_length:], labels[-max_length:]
    return ids, labels


def collate_task_rows(
    tokenizer: Any,
    rows: Sequence[tuple[Task, int, str, Any]],
    description_in_prompt: bool = False,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Build one Text-to-LoRA batch from ``(task, task_index, description, TaskExample)`` rows."""
    encoded = [
        encode_row(tokenizer, t, ex.prompt, ex.response, d, description_in_prompt, max_length)
        for t, _, d, ex in rows
    ]
    batch = collate_lm(encoded, tokenizer.pad_token_id)
    if bool((batch["labels"] != IGNORE_INDEX).sum(1).eq(0).any()):
        raise ValueError(f"max_length={max_length} cuts every answer token of some rows; raise max_length.")
    batch["descriptions"] = [d for _, _, d, _ in rows]
    batch["task_names"] = [t.name for t, _, _, _ in rows]
    batch["task_index"] = torch.tensor([i for _, i, _, _ in rows], dtype=torch.long)
    return batch


class HierarchicalTaskBatches(Dataset):
    """Item ``i`` is a whole batch: N distinct tasks, k examples each, each row with a random training description.

    Batches are a pure function of ``(seed, epoch, i)``, so runs are reproducible and workers/ranks agree.
    """

    def __init__(
        self,
        corpus: TaskCorpus,
        task_names: list[str],
        tokenizer: Any,
        tasks_per_batch: int,
        examples_per_task: int,
        steps: int,
        description_in_prompt: bool,
        max_length: int | None,
        seed: int,
    ):
        self.corpus, self.task_names, self.tokenizer = corpus, task_names, tokenizer
        self.tasks_per_batch, self.examples_per_task, self.steps = tasks_per_batch, examples_per_task, steps
        self.description_in_prompt, self.max_length, self.seed = description_in_prompt, max_length, seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def draw(self, index: int) -> list[tuple[Task, int, str, Any]]:
        """The rows of batch ``index`` (before tokenisation)."""
        rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
        extra_rng = random.Random(f"{self.seed}:{self.epoch}:{index}:extra")  # train-only descriptions
        n_tasks = min(self.tasks_per_batch, len(self.task_names))
        rows = []
        for name in rng.sample(self.task_names, n_tasks):
            task = self.corpus.tasks[name]
            pool = task.examples("train")
            k = self.examples_per_task
            picks = (
                rng.sample(range(len(pool)), k)
                if k <= len(pool)
                else [rng.randrange(len(pool)) for _ in range(k)]
            )
            for j in picks:
                description = pick_description(
                    rng, task.train_descriptions, task.extra_train_descriptions, extra_rng
                )
                rows.append((task, self.corpus.task_index(name), description, pool[j]))
        return rows

    def __getitem__(self, index: int) -> dict[str, Any]:
        return collate_task_rows(
            self.tokenizer, self.draw(index), self.description_in_prompt, self.max_length
        )


class EpochSampler(Sampler[int]):
    """Indices ``0..n-1`` in order; ``set_epoch`` (called by Lightning each epoch) sets ``dataset.epoch``."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        return iter(range(len(self.dataset)))

    def set_epoch(self, epoch: int) -> None:
        self.dataset.epoch = epoch


class EvalTaskRows(Dataset):
    """Test examples of some tasks, each paired (round-robin) with one of its evaluation descriptions."""

    def __init__(self, corpus: TaskCorpus, task_names: list[str], max_per_task: int | None):
        self.rows = []
        for name in task_names:
            task = corpus.tasks[name]
            descriptions = task.eval_descriptions or task.descriptions
            for j, ex in enumerate(task.examples("test")[:max_per_task]):
                self.rows.append((task, corpus.task_index(name), descriptions[j % len(descriptions)], ex))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        return self.rows[index]


class TaskCorpusDataModule(L.LightningDataModule):
    """Text-to-LoRA batches from a task corpus: hierarchical task-first sampling for training, test examples for val.

    Training batches hold ``tasks_per_batch`` distinct tasks (fewer if the corpus has fewer) with
    ``examples_per_task`` examples each; every row carries a random *training* description of its task.
    Validation covers the training tasks' test examples, each with one of the task's *evaluation*
    descriptions. Batches follow the Text-to-LoRA contract of ``data_modules/collate.py``.
    """

    def __init__(
        self,
        base_model: str,
        corpus: str = BUILTIN,
        held_out_tasks: list[str] | None = None,
        n_eval_descriptions: int = 5,
        tasks: list[str] | None = None,
        tasks_per_batch: int = 8,
        examples_per_task: int = 1,
        steps_per_epoch: int = 1000,
        description_in_prompt: bool = False,
        max_length: int | None = 512,
        val_examples_per_task: int | None = 10,
        val_batch_size: int = 16,
        seed: int = 0,
        num_workers: int = 0,
        training_descriptions: bool = True,
    ):
        """Args:
        base_model: base model name or directory (its tokenizer and chat template format the rows).
        corpus: ``"builtin"`` (the packaged corpus) or a corpus folder path.
        held_out_tasks: tasks never trained on (None: the corpus's ``held_out.yaml``; [] for none).
        n_eval_descriptions: descriptions per task kept out of training for evaluation.
        tasks: train only on these tasks (e.g. one task for a per-task oracle LoRA); may name held-out tasks.
        tasks_per_batch: distinct tasks per training batch.
        examples_per_task: examples drawn from each task of a batch.
        steps_per_epoch: training batches per epoch.
        description_in_prompt: prepend the description to the user prompt (the prompting baseline).
        max_length: truncate rows (from the left) to this many tokens; None keeps them whole.
        val_examples_per_task: test examples per task in the val set (None: all).
        val_batch_size: rows per validation batch.
        seed: sampling seed (batches are a function of seed, epoch and step).
        num_workers: DataLoader worker processes.
        training_descriptions: also train on the tasks' train-only ``training_descriptions`` (extra paraphrases);
            False reproduces runs made before the corpus had them. Evaluation descriptions are the same either way.
        """
        super().__init__()
        if tasks_per_batch < 1 or examples_per_task < 1 or steps_per_epoch < 1 or val_batch_size < 1:
            raise ValueError(
                "tasks_per_batch, examples_per_task, steps_per_epoch and val_batch_size must be >= 1."
            )
        self.save_hyperparameters()
        self.base_model, self.corpus_path = base_model, corpus
        self.held_out_tasks, self.n_eval_descriptions, self.tasks = held_out_tasks, n_eval_descriptions, tasks
        self.tasks_per_batch, self.examples_per_task = tasks_per_batch, examples_per_task
        self.steps_per_epoch, self.description_in_prompt, self.max_length = (
            steps_per_epoch,
            description_in_prompt,
            max_length,
        )
        self.val_examples_per_task, self.val_batch_size = val_examples_per_task, val_batch_size
        self.seed, self.num_workers = seed, num_workers
        self.training_descriptions = training_descriptions
        self.corpus: TaskCorpus | None = None
        self.tokenizer: Any = None

    def setup(self, stage: str | None = None) -> None:
        """Load the tokenizer and the corpus, check the task selection and load its examples."""
        if self.corpus is not None:
            return
        from lora_hyper.base_model import load_tokenizer

        self.tokenizer = load_tokenizer(self.base_model)
        corpus = TaskCorpus.load(
            self.corpus_path,
            self.held_out_tasks,
            self.n_eval_descriptions,
            self.seed,
            self.training_descriptions,
        )
        if self.tasks is not None:
            unknown = [t for t in self.tasks if t not in corpus.tasks]
            if unknown or not self.tasks:
                raise ValueError(f"Unknown task(s) {unknown or self.tasks} for corpus {corpus.root}.")
        for name in self.fit_task_names(corpus):
            corpus.tasks[name].examples("train")
        self.corpus = corpus

    # the arguments that decide which rows a training step draws (a resumed fit must keep them);
    # n_eval_descriptions counts here because the description draw shares the example draw's generator;
    # training_descriptions only decides which descriptions come with the rows (its paraphrases have their own)
    ROW_KEYS = (
        "seed", "tasks_per_batch", "examples_per_task", "steps_per_epoch", "description_in_prompt", "max_length",
        "held_out_tasks", "tasks", "n_eval_descriptions",
    )  # fmt: skip
    DESCRIPTION_KEYS = ("training_descriptions",)

    def check_resume(self, checkpoint: dict[str, Any], reads_descriptions: bool = True) -> None:
        """Called by the module when a fit resumes from ``checkpoint``: refuse other rows than the checkpoint's run
        drew. The description settings count when the module reads descriptions or they are in the prompt
        (checkpoints from before ``training_descriptions`` existed were trained without the paraphrases)."""
        keys = self.ROW_KEYS
        if reads_descriptions or self.description_in_prompt:
            keys += self.DESCRIPTION_KEYS
        check_resume_rows(self, checkpoint, keys, legacy={"training_descriptions": False})

    def fit_task_names(self, corpus: TaskCorpus | None = None) -> list[str]:
        """The tasks batches are drawn from: ``tasks`` when given, else the corpus's training tasks."""
        corpus = corpus or self._require_corpus()
        return list(dict.fromkeys(self.tasks)) if self.tasks is not None else corpus.train_tasks

    def _require_corpus(self) -> TaskCorpus:
        if self.corpus is None:
            raise RuntimeError("TaskCorpusDataModule.setup() has not run yet.")
        return self.corpus

    def train_dataset(self) -> HierarchicalTaskBatches:
        """The map-style dataset whose items are whole training batches."""
        return HierarchicalTaskBatches(
            self._require_corpus(),
            self.fit_task_names(),
            self.tokenizer,
            self.tasks_per_batch,
            self.examples_per_task,
            self.steps_per_epoch,
            self.description_in_prompt,
            self.max_length,
            self.seed,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.train_dataset()
        return ResumableDataLoader(  # a mid-epoch checkpoint resumes at the next batch
            dataset,
            batch_size=None,
            sampler=EpochSampler(dataset),
            collate_fn=_identity,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        rows = EvalTaskRows(self._require_corpus(), self.fit_task_names(), self.val_examples_per_task)
        if len(rows) == 0:
            raise ValueError("No test examples for the training tasks: give the tasks a test split.")
        return DataLoader(
            rows,
            batch_size=self.val_batch_size,
            shuffle=False,
            collate_fn=_ValCollate(self.tokenizer, self.description_in_prompt, self.max_length),
            num_workers=self.num_workers,
        )


class _ValCollate:
    """Picklable collate for validation rows."""

    def __init__(self, tokenizer: Any, description_in_prompt: bool, max_length: int | None):
        self.tokenizer, self.description_in_prompt, self.max_length = (
            tokenizer,
            description_in_prompt,
            max_length,
        )

    def __call__(self, rows: list) -> dict[str, Any]:
        return collate_task_rows(self.tokenizer, rows, self.description_in_prompt, self.max_length)
