"""The lifecycle every training module shares (the base class): frozen parts stay in eval mode during fit,
only what trains is in train mode, and each hypernetwork module names the inference object it exports."""

from __future__ import annotations

import torch

from lora_hyper.modules.d2l import DocToLoRAModule
from lora_hyper.modules.t2l import TextToLoRAModule


def _check_modes(module) -> None:
    module.train()
    for frozen in module.frozen_models():
        assert not any(m.training for m in frozen.modules()), type(frozen).__name__
    assert module.hypernet.training
    module.eval()
    assert not module.hypernet.training


def test_d2l_keeps_base_and_encoder_in_eval_mode(tiny_llama_dir):
    module = DocToLoRAModule(
        base_model=str(tiny_llama_dir),
        lora={"rank": 4},
        perceiver={"latent_dim": 32, "n_latents": 8, "n_blocks": 1},
        runtime={"attn_implementation": "sdpa"},
    )
    module.configure_model()
    assert module.base_model in module.frozen_models()
    _check_modes(module)
    assert type(module.inference_model()).__name__ == "DocToLoRA"


def test_t2l_keeps_base_and_task_encoder_in_eval_mode(tiny_llama_dir, tmp_path):
    from lora_hyper.testing import save_tiny_text_encoder

    encoder_dir = save_tiny_text_encoder(tmp_path / "encoder")
    module = TextToLoRAModule(
        base_model=str(tiny_llama_dir),
        lora={"rank": 4},
        mlp={"latent": 16, "head_in": 16},
        task_encoder={"model": str(encoder_dir)},
        runtime={"attn_implementation": "sdpa"},
    )
    module.configure_model()
    frozen = module.frozen_models()
    assert module.base_model in frozen
    frozen_params = {id(p) for m in frozen for p in m.parameters()}
    assert all(id(p) in frozen_params for p in module.parameters() if not p.requires_grad)
    _check_modes(module)
    inference = module.inference_model()
    assert type(inference).__name__ == "TextToLoRA"
    assert torch.equal(
        next(iter(inference.hypernet.state_dict().values())),
        next(iter(module.hypernet.state_dict().values())),
    )
