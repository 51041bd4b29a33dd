"""The schedule every evaluation callback shares: run every N optimizer steps (never twice at one step) and at fit end."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import lightning as L
import torch


class PeriodicEvaluation(L.Callback, ABC):
    """Base of the evaluation callbacks: calls :meth:`on_evaluation_due` every ``every_n_steps`` optimizer steps
    (0: never during training) and leaves the fit-end evaluation to the subclass; ``log_metrics`` and
    ``output_path`` are the two ways a result leaves it.

    Subclasses record the step of their last evaluation in ``_last_step`` (e.g. by calling :meth:`mark`), so a
    fit that ends on an evaluated step can reuse that result instead of computing it again.
    """

    def __init__(
        self, every_n_steps: int = 0, output_dir: str | None = None, min_every_n_steps: int = 0
    ) -> None:
        super().__init__()
        if every_n_steps < min_every_n_steps:
            raise ValueError(f"every_n_steps must be >= {min_every_n_steps}, got {every_n_steps}.")
        self.every_n_steps = every_n_steps
        self.output_dir = output_dir
        self._last_step = -1

    def due(self, step: int) -> bool:
        """Whether an evaluation is due at optimizer step ``step`` (a multiple of N, not step 0, not done yet)."""
        return (
            self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0 and step != self._last_step
        )

    def mark(self, trainer: L.Trainer) -> int:
        """Record that an evaluation ran at the trainer's current step; return that step."""
        self._last_step = trainer.global_step
        return self._last_step

    def evaluated_now(self, trainer: L.Trainer) -> bool:
        """Whether the last evaluation ran at the trainer's current step."""
        return self._last_step == trainer.global_step

    def output_path(self, trainer: L.Trainer) -> Path:
        """Where reports go: ``output_dir``, else the trainer's log dir, else its root dir."""
        return Path(self.output_dir or trainer.log_dir or trainer.default_root_dir)

    @staticmethod
    def log_metrics(trainer: L.Trainer, metrics: dict[str, float]) -> None:
        """Send metrics to every logger at this step (whatever ``log_every_n_steps`` is) and to callback_metrics."""
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self.due(trainer.global_step):
            self.on_evaluation_due(trainer, pl_module)

    @abstractmethod
    def on_evaluation_due(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Evaluate during training (the subclass's work)."""
