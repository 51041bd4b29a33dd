"""A test-only LightningModule and DataModule for exercising the CLI without any hypernetwork."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class ToyRegression(L.LightningModule):
    """Fits y = 3x + 1 with one linear layer; every finished stage appends ``(stage, global_step, metrics)`` to
    :attr:`RUNS` so CLI tests can assert what ran.

    Args:
        hidden: width of the hidden layer.
        lr: SGD learning rate.
    """

    RUNS: list[tuple[str, int, dict[str, float]]] = []

    def __init__(self, hidden: int = 4, lr: float = 0.1) -> None:
        super().__init__()
        self.n_predicted = 0
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(1, hidden), torch.nn.Linear(hidden, 1))

    def _loss(self, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self._loss(batch))

    def predict_step(self, batch, batch_idx):
        self.n_predicted += len(batch[0])
        return self.net(batch[0])

    def _record(self, stage: str) -> None:
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
        if stage == "predict":
            metrics["n_predicted"] = float(self.n_predicted)
        ToyRegression.RUNS.append((stage, self.trainer.global_step, metrics))

    def on_train_end(self) -> None:
        self._record("fit")

    def on_validation_end(self) -> None:
        if not self.trainer.sanity_checking and self.trainer.state.fn == "validate":
            self._record("validate")

    def on_test_end(self) -> None:
        self._record("test")

    def on_predict_end(self) -> None:
        self._record("predict")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class ToyData(L.LightningDataModule):
    """Random x in [-1, 1] with y = 3x + 1.

    Args:
        n: number of samples.
        batch_size: rows per batch.
    """

    def __init__(self, n: int = 64, batch_size: int = 8) -> None:
        super().__init__()
        self.n = n
        self.batch_size = batch_size

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(self.n, 1, generator=g) * 2 - 1
        self.ds = TensorDataset(x, 3 * x + 1)

    def train_dataloader(self):
        return DataLoader(self.ds, batch_size=self.batch_size)

    val_dataloader = test_dataloader = predict_dataloader = train_dataloader
