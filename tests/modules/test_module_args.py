"""The modules' argument groups (``lora_hyper/modules/args.py``) are the recipe schema: ``--print_config`` shows them,
a command-line override of one field reaches the instantiated module, Python takes an instance or a dict, and
checkpoints written before the groups (flat ``lr``, ``rank``, ``latent_dim``, ...) still export, load, resume and
warm-start."""

from __future__ import annotations

from pathlib import Path

import lightning
import pytest
import torch
import yaml

from lora_hyper.cli import main
from lora_hyper.modules.args import OptimArgs, from_flat
from lora_hyper.modules.d2l import DocToLoRAModule
from lora_hyper.modules.finetune import LoRAFinetuneModule
from lora_hyper.modules.t2l import TextToLoRAModule
from lora_hyper.validation import InputError

ROOT = Path(__file__).resolve().parents[2]

# Hyperparameters exactly as the code before the argument groups saved them (captured from its checkpoints;
# ``base_model`` and ``task_encoder`` are set per test). D2L and T2L: written by LightningCLI, finetune: by Python.
OLD_D2L_HPARAMS = {
    "_class_path": "lora_hyper.modules.d2l.DocToLoRAModule",
    "_instantiator": "lightning.pytorch.cli.instantiate_module",
    "attn_implementation": "auto",
    "base_dtype": "auto",
    "base_model": None,
    "bias_rank": None,
    "chunk_gate": True,
    "chunk_length": 48,
    "distill_top_k": 16,
    "encoder_layer_map": "even",
    "encoder_layers": None,
    "encoder_mode": "early_exit",
    "encoder_model": None,
    "gate_lr_multiplier": 100.0,
    "head_hidden_ratio": 1.0,
    "head_init": "fan_in",
    "init_from": None,
    "l1_ramp_steps": 0,
    "l1_start_step": 0,
    "l1_weight": 1.5,
    "label_smoothing": 0.0,
    "latent_dim": 32,
    "lr": 0.001,
    "mlp_ratio": 2.0,
    "n_blocks": 1,
    "n_heads": 4,
    "n_latents": 4,
    "objective": "ce",
    "rank": 4,
    "rank_budget": None,
    "scale": None,
    "schedule": "cosine",
    "self_attention": True,
    "system_prompt": "",
    "targets": ["down_proj"],
    "warmup": 50.0,
    "weight_decay": 0.01,
}
OLD_T2L_HPARAMS = {
    "_class_path": "lora_hyper.modules.t2l.TextToLoRAModule",
    "_instantiator": "lightning.pytorch.cli.instantiate_module",
    "alpha": 16.0,
    "attn_implementation": "sdpa",
    "base_dtype": "auto",
    "base_model": None,
    "dropout": 0.0,
    "head_in": 32,
    "head_multiplier": None,
    "head_size": "L",
    "init_from": None,
    "l2_weight": 0.001,
    "label_smoothing": 0.0,
    "latent": 32,
    "lr": 0.001,
    "neftune_alpha": 0.0,
    "objective": "sft",
    "rank": 4,
    "reconstruction_mode": "factors",
    "residual_adapter": None,
    "schedule": "cosine",
    "targets": ["q_proj", "v_proj"],
    "task_encoder": None,
    "task_encoder_pooling": None,
    "warmup": 0.05,
    "weight_decay": 0.01,
    "zscore": False,
}
OLD_FINETUNE_HPARAMS = {
    "alpha": 16.0,
    "attn_implementation": "sdpa",
    "base_dtype": "auto",
    "base_model": "smollm2-135m-instruct",
    "export_dir": None,
    "label_smoothing": 0.0,
    "lr": 0.001,
    "mode": "per_task",
    "rank": 4,
    "rslora": True,
    "schedule": "cosine",
    "targets": None,
    "tasks": ["a", "b"],
    "warmup": 0.1,
    "weight_decay": 0.0,
}

# The grouped recipe of the same tiny Doc-to-LoRA (the settings of OLD_D2L_HPARAMS).
D2L_RECIPE = """\
# lora-hyper fit --config recipe.yaml   (a tiny Doc-to-LoRA for the argument-group tests)
seed_everything: 0
model:
  class_path: lora_hyper.modules.d2l.DocToLoRAModule
  init_args:
    base_model: {model}
    lora: {{rank: 4}}
    encoder: {{mode: early_exit, chunk_length: 48}}
    perceiver: {{latent_dim: 32, n_latents: 4, n_blocks: 1, head_init: fan_in, chunk_gate: true,
                 gate_lr_multiplier: 100}}
    loss: {{l1_weight: 1.5}}
    optim: {{lr: 1.0e-3, warmup: 50}}
data:
  class_path: lora_hyper.data_modules.niah.NIAHDataModule
  init_args:
    base_model: ${{...model.init_args.base_model}}
    train_lengths: [16, 48]
    val_bins: []
    batch_size: 2
    system_prompt: ${{...model.init_args.system_prompt}}
trainer:
  accelerator: cpu
  devices: 1
  max_steps: 2
  logger: false
  enable_progress_bar: false
  enable_model_summary: false
  default_root_dir: {root}
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args:
        dirpath: {root}/checkpoints
        save_last: true
"""


