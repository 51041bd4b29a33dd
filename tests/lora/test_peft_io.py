"""PEFT export/import: exact logits through PeftModel, round trips, foreign adapters with other scalings."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
from helpers.factories import random_lora

from lora_hyper.lora import LoRASpec, apply_lora, load_peft, save_peft


@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], ["down_proj"]])
def test_peft_model_reproduces_injection(tiny_llama, tmp_path, targets):
    from peft import PeftModel

    model, tok = tiny_llama
    spec = LoRASpec(targets, rank=4, scale=2 * 4**1.5).discover(model)
    lora = random_lora(spec, 2, std=0.1)
    enc = tok(["The special magic number is 1234.", "Sort the list"], return_tensors="pt", padding=True)
    with torch.no_grad(), apply_lora(model, lora):
        ours = model(**enc).logits
    out = save_peft(lora, 1, tmp_path / "adapter", base_model_name="tiny")
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["r"] == cfg["lora_alpha"] == 4 and cfg["use_rslora"] is False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft_model = PeftModel.from_pretrained(copy.deepcopy(model), str(out))
    # Library deprecation notices are not about the adapter; anything else (missing keys, ...) is.
    about_adapter = [w for w in caught if not issubclass(w.category, (FutureWarning, DeprecationWarning))]
    assert not about_adapter, [str(w.message) for w in about_adapter]
    with torch.no_grad():
        theirs = peft_model(**enc).logits
    mask = enc["attention_mask"][1].bool()
    torch.testing.assert_close(theirs[1][mask], ours[1][mask], atol=1e-5, rtol=1e-5)
    assert not list(tmp_path.glob(".adapter.*"))  # atomic write leaves no temp dir


def test_load_peft_round_trip(tiny_llama, tmp_path):
    model, _ = tiny_llama
    spec = LoRASpec(["q_proj", "down_proj"], rank=3, scale=0.7).discover(model)
    lora = random_lora(spec, 3)
    back = load_peft(save_peft(lora, 2, tmp_path / "a"))
    assert back.spec.layers_path == "model.layers"
    assert back.spec.module_paths == spec.module_paths
    assert back.scale == 1.0
    for m in spec.target_modules:
        torch.testing.assert_close(back.delta(m)[0], lora.delta(m)[2], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("rslora", [False, True])
def test_foreign_adapter_scaling(tiny_llama, tmp_path, rslora):
    from peft import LoraConfig, get_peft_model

    model, tok = tiny_llama
    cfg = LoraConfig(
        r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], use_rslora=rslora, init_lora_weights=False
    )
    torch.manual_seed(0)
    peft_model = get_peft_model(copy.deepcopy(model), cfg)
    peft_model.save_pretrained(str(tmp_path / "foreign"))
    lora = load_peft(tmp_path / "foreign")
    assert lora.scale == pytest.approx(16 / 2 if rslora else 16 / 4)
    enc = tok(["The grass is green."], return_tensors="pt")
    with torch.no_grad():
        expected = peft_model(**enc).logits
        with apply_lora(model, lora):
            got = model(**enc).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_load_peft_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter_config.json is missing"):
        load_peft(tmp_path)
