"""Warm start (``init_from``): hypernetwork weights from a checkpoint, a saved model or a shipped name, with a
fresh optimiser; an exact ``ckpt_path`` resume still overrides them; mismatches fail with one clear line."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers.factories import grouped
from lightning.pytorch.callbacks import ModelCheckpoint

from lora_hyper.api.doc_to_lora import DocToLoRA
from lora_hyper.data_modules.niah import NIAHDataModule
from lora_hyper.modules.d2l import DocToLoRAModule
from lora_hyper.modules.init_from import hypernet_state

SMALL = dict(
    lora={"rank": 4},
    perceiver={"latent_dim": 32, "n_latents": 8, "n_blocks": 1, "n_heads": 4},
    optim={"lr": 1e-2},
    runtime={"attn_implementation": "sdpa"},
)


def _module(model_dir, seed: int = 0, **kw) -> DocToLoRAModule:
    torch.manual_seed(seed)
    module = DocToLoRAModule(base_model=str(model_dir), **grouped(SMALL, **kw))
    module.configure_model()
    return module


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _fit(module, data_dir, root, max_steps, ckpt_path=None):
    L.seed_everything(0)
    data = NIAHDataModule(str(data_dir), train_lengths=(16, 48), val_bins=[], batch_size=2, seed=3)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=root, every_n_train_steps=2, save_top_k=-1)],
        default_root_dir=root,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return module


def test_warm_start_from_saved_model_and_checkpoint(tiny_llama_dir, tmp_path):
    source = _module(tiny_llama_dir, seed=1)
    with torch.no_grad():
        for p in source.hypernet.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    DocToLoRA.from_module(source).save_pretrained(tmp_path / "saved")
    fresh = _module(tiny_llama_dir, seed=2)
    assert not _same(fresh.hypernet, source.hypernet)
    assert _same(_module(tiny_llama_dir, seed=2, init_from=str(tmp_path / "saved")).hypernet, source.hypernet)
    ckpt = {"state_dict": {f"hypernet.{k}": v for k, v in source.hypernet.state_dict().items()}}
    torch.save(ckpt, tmp_path / "run.ckpt")
    assert _same(
        _module(tiny_llama_dir, seed=3, init_from=str(tmp_path / "run.ckpt")).hypernet, source.hypernet
    )
    assert hypernet_state(tmp_path / "saved").keys() == source.hypernet.state_dict().keys()


def test_warm_start_mismatch_and_bad_sources_fail_clearly(tiny_llama_dir, tmp_path):
    DocToLoRA.from_module(_module(tiny_llama_dir)).save_pretrained(tmp_path / "saved")
    with pytest.raises(ValueError, match="does not fit this hypernetwork.*same hypernetwork settings"):
        _module(tiny_llama_dir, init_from=str(tmp_path / "saved"), perceiver={"latent_dim": 16})
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a Lightning .ckpt"):
        _module(tiny_llama_dir, init_from=str(tmp_path / "notes.txt"))
    with pytest.raises(FileNotFoundError, match="shipped models are"):
        _module(tiny_llama_dir, init_from="no-such-model")
    torch.save({"state_dict": {"other.weight": torch.zeros(1)}}, tmp_path / "empty.ckpt")
    with pytest.raises(ValueError, match="no hypernet"):
        _module(tiny_llama_dir, init_from=str(tmp_path / "empty.ckpt"))


def test_exact_resume_overrides_the_warm_start(tiny_llama_dir, tmp_path):
    source = _module(tiny_llama_dir, seed=1)
    DocToLoRA.from_module(source).save_pretrained(tmp_path / "saved")
    warm = _fit(
        DocToLoRAModule(base_model=str(tiny_llama_dir), init_from=str(tmp_path / "saved"), **SMALL),
        tiny_llama_dir,
        tmp_path / "run",
        max_steps=2,
    )
    assert not _same(warm.hypernet, source.hypernet)  # it trained from the warm start
    ckpt = next((tmp_path / "run").glob("*step=2*.ckpt"))
    resumed = _fit(
        DocToLoRAModule(base_model=str(tiny_llama_dir), init_from=str(tmp_path / "saved"), **SMALL),
        tiny_llama_dir,
        tmp_path / "again",
        max_steps=2,
        ckpt_path=str(ckpt),
    )
    assert _same(resumed.hypernet, warm.hypernet)  # the checkpoint's weights, not init_from's


def test_a_gate_can_be_added_to_a_warm_start_and_learns_faster(tiny_llama_dir, tmp_path):
    source = _module(tiny_llama_dir, seed=1)
    DocToLoRA.from_module(source).save_pretrained(tmp_path / "saved")
    gated = _module(
        tiny_llama_dir,
        init_from=str(tmp_path / "saved"),
        perceiver={"chunk_gate": True, "gate_lr_multiplier": 50},
    )
    own = gated.hypernet.state_dict()
    for k, v in source.hypernet.state_dict().items():
        assert torch.equal(own[k], v)
    assert float(torch.sigmoid(gated.hypernet.gate.bias)) > 0.98  # starts open
    groups = gated.configure_optimizers()["optimizer"].param_groups
    gate_ids = {id(p) for p in gated.hypernet.gate.parameters()}
    gate_groups = [g for g in groups if {id(p) for p in g["params"]} & gate_ids]
    assert gate_groups and all(
        g["initial_lr"] == pytest.approx(50 * SMALL["optim"]["lr"]) for g in gate_groups
    )
    assert all(g["weight_decay"] == 0.0 for g in gate_groups)
    others = [g for g in groups if g not in gate_groups]
    assert {g["initial_lr"] for g in others} == {SMALL["optim"]["lr"]}
    assert sum(len(g["params"]) for g in groups) == len(gated.trainable_parameters())
    with pytest.raises(ValueError, match="does not fit"):  # the other way round: a gate the target lacks
        DocToLoRA.from_module(gated).save_pretrained(tmp_path / "gated")
        _module(tiny_llama_dir, init_from=str(tmp_path / "gated"))