def _print_config(capsys, *args: str) -> dict:
    with pytest.raises(SystemExit) as e:
        main(["fit", *args, "--print_config"])
    assert e.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------- the schema
def test_print_config_shows_the_groups_and_an_override_reaches_the_module(tiny_llama_dir, capsys):
    recipe = str(ROOT / "recipes" / "quickstart.yaml")
    args = [
        "--config",
        recipe,
        f"--model.init_args.base_model={tiny_llama_dir}",
        "--model.init_args.optim.lr=3e-4",
    ]
    cfg = _print_config(capsys, *args)
    init = cfg["model"]["init_args"]
    groups = ("lora", "encoder", "perceiver", "loss", "optim", "runtime")
    assert [k for k in init if isinstance(init[k], dict)] == list(groups)
    assert init["optim"] == {"lr": 3e-4, "weight_decay": 0.01, "warmup": 0.05, "schedule": "cosine"}
    assert (
        init["perceiver"]["n_latents"] == 16 and init["perceiver"]["gate_lr_multiplier"] == 1.0
    )  # the defaults
    assert cfg["data"]["init_args"]["base_model"] == str(tiny_llama_dir)  # omegaconf+ interpolation

    from lora_hyper.cli import _cli_class

    cli = _cli_class()(args=args, run=False)
    module = cli.model
    assert isinstance(module, DocToLoRAModule) and module.optim == OptimArgs(lr=3e-4, warmup=0.05)
    assert module.lora.targets == ["down_proj"] and module.encoder.mode == "early_exit"
    assert dict(module.hparams)["optim"]["lr"] == 3e-4  # saved as a plain dict: weights_only checkpoints


