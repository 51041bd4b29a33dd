"""A curriculum for NIAH training: start from needle-only contexts, ramp to full haystacks."""

from __future__ import annotations

from typing import Any

import lightning as L

from lora_hyper.validation import InputError


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
        after_reading: hold ``start`` until the module's reading trigger fires (``DocToLoRAModule`` with
            ``loss.read_loss`` set) and ramp from that step: haystacks come once the needle can be read, at
            whatever step that happens for this seed.
    """

    def __init__(
        self, start: float = 1.0, end: float = 0.1, steps: int = 1000, after_reading: bool = False
    ) -> None:
        super().__init__()
        for name, value in (("start", start), ("end", end)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"NeedleCurriculum.{name} must be in [0, 1], got {value}.")
        if steps < 1:
            raise ValueError(f"NeedleCurriculum.steps must be >= 1, got {steps}.")
        self.start, self.end, self.steps = start, end, steps
        self.after_reading = after_reading

    def value(self, step: int) -> float:
        """The needle-only probability ``step`` optimizer steps into the ramp."""
        return self.start + (self.end - self.start) * min(1.0, max(step, 0) / self.steps)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.check_module(pl_module)

    def check_module(self, pl_module: L.LightningModule) -> None:
        """``after_reading`` needs the module's reading trigger (the CLI calls this before the trainer starts)."""
        loss = getattr(pl_module, "loss", None)
        if self.after_reading and (not hasattr(pl_module, "read_step") or not getattr(loss, "read_loss", 0)):
            raise InputError(
                "NeedleCurriculum(after_reading=True) needs a module with a reading trigger: set the "
                "DocToLoRAModule's loss.read_loss > 0 (e.g. 1.5), or after_reading: false."
            )

    def ramp_step(self, trainer: L.Trainer, pl_module: L.LightningModule) -> int:
        """Steps into the ramp: the global step, or with ``after_reading`` the steps since the module read."""
        if not self.after_reading:
            return trainer.global_step
        read_step = pl_module.read_step
        return -1 if read_step is None else trainer.global_step - read_step

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
        prob = self.value(self.ramp_step(trainer, pl_module))
        dataset.needle_only_prob = prob
        if trainer.datamodule is not None and hasattr(trainer.datamodule, "needle_only_prob"):
            trainer.datamodule.needle_only_prob = prob
        pl_module.log("train/needle_only_prob", prob, on_step=True, prog_bar=False)
