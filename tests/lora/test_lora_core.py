"""The LoRA core: spec discovery, per-sample injection == merged weights, generate, compress, concat."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers.factories import random_lora

from lora_hyper.lora import LoRABatch, LoRASpec, apply_lora, merge_lora

TARGETS = [["q_proj", "v_proj"], ["down_proj"]]


def _padded_batch(tok, texts):
    enc = tok(texts, return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


def test_discover_shapes(tiny_llama):
    model, _ = tiny_llama
    spec = LoRASpec(["q_proj", "v_proj", "down_proj"], rank=4).discover(model)
    assert spec.n_layers == 2
    assert spec.layers_path == "model.layers"
    assert spec.module_paths == {
        "q_proj": "self_attn.q_proj",
        "v_proj": "self_attn.v_proj",
        "down_proj": "mlp.down_proj",
    }
    assert spec.shapes == {"q_proj": (64, 64), "v_proj": (64, 32), "down_proj": (128, 64)}


def test_discover_errors(tiny_llama):
    model, _ = tiny_llama
    with pytest.raises(ValueError, match="Unknown target module 'qq_proj'"):
        LoRASpec(["qq_proj"]).discover(model)
    broken = copy.deepcopy(model)
    del broken.model.layers[1].self_attn.q_proj
    with pytest.raises(ValueError, match=r"missing in decoder layers \[1\]"):
        LoRASpec(["q_proj"]).discover(broken)
    broken = copy.deepcopy(model)
    broken.model.layers[1].mlp.down_proj = torch.nn.Linear(128, 32)
    with pytest.raises(ValueError, match="different shapes across layers"):
        LoRASpec(["down_proj"]).discover(broken)


@pytest.mark.parametrize("targets", TARGETS)
def test_per_sample_injection_equals_merged_model(tiny_llama, targets):
    model, tok = tiny_llama
    spec = LoRASpec(targets, rank=4, scale=1.5).discover(model)
    lora = random_lora(spec, 3)
    ids, mask = _padded_batch(tok, ["The sky is blue.", "Sort the list of numbers 1 2 3 4 5 6 7 8", "Here"])
    with torch.no_grad(), apply_lora(model, lora):
        injected = model(input_ids=ids, attention_mask=mask).logits
    plain = model(input_ids=ids, attention_mask=mask).logits
    for i in range(3):
        merged = merge_lora(copy.deepcopy(model), lora, i)
        with torch.no_grad():
            ref = merged(input_ids=ids[i : i + 1], attention_mask=mask[i : i + 1]).logits[0]
        valid = mask[i].bool()
        torch.testing.assert_close(injected[i][valid], ref[valid], atol=1e-5, rtol=1e-5)
        assert (injected[i][valid] - plain[i][valid]).abs().max() > 1e-3  # the adapter does something
    # Leaving the context restores the model exactly.
    after = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(after, plain)


def test_generate_under_apply_lora_equals_merged(tiny_llama):
    model, tok = tiny_llama
    spec = LoRASpec(["q_proj", "v_proj", "down_proj"], rank=4).discover(model)
    lora = random_lora(spec, 2, std=0.5, seed=3)
    ids, mask = _padded_batch(tok, ["The grass", "What is the special magic number?"])
    kw = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    with torch.no_grad(), apply_lora(model, lora):
        out = model.generate(input_ids=ids, attention_mask=mask, **kw)
    for i in range(2):
        merged = merge_lora(copy.deepcopy(model), lora, i)
        n_pad = int((mask[i] == 0).sum())
        ref = merged.generate(input_ids=ids[i : i + 1, n_pad:], attention_mask=mask[i : i + 1, n_pad:], **kw)
        assert out[i, ids.shape[1] :].tolist() == ref[0, ids.shape[1] - n_pad :].tolist()


def test_one_adapter_serves_several_rows(tiny_llama):
    model, tok = tiny_llama
    spec = LoRASpec(["v_proj"], rank=2).discover(model)
    lora = random_lora(spec, 2)
    ids, mask = _padded_batch(tok, ["a b", "c d e", "f", "g h"])
    with torch.no_grad(), apply_lora(model, lora):
        grouped = model(input_ids=ids, attention_mask=mask).logits
    index = torch.tensor([0, 0, 1, 1])
    with torch.no_grad(), apply_lora(model, lora, adapter_index=index):
        indexed = model(input_ids=ids, attention_mask=mask).logits
    with torch.no_grad(), apply_lora(model, lora.select([0, 0, 1, 1])):
        expanded = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(grouped, expanded, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(indexed, expanded, atol=1e-6, rtol=1e-6)


def test_gradients_reach_factors(tiny_llama):
    model, tok = tiny_llama
    spec = LoRASpec(["q_proj", "down_proj"], rank=2).discover(model)
    lora = random_lora(spec, 2)
    for t in [*lora.A.values(), *lora.B.values()]:
        t.requires_grad_(True)
    ids, mask = _padded_batch(tok, ["a b", "c d e"])
    with apply_lora(model, lora):
        model(input_ids=ids, attention_mask=mask).logits.sum().backward()
    for t in [*lora.A.values(), *lora.B.values()]:
        assert t.grad is not None and t.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_factor_gradients_equal_dense_reference(tiny_llama):
    """Gradients through apply_lora (one unbind per factor), select and merge_groups (index_select) equal those
    of the same deltas added to the weights densely, sample by sample."""
    model, tok = tiny_llama
    spec = LoRASpec(["q_proj", "down_proj"], rank=2, scale=1.5).discover(model)
    chunks = random_lora(spec, 3, std=0.3, seed=5)
    leaves = [*chunks.A.values(), *chunks.B.values()]
    for t in leaves:
        t.requires_grad_(True)
    # document 0 = chunks 0 + 1, document 1 = chunk 2; rows swapped
    lora = chunks.merge_groups([2, 1]).select([1, 0])
    ids, mask = _padded_batch(tok, ["a b c", "d e"])
    with apply_lora(model, lora):
        model(input_ids=ids, attention_mask=mask).logits.square().mean(-1).sum().backward()
    got = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    modules = dict(model.named_modules())
    total = 0.0
    for row, chunk_rows in [(0, [2]), (1, [0, 1])]:  # row 0 holds document 1, row 1 document 0
        params = {}
        for m in spec.target_modules:
            for layer in range(spec.n_layers):
                name = spec.module_name(m, layer)
                delta = sum(chunks.B[m][c, layer] @ chunks.A[m][c, layer] for c in chunk_rows) * spec.scale
                params[f"{name}.weight"] = modules[name].weight + delta
        out = torch.func.functional_call(
            model, params, (), {"input_ids": ids[row : row + 1], "attention_mask": mask[row : row + 1]}
        )
        total = total + out.logits.square().mean(-1).sum()
    total.backward()
    for g, t in zip(got, leaves):
        torch.testing.assert_close(g, t.grad, atol=1e-5, rtol=1e-4)


def test_compress_exact_and_tail(tiny_llama):
    model, _ = tiny_llama
    spec = LoRASpec(["down_proj"], rank=3, scale=2.0).discover(model)
    parts = [random_lora(spec, 2, seed=s) for s in range(3)]
    full = parts[0].concat_rank(*parts[1:])  # true rank 9
    assert full.rank == 9
    exact = full.compress(9)
    torch.testing.assert_close(exact.delta("down_proj"), full.delta("down_proj"), atol=1e-4, rtol=1e-4)
    k = 4
    approx = full.compress(k)
    assert approx.rank == k
    d = full.delta("down_proj")
    s = torch.linalg.svdvals(d)
    err = torch.linalg.matrix_norm(d - approx.delta("down_proj"))  # Frobenius
    torch.testing.assert_close(err, s[..., k:].pow(2).sum(-1).sqrt(), atol=1e-4, rtol=1e-4)


def test_concat_rank_sums_deltas_and_merge_groups(tiny_llama):
    model, _ = tiny_llama
    spec = LoRASpec(["q_proj", "v_proj"], rank=2, scale=3.0).discover(model)
    a, b = random_lora(spec, 2, seed=1), random_lora(spec, 2, seed=2)
    b.scale = 0.5
    cat = a.concat_rank(b)
    for m in spec.target_modules:
        torch.testing.assert_close(cat.delta(m), a.delta(m) + b.delta(m), atol=1e-5, rtol=1e-5)
    chunks = random_lora(spec, 5, seed=4)  # docs with 2 and 3 chunks
    merged = chunks.merge_groups([2, 3])
    assert merged.batch_size == 2 and merged.rank == 6
    for m in spec.target_modules:
        d = chunks.delta(m)
        torch.testing.assert_close(merged.delta(m)[0], d[0] + d[1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(merged.delta(m)[1], d[2] + d[3] + d[4], atol=1e-5, rtol=1e-5)


def test_validation_and_utilities(tiny_llama):
    model, _ = tiny_llama
    spec = LoRASpec(["q_proj"], rank=2).discover(model)
    lora = random_lora(spec, 3)
    assert lora.select(1).batch_size == 1
    assert lora.num_bytes() == 3 * 2 * (2 * 64 + 64 * 2) * 4
    assert lora.to(torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="B has shape"):
        LoRABatch(spec, dict(lora.A), {"q_proj": torch.zeros(3, 2, 64, 5)})
    with pytest.raises(ValueError, match="not resolved"):
        LoRABatch.zeros(LoRASpec(["q_proj"]), 1)
    z = LoRABatch.zeros(spec, 2)
    assert z.delta("q_proj").abs().sum() == 0


def test_select_index_kinds(tiny_llama):
    model, _ = tiny_llama
    spec = LoRASpec(["q_proj"], rank=2).discover(model)
    lora = random_lora(spec, 3)
    a = lora.A["q_proj"]
    torch.testing.assert_close(lora.select([-1, 0]).A["q_proj"], a[[2, 0]])
    torch.testing.assert_close(lora.select(torch.tensor([1, -3])).A["q_proj"], a[[1, 0]])
    torch.testing.assert_close(lora.select(torch.tensor([False, True, True])).A["q_proj"], a[1:])
    torch.testing.assert_close(lora.select(torch.tensor(2)).A["q_proj"], a[2:])  # 0-d keeps the batch axis
    torch.testing.assert_close(lora.select(slice(1, None)).A["q_proj"], a[1:])
    assert lora.select(-1).batch_size == 1
    with pytest.raises(IndexError, match="out of range for 3 adapters"):
        lora.select([3])
    with pytest.raises(IndexError, match="out of range"):
        lora.select([-4])
    with pytest.raises(ValueError, match="boolean select mask needs shape"):
        lora.select(torch.tensor([True, False]))