def test_help_documents_every_group_field(capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--model.help", "lora_hyper.modules.t2l.TextToLoRAModule"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--model.optim.lr LR peak AdamW learning rate." in out
    assert "--model.task_encoder.pooling" in out and "--model.mlp.head_multiplier" in out


def test_groups_from_python_take_an_instance_or_a_dict():
    by_dict = TextToLoRAModule(optim={"lr": 1e-3})  # the other fields: T2L's defaults, not OptimArgs'
    assert by_dict.optim == OptimArgs(lr=1e-3, weight_decay=0.01, warmup=0.2, schedule="linear")
    assert TextToLoRAModule(optim=OptimArgs(lr=1e-3)).optim == OptimArgs(lr=1e-3)
    assert DocToLoRAModule().optim == OptimArgs(lr=1e-4, warmup=0.1, schedule="cosine")
    assert LoRAFinetuneModule(lora={"rank": 2}).lora.rslora is True
    with pytest.raises(InputError, match="perceiver has no field 'latent_dm'; did you mean 'latent_dim'"):
        DocToLoRAModule(perceiver={"latent_dm": 8})
    assert dict(DocToLoRAModule(perceiver={"chunk_gate": True}).hparams)["perceiver"]["chunk_gate"] is True


def test_from_flat_moves_the_old_layout_into_the_groups():
    old = dict(OLD_D2L_HPARAMS, base_model="m")
    args = from_flat(DocToLoRAModule, old)
    assert args["encoder"] == {"mode": "early_exit", "layers": None, "model": None, "layer_map": "even",
                               "chunk_length": 48}  # fmt: skip
    assert args["optim"] == {"lr": 0.001, "weight_decay": 0.01, "warmup": 50.0, "schedule": "cosine"}
    assert args["perceiver"]["gate_lr_multiplier"] == 100.0 and args["loss"]["l1_weight"] == 1.5
    assert "_class_path" not in args and "lr" not in args
    assert from_flat(DocToLoRAModule, args) == args  # the grouped layout passes through
    t2l = from_flat(TextToLoRAModule, dict(OLD_T2L_HPARAMS, base_model="m", task_encoder="enc"))
    assert t2l["task_encoder"] == {"model": "enc", "pooling": None} and t2l["mlp"]["latent"] == 32
    ft = LoRAFinetuneModule(**from_flat(LoRAFinetuneModule, OLD_FINETUNE_HPARAMS))
    assert ft.lora.targets == ["q_proj", "v_proj"] and ft.lora.rank == 4  # a flat targets=None: the default
    assert ft.optim == OptimArgs(lr=1e-3, weight_decay=0.0) and ft.runtime.attn_implementation == "sdpa"
    assert ft.task_names == ["a", "b"]


# ---------------------------------------------------------------------------------------------- old checkpoints
@pytest.fixture(scope="module")
def old_d2l(tiny_llama_dir, tmp_path_factory):
    """A 2-step checkpoint of the tiny grouped recipe, and the same checkpoint in the old flat layout."""
    root = tmp_path_factory.mktemp("groups")
    recipe = root / "recipe.yaml"
    recipe.write_text(D2L_RECIPE.format(model=tiny_llama_dir, root=root))
    assert main(["fit", "--config", str(recipe)]) == 0
    ckpt = _load(root / "checkpoints" / "last.ckpt")
    assert ckpt["hyper_parameters"]["perceiver"]["gate_lr_multiplier"] == 100.0
    new = root / "new.ckpt"  # a copy: the resume test writes checkpoints/last.ckpt again
    torch.save(ckpt, new)
    ckpt["hyper_parameters"] = dict(OLD_D2L_HPARAMS, base_model=str(tiny_llama_dir))
    old = root / "old.ckpt"
    torch.save(ckpt, old)
    return recipe, new, old


def test_old_d2l_checkpoint_exports_and_loads(old_d2l, tmp_path):
    _, new, old = old_d2l
    assert main(["export", "--ckpt", str(new), "--out", str(tmp_path / "new")]) == 0
    assert main(["export", "--ckpt", str(old), "--out", str(tmp_path / "old")]) == 0
    assert (tmp_path / "old" / "lora_hyper.json").read_text() == (
        tmp_path / "new" / "lora_hyper.json"
    ).read_text()
    assert (tmp_path / "old" / "hypernet.safetensors").read_bytes() == (
        tmp_path / "new" / "hypernet.safetensors"
    ).read_bytes()
    module = DocToLoRAModule.load_from_checkpoint(old)
    assert module.perceiver.latent_dim == 32 and module.perceiver.chunk_gate and module.optim.warmup == 50.0
    grouped = DocToLoRAModule.load_from_checkpoint(new)  # through LightningCLI's instantiator
    assert (grouped.lora, grouped.encoder, grouped.perceiver, grouped.loss, grouped.optim) == (
        module.lora, module.encoder, module.perceiver, module.loss, module.optim
    )  # fmt: skip
    state = {k: v for k, v in _load(old)["state_dict"].items()}
    assert _same_weights({k: module.state_dict()[k] for k in state}, state)


def test_old_d2l_checkpoint_resumes_and_warm_starts(old_d2l, tiny_llama_dir):
    recipe, _, old = old_d2l
    root = recipe.parent
    # the recipe says latent_dim 8: a resume rebuilds the checkpoint's module (Lightning reads its hparams)
    argv = [
        "fit",
        "--config",
        str(recipe),
        "--model.init_args.perceiver.latent_dim=8",
        "--trainer.max_steps=3",
    ]
    assert main([*argv, "--ckpt_path", str(old)]) == 0
    resumed = _load(root / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 3
    hparams = resumed["hyper_parameters"]
    assert (
        hparams["perceiver"]["latent_dim"] == 32 and hparams["optim"]["lr"] == 0.001 and "lr" not in hparams
    )
    flat = dict(OLD_D2L_HPARAMS, base_model=str(tiny_llama_dir), init_from=str(old))
    warm = DocToLoRAModule(**from_flat(DocToLoRAModule, flat))  # init_from reads the old checkpoint's weights
    warm.configure_model()
    state = {
        k[len("hypernet.") :]: v for k, v in _load(old)["state_dict"].items() if k.startswith("hypernet.")
    }
    assert _same_weights(warm.hypernet.state_dict(), state)


def test_old_t2l_checkpoint_exports_and_loads(tiny_llama_dir, tmp_path):
    from lora_hyper.commands.export import export_checkpoint
    from lora_hyper.testing import save_tiny_text_encoder

    encoder = save_tiny_text_encoder(tmp_path / "encoder")
    module = TextToLoRAModule(
        base_model=str(tiny_llama_dir),
        lora={"rank": 4},
        mlp={"latent": 32, "head_in": 32, "dropout": 0.0},
        task_encoder={"model": str(encoder)},
        runtime={"attn_implementation": "sdpa"},
    )
    module.configure_model()
    with torch.no_grad():
        for p in module.hypernet.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    old = dict(OLD_T2L_HPARAMS, base_model=str(tiny_llama_dir), task_encoder=str(encoder))
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": old,
        "pytorch-lightning_version": lightning.__version__,
    }
    module.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "old.ckpt")
    export_checkpoint(tmp_path / "old.ckpt", tmp_path / "model")
    module.inference_model().save_pretrained(tmp_path / "direct")
    assert (tmp_path / "model" / "lora_hyper.json").read_text() == (
        tmp_path / "direct" / "lora_hyper.json"
    ).read_text()
    loaded = TextToLoRAModule.load_from_checkpoint(tmp_path / "old.ckpt")
    assert (
        loaded.mlp.latent == 32 and loaded.task_encoder.model == str(encoder) and loaded.optim.warmup == 0.05
    )
    assert _same_weights(loaded.hypernet.state_dict(), module.hypernet.state_dict())
