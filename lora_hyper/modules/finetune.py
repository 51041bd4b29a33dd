"""LoRAFinetuneModule: plain trainable LoRAs (one per task, or one multi-task) for oracle libraries and baselines."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lora_hyper.lora import LoRABatch, LoRASpec, lora_a_init, save_peft
from lora_hyper.modules.args import FinetuneLoRAArgs, OptimArgs, RuntimeArgs
from lora_hyper.modules.base import LoRATrainingModule
from lora_hyper.modules.rowwise_adamw import RowwiseAdamW
from lora_hyper.validation import InputError

MODES = ("per_task", "multitask")


class LoRAFinetuneModule(LoRATrainingModule):
    """Trainable LoRA factors on a frozen base, fed by Text-to-LoRA batches (``task_index`` picks the adapter).

    ``per_task`` trains one adapter per corpus task in a single run (row ``i`` uses adapter
    ``task_index[i]``), producing the oracle library; ``multitask`` trains one adapter on every task.

    Args:
        base_model: hub name, local directory or ``"smollm2-135m-instruct"``.
        lora: the trainable adapters: targets, rank, alpha, rsLoRA scaling.
        mode: ``per_task`` (oracle library) or ``multitask`` (one shared adapter).
        tasks: task names in ``task_index`` order (default: the DataModule's ``corpus.tasks``).
        export_dir: where :meth:`export_library` writes at the end of fit (``None``: no export).
        label_smoothing: label smoothing of the cross-entropy.
        optim: AdamW, warm-up and schedule.
        runtime: how the frozen base loads (attention kernel, dtype).
    """

    lora: FinetuneLoRAArgs

    reads_descriptions = False  # the adapters are picked by task index; descriptions reach it only in prompts

    def __init__(
        self,
        base_model: str = "smollm2-135m-instruct",
        lora: FinetuneLoRAArgs = FinetuneLoRAArgs(),
        mode: str = "per_task",
        tasks: list[str] | None = None,
        export_dir: str | None = None,
        label_smoothing: float = 0.0,
        optim: OptimArgs = OptimArgs(lr=1e-3, weight_decay=0.0, warmup=0.1, schedule="cosine"),
        runtime: RuntimeArgs = RuntimeArgs(),
    ) -> None:
        super().__init__(base_model)
        if mode not in MODES:
            raise InputError(f"Unknown mode {mode!r}: use one of {MODES}.")
        if label_smoothing < 0:
            raise InputError(f"label_smoothing must be >= 0, got {label_smoothing!r}.")
        self.set_arguments(lora=lora, optim=optim, runtime=runtime)
        self.mode = mode
        self.label_smoothing = label_smoothing
        self.export_dir = export_dir
        self.task_names: list[str] | None = list(tasks) if tasks else None
        self.descriptions: dict[str, list[str]] = {}
        self.spec: LoRASpec | None = None
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()

    def _corpus(self) -> Any:
        dm = self.trainer.datamodule if self._trainer is not None else None
        return getattr(dm, "corpus", None)

    def configure_model(self) -> None:
        """Load the base and create the factors: A PEFT-uniform, B zero (delta 0 at the start)."""
        if len(self.lora_A):
            return
        self.load_base()
        corpus = self._corpus()
        if self.task_names is None and corpus is not None:
            self.task_names = sorted(corpus.tasks)
        if corpus is not None:
            self.descriptions = {n: list(t.train_descriptions) for n, t in corpus.tasks.items()}
        if self.mode == "per_task" and not self.task_names:
            raise ValueError(
                "mode='per_task' needs the task list: set tasks=[...] or train with a TaskCorpusDataModule."
            )
        n = len(self.task_names) if self.mode == "per_task" else 1
        lora = self.lora
        scale = lora.alpha / (math.sqrt(lora.rank) if lora.rslora else lora.rank)
        self.spec = LoRASpec(lora.targets, lora.rank, scale=scale).discover(self.base_model)
        gen = torch.Generator().manual_seed(0)
        for m in lora.targets:
            d_in, d_out = self.spec.shapes[m]
            L = self.spec.n_layers
            # One A init shared by every task, as independent runs from one seed would have: the library's
            # factors then live in a common basis that reconstruction can learn. With one random A per task,
            # the 92-task library's A (and B, expressed in that A's basis) had pairwise cosine ~0 across tasks,
            # and reconstruction learned nothing but the mean.
            a = torch.stack([lora_a_init(lora.rank, d_in, gen) for _ in range(L)])
            a = a.unsqueeze(0).repeat(n, 1, 1, 1)
            key = m.replace(".", "__")
            self.lora_A[key] = nn.Parameter(a.to(self.device))
            self.lora_B[key] = nn.Parameter(torch.zeros(n, L, d_out, lora.rank, device=self.device))
        self.register_buffer("task_steps", torch.zeros(n, dtype=torch.long, device=self.device))

    def optimizer_class(self) -> type[torch.optim.Optimizer]:
        """``per_task``: :class:`RowwiseAdamW`, so each task's adapter steps only on its own batches, as if trained alone."""
        return RowwiseAdamW if self.mode == "per_task" else torch.optim.AdamW

    @property
    def adapters(self) -> LoRABatch:
        """The trainable adapters as a ``LoRABatch`` (one row per task, or one row)."""
        keys = {m: m.replace(".", "__") for m in self.lora.targets}
        return LoRABatch(
            self.spec,  # type: ignore[arg-type]
            {m: self.lora_A[k] for m, k in keys.items()},
            {m: self.lora_B[k] for m, k in keys.items()},
            self.spec.scale,  # type: ignore[union-attr]
        )

    def _adapter_index(self, batch: dict[str, Any]) -> Tensor | None:
        if self.mode == "multitask":
            return None
        index = torch.as_tensor(batch["task_index"], device=self.device).long()
        names = batch.get("task_names")
        if names is not None:
            for i, name in zip(index.tolist(), names):
                if i >= len(self.task_names) or self.task_names[i] != name:  # type: ignore[index,arg-type]
                    raise ValueError(
                        f"task_index {i} does not name task {name!r} in this module's task list."
                    )
        return index

    def _step(self, batch: dict[str, Any], stage: str) -> Tensor:
        per = self.lm_loss(self.adapters, batch, self._adapter_index(batch), float(self.label_smoothing))
        loss = per.mean()
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=per.shape[0])
        if stage == "train":
            index = self._adapter_index(batch)
            if index is None:
                self.task_steps += 1
            else:
                self.task_steps.index_add_(0, index, torch.ones_like(index))
        return loss

    @property
    def trained_tasks(self) -> list[int]:
        """Adapters that received at least one training row (restored with checkpoints)."""
        return torch.nonzero(self.task_steps).flatten().tolist()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    # ------------------------------------------------------------------ export
    def export_library(self, directory: str | Path, only_trained: bool = True) -> list[Path]:
        """Write PEFT dirs: ``<dir>/<task>/`` per task + ``descriptions.json`` (or ``<dir>`` itself in multitask)."""
        directory = Path(directory)
        lora = self.adapters.detach()
        if self.mode == "multitask":
            return [save_peft(lora, 0, directory, base_model_name=self.base_model_name, overwrite=True)]
        rows = self.trained_tasks if only_trained and self.trained_tasks else range(len(self.task_names))  # type: ignore[arg-type]
        written, index = [], {}
        for i in rows:
            name = self.task_names[i]  # type: ignore[index]
            out = save_peft(lora, i, directory / name, base_model_name=self.base_model_name, overwrite=True)
            descriptions = self.descriptions.get(name, [])
            (out / "descriptions.json").write_text(json.dumps(descriptions, indent=1) + "\n")
            index[name] = descriptions
            written.append(out)
        (directory / "descriptions.json").write_text(json.dumps(index, indent=1) + "\n")
        return written

    def on_fit_end(self) -> None:
        if self.export_dir and self.trainer.is_global_zero:
            self.export_library(self.export_dir)
