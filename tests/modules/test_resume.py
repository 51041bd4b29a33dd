"""Exact resume: a run stopped at a checkpoint and resumed with ckpt_path equals an uninterrupted run."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lora_hyper.data_modules.niah import NIAHDataModule
from lora_hyper.modules.d2l import DocToLoRAModule

SMALL = dict(
    lora={"rank": 4},
    perceiver={"latent_dim": 32, "n_latents": 8, "n_blocks": 1, "n_heads": 4},
    optim={"lr": 1e-2},
    runtime={"attn_implementation": "sdpa"},
)


class StopAt(L.Callback):
    """Interrupt a run after ``step`` optimizer steps (like a crash right after a checkpoint)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def _fit(model_dir, root, max_steps, ckpt_path=None, every=None, stop_at=None):
    L.seed_everything(0)
    module = DocToLoRAModule(base_model=str(model_dir), **SMALL)
    data = NIAHDataModule(
        str(model_dir), train_lengths=(16, 48), val_bins=[], batch_size=2, max_chunks=2, seed=3
    )
    callbacks = [ModelCheckpoint(dirpath=root, every_n_train_steps=every, save_top_k=-1)] if every else []
    callbacks += [StopAt(stop_at)] if stop_at else []
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=bool(every),
        callbacks=callbacks,
        default_root_dir=root,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return module


def test_resume_matches_uninterrupted_run(tiny_llama_dir, tmp_path):
    full = _fit(tiny_llama_dir, tmp_path / "full", max_steps=6)
    _fit(tiny_llama_dir, tmp_path / "part", max_steps=6, every=3, stop_at=3)  # same schedule, interrupted
    ckpt = next((tmp_path / "part").glob("*step=3*.ckpt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=False)  # our own file, written by this test
    assert not [k for k in state["state_dict"] if k.startswith("base_model.")]  # frozen base left out
    resumed = _fit(tiny_llama_dir, tmp_path / "resumed", max_steps=6, ckpt_path=str(ckpt))
    a, b = full.hypernet.state_dict(), resumed.hypernet.state_dict()
    assert a.keys() == b.keys()
    moved = max((a[k] - b[k]).abs().max().item() for k in a)
    assert moved < 1e-6, moved
    start = _fit(tiny_llama_dir, tmp_path / "start", max_steps=0)  # sanity: training changed the weights
    assert max((a[k] - start.hypernet.state_dict()[k]).abs().max().item() for k in a) > 1e-4
