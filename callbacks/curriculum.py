"""A curriculum for NIAH training: start from needle-only contexts, ramp to full haystacks."""

from __future__ import annotations

from typing import Any

import lightning as L


class NeedleCurriculum(L.Callback):
    """Linearly move the training data's ``needle_only_prob`` from ``start`` to ``end`` over ``steps`` steps.

    Needle-only contexts make the needle's signal easy to find; mixing in full haystacks gradually teaches
    the hypernetwork to find it in filler (sample efficiency, not more compute). Works with any DataModule
    whose training dataset has a ``needle_only_prob`` attribute (``NIAHDataModule``); needs
    ``num_workers=0`` (worker processes hold their own copy of the dataset).

    Args:
        start: needle-only probability at step 0.
        end: needle-only probability from ``steps`` on.
        steps: length of the ramp in optimizer steps.
    """

    def __init__(self, start: float = 1.0, end: float = 0.1, steps: int = 1000) -> None:
        super().__init__()
        for name, value in (("start", start), ("end", end)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"NeedleCurriculum.{name} must be in [0, 1], got {value}.")
        if steps < 1:
            raise ValueError(f"NeedleCurriculum.steps must be >= 1, got {steps}.")
        self.start, self.end, self.steps = start, end, steps

    def value(self, step: int) -> float:
        """The needle-only probability at optimizer step ``step``."""
        return self.start + (self.end - self.start) * min(1.0, step / self.steps)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        loader = trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        if dataset is None or not hasattr(dataset, "needle_only_prob"):
            raise ValueError(
                "NeedleCurriculum needs a training dataset with a needle_only_prob attribute (NIAHDataModule)."
            )
        if getattr(loader, "num_workers", 0):
            raise ValueError(
                "NeedleCurriculum needs num_workers=0: worker processes keep their own dataset copy."
            )
        prob = self.value(trainer.global_step)
        dataset.needle_only_prob = prob
        if trainer.datamodule is not None and hasattr(trainer.datamodule, "needle_only_prob"):
            trainer.datamodule.needle_only_prob = prob
        pl_module.log("train/needle_only_prob", prob, on_step=True, prog_bar=False)
