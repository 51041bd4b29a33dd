"""Every recipe under recipes/ parses through LightningCLI (no skips: a class_path typo fails here), starts with its
launch command, shares base_model between model and data by interpolation, and combines with every strategy."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lora_hyper.cli import main

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = sorted((ROOT / "recipes" / "strategies").glob("*.yaml"))
RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p not in STRATEGIES)
MODULES = {
    "d2l": {"lora_hyper.modules.d2l.DocToLoRAModule"},
    "t2l": {"lora_hyper.modules.t2l.TextToLoRAModule", "lora_hyper.modules.finetune.LoRAFinetuneModule"},
}


def _print_config(capsys, *args: str) -> dict:
    with pytest.raises(SystemExit) as e:
        main(["fit", *args, "--print_config"])
    assert e.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_the_recipe_set():
    names = {str(p.relative_to(ROOT / "recipes")) for p in RECIPES}
    assert names >= {
        "quickstart.yaml",
        "d2l/niah_smollm2_cpu.yaml",
        "d2l/niah_smollm2_gemma3_encoder_cpu.yaml",
        "d2l/niah_smollm2_gemma3_encoder_per_layer_cpu.yaml",
        "d2l/niah_gemma2_2b.yaml",
        "d2l/docqa_gemma2_2b.yaml",
        "t2l/sft_smollm2_cpu.yaml",
        "t2l/sft_smollm2_builtin.yaml",
        "t2l/recon_smollm2_builtin.yaml",
        "t2l/oracle_loras_smollm2_builtin.yaml",
        "t2l/oracle_loras_smollm2_cpu.yaml",
        "t2l/recon_smollm2_cpu.yaml",
        "t2l/sft_from_recon_smollm2_cpu.yaml",
        "d2l/niah_smollm2_cpu_stage4.yaml",
        "t2l/sft_mistral7b_sni.yaml",
        "t2l/sft_gemma2_2b_sni.yaml",
        "vlm/imagenette_gemma3_4b.yaml",
        "vlm/imagenette_smoke_cpu.yaml",
    }
    assert len(STRATEGIES) == 3


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_recipe_parses_and_overrides_reach_interpolated_values(recipe, capsys):
    text = recipe.read_text()
    assert text.startswith("#") and "lora-hyper fit" in text.split("\n\n")[0], "needs a launch comment"
    cfg = _print_config(capsys, "--config", str(recipe), "--model.init_args.base_model=/tmp/other-model")
    family = recipe.parent.name if recipe.parent.name in MODULES else "d2l"
    assert cfg["model"]["class_path"] in MODULES[family]
    assert cfg["model"]["init_args"]["base_model"] == "/tmp/other-model"
    if "base_model" in cfg["data"]["init_args"]:
        assert cfg["data"]["init_args"]["base_model"] == "/tmp/other-model"
    encoder = cfg["model"]["init_args"].get("encoder") or {}
    if encoder.get("model"):  # the encoder reaches the data module the same way
        assert cfg["data"]["init_args"]["encoder_model"] == encoder["model"]
    assert cfg["trainer"]["max_steps"] > 0


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda p: p.name)
def test_strategy_combines_with_a_recipe(strategy, capsys):
    assert strategy.read_text().startswith("#")
    cfg = _print_config(capsys, "--config", str(ROOT / "recipes/quickstart.yaml"), "--config", str(strategy))
    assert cfg["trainer"]["strategy"]["class_path"].startswith("lightning.pytorch.strategies.")
