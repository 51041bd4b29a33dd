"""NIAH evaluation (function and callback) with a fake internalize/generate model: scoring, logging, CSV, PNG."""

from __future__ import annotations

import csv
import re

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lora_hyper.callbacks.niah import NIAHEvaluation, evaluate_niah, niah_metrics, write_niah_report
from lora_hyper.data_modules.niah import NIAH_QUESTION


class FakeD2L(L.LightningModule):
    """Knows the needle of documents up to ``max_tokens`` tokens (answers with noise around it), else guesses."""

    def __init__(self, tokenizer, max_tokens: int = 300, native_window: int = 256) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))
        self.frozen = torch.nn.Linear(2, 2).eval()
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.native_window = native_window
        self.calls: list[dict] = []

    def training_step(self, batch, batch_idx):
        return ((self.w - batch[0][0]) ** 2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def internalize(self, docs, chunk_length=None, rank_budget=None):
        self.calls.append(
            {"n": len(docs), "chunk_length": chunk_length, "rank_budget": rank_budget, "mode": self.training}
        )
        return [(d, len(self.tokenizer(d, add_special_tokens=False)["input_ids"])) for d in docs]

    def generate(self, questions, adapters, max_new_tokens=8):
        assert len(questions) == len(adapters) and all(q == NIAH_QUESTION for q in questions)
        out = []
        for doc, n in adapters:
            number = re.search(r"magic number is (\d{4})", doc).group(1)
            out.append(f"Sure: {number}." if n <= self.max_tokens else f"Maybe 1{number} or 12")
        return out


@pytest.fixture(scope="module")
def tok():
    from lora_hyper.testing import make_tiny_tokenizer

    return make_tiny_tokenizer()


def test_evaluate_scores_exact_match_per_bin(tok):
    model = FakeD2L(tok).train()
    model.frozen.eval()
    res = evaluate_niah(
        model, [64, "1x", "2K"], samples_per_bin=5, chunk_length=128, batch_size=2, rank_budget=16
    )
    assert [r["n_tokens"] for r in res["bins"]] == [64, 256, 2048]
    assert [r["bin"] for r in res["bins"]] == ["64", "1x", "2K"]
    assert [r["accuracy"] for r in res["bins"]] == [1.0, 1.0, 0.0]
    assert [r["n"] for r in res["bins"]] == [5, 5, 5]
    assert res["acc_mean"] == pytest.approx(2 / 3) and res["native_window"] == 256
    assert len(res["samples"]) == 15 and sum(s["correct"] for s in res["samples"]) == 10
    assert [c["n"] for c in model.calls] == [2, 2, 1] * 3
    assert all(c["chunk_length"] == 128 and c["rank_budget"] == 16 and not c["mode"] for c in model.calls)
    assert model.training and not model.frozen.training  # each submodule's mode restored
    assert niah_metrics(res) == {
        "niah/acc_64": 1.0,
        "niah/acc_256": 1.0,
        "niah/acc_2048": 0.0,
        "niah/acc_mean": 2 / 3,
    }
    again = evaluate_niah(FakeD2L(tok), [64, "1x", "2K"], samples_per_bin=5, chunk_length=128, batch_size=2)
    assert [s["answer"] for s in again["samples"]] == [s["answer"] for s in res["samples"]]


def test_evaluate_errors(tok):
    class Short(FakeD2L):
        def generate(self, questions, adapters, max_new_tokens=8):
            return ["1234"]

    with pytest.raises(ValueError, match="returned 1 answers for 2"):
        evaluate_niah(Short(tok), [64], samples_per_bin=2, batch_size=2)
    no_tok = FakeD2L(tok)
    no_tok.tokenizer = None
    with pytest.raises(ValueError, match="needs a tokenizer"):
        evaluate_niah(no_tok, [64], samples_per_bin=2)
    with pytest.raises(ValueError, match="Bad NIAH length"):
        NIAHEvaluation(bins=["huge"])
    with pytest.raises(ValueError, match="every_n_steps"):
        NIAHEvaluation(every_n_steps=-1)


def test_report_csv_and_png(tok, tmp_path):
    res = evaluate_niah(FakeD2L(tok), [32, 512], samples_per_bin=3, batch_size=3)
    csv_path, png_path = write_niah_report(res, tmp_path / "out", "report")
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["bin", "n_tokens", "accuracy", "n"]
    assert [(r["bin"], int(r["n_tokens"]), float(r["accuracy"]), int(r["n"])) for r in rows] == [
        ("32", 32, 1.0, 3),
        ("512", 512, 0.0, 3),
    ]
    data = png_path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_callback_in_trainer_logs_and_writes(tok, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    model = FakeD2L(tok, max_tokens=100)
    cb = NIAHEvaluation(
        every_n_steps=2, bins=[64, "1x"], samples_per_bin=4, batch_size=4, output_dir=str(tmp_path / "niah")
    )
    data = DataLoader(TensorDataset(torch.zeros(8, 2)), batch_size=1)
    trainer = L.Trainer(
        max_steps=4,
        callbacks=[cb],
        logger=CSVLogger(str(tmp_path), name="logs"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        accelerator="cpu",
    )
    trainer.fit(model, data)
    assert [step for step, _ in cb.history] == [2, 4]  # fit end reuses the step-4 evaluation
    names = sorted(p.name for p in (tmp_path / "niah").iterdir())
    assert names == sorted(
        f"niah_{s}.{e}" for s in ("step000002", "step000004", "final") for e in ("csv", "png")
    )
    assert trainer.callback_metrics["niah/acc_64"].item() == 1.0
    assert trainer.callback_metrics["niah/acc_256"].item() == 0.0
    assert trainer.callback_metrics["niah/acc_mean"].item() == pytest.approx(0.5)
    with open(trainer.logger.log_dir + "/metrics.csv", newline="") as fh:
        logged = [r for r in csv.DictReader(fh) if r.get("niah/acc_mean")]
    assert len(logged) >= 2 and float(logged[0]["niah/acc_64"]) == 1.0


def test_callback_default_dir_and_fit_end_only(tok, tmp_path):
    model = FakeD2L(tok)
    cb = NIAHEvaluation(every_n_steps=0, bins=[32], samples_per_bin=2)
    trainer = L.Trainer(
        max_steps=1,
        callbacks=[cb],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        accelerator="cpu",
    )
    trainer.fit(model, DataLoader(TensorDataset(torch.zeros(2, 2)), batch_size=1))
    assert [step for step, _ in cb.history] == [1]
    assert (tmp_path / "niah_final.csv").exists() and (tmp_path / "niah_final.png").exists()
