"""Doc-to-LoRA model side: context encoder, Perceiver hypernetwork, module, inference object (tiny models)."""

from __future__ import annotations

import pytest
import torch
from helpers.factories import grouped

from lora_hyper.api.doc_to_lora import DocToLoRA
from lora_hyper.data_modules.collate import collate_lm, lm_example
from lora_hyper.encoders.chunking import encode_documents
from lora_hyper.encoders.context import ContextEncoder
from lora_hyper.hypernets.perceiver import Perceiver
from lora_hyper.lora import apply_lora
from lora_hyper.modules.d2l import DocToLoRAModule

SMALL = dict(
    lora={"rank": 4},
    perceiver={"latent_dim": 32, "n_latents": 8, "n_blocks": 1, "n_heads": 4},
    runtime={"attn_implementation": "sdpa"},
)
QUESTION = "What is the special magic number? Reply with only the number."


def d2l_batch(tok, docs, qas, n_chunks=None, chunk_length=None, with_teacher=False):
    """A Doc-to-LoRA batch (collate.py contract) built by hand from documents and (question, answer) lists."""
    batch = encode_documents(tok, docs, chunk_length=chunk_length, n_chunks=n_chunks)
    rows, teacher, qa_doc = [], [], []
    for d, pairs in enumerate(qas):
        for q, a in pairs:
            rows.append(lm_example(tok, q, a))
            teacher.append(lm_example(tok, f"{docs[d]}\n\n{q}", a))
            qa_doc.append(d)
    batch.update(collate_lm(rows, tok.pad_token_id))
    batch["qa_doc_index"] = torch.tensor(qa_doc)
    if with_teacher:
        t = collate_lm(teacher, tok.pad_token_id)
        batch.update({f"teacher_{k}": v for k, v in t.items()})
    return batch


def make_module(model_dir, **kw) -> DocToLoRAModule:
    torch.manual_seed(0)
    module = DocToLoRAModule(base_model=str(model_dir), **grouped(SMALL, **kw))
    module.configure_model()
    return module


def perturb(module: DocToLoRAModule, seed: int = 1) -> None:
    """Move the zero-initialised B scalers / bias so generated deltas are non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        h = module.hypernet
        h.scale_B.copy_(torch.randn(h.scale_B.shape, generator=g) * 0.1)
        for b in h.bias_B:
            b.copy_(torch.randn(b.shape, generator=g) * 0.01)


def save_sharp_llama(directory):
    """A tiny model whose LM head is scaled up so logits can become peaked (random tiny heads cannot)."""
    from lora_hyper.testing import make_tiny_llama

    model, tok = make_tiny_llama()
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    model.save_pretrained(str(directory))
    tok.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def module(tiny_llama_dir):
    return make_module(tiny_llama_dir)


def test_zero_delta_at_init_outputs_equal_base(module):
    lora = module.internalize(["The grass is green. The sky is blue.", "The special magic number is 42."])
    assert lora.batch_size == 2 and lora.rank == 2 * SMALL["lora"]["rank"]  # one chunk + the bias block
    assert all(bool((lora.delta(m) == 0).all()) for m in lora.spec.target_modules)
    batch = d2l_batch(module.tokenizer, ["a b c", "d e f"], [[(QUESTION, "42")], [(QUESTION, "7")]])
    with torch.no_grad():
        base = module.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        with apply_lora(module.base_model, lora):
            adapted = module.base_model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
    assert torch.equal(base, adapted)


def test_per_document_independence_inside_a_batch(tiny_llama_dir):
    module = make_module(tiny_llama_dir)
    perturb(module)
    tok = module.tokenizer
    d0, d1, d2 = "The special magic number is 1234.", "The sky is blue. " * 6, "z y x"
    with torch.no_grad():
        a = module.adapters(d2l_batch(tok, [d0, d1], [[(QUESTION, "1")], [(QUESTION, "2")]], n_chunks=[1, 2]))
        b = module.adapters(d2l_batch(tok, [d0, d2], [[(QUESTION, "1")], [(QUESTION, "2")]], n_chunks=[1, 1]))
    m = module.lora.targets[0]
    assert a.delta(m)[0].abs().max() > 0
    torch.testing.assert_close(a.delta(m)[0], b.delta(m)[0], atol=1e-5, rtol=1e-4)
    assert (a.delta(m)[1] - b.delta(m)[1]).abs().max() > 1e-4


def test_chunked_adapter_is_sum_of_chunk_deltas_and_rank_budget(tiny_llama_dir):
    module = make_module(tiny_llama_dir)
    perturb(module)
    tok, h, m = module.tokenizer, module.hypernet, module.lora.targets[0]
    doc = "The grass is green. The sky is blue. The sun is yellow. The special magic number is 2024."
    lora = module.internalize([doc], chunk_length=6)
    chunks = encode_documents(tok, [doc], chunk_length=6, system=module.system_prompt)
    k = chunks["ctx_input_ids"].shape[0]
    assert k >= 3 and lora.rank == (k + 1) * SMALL["lora"]["rank"]
    expected = h.bias_lora(1).delta(m)
    for i in range(k):  # each chunk encoded on its own, unpadded
        ids = chunks["ctx_input_ids"][i : i + 1][:, chunks["ctx_attention_mask"][i].bool()]
        with torch.no_grad():
            feats, mask = module.context_encoder(ids, torch.ones_like(ids))
            expected = expected + h(feats, mask, join=False).delta(m)
    torch.testing.assert_close(lora.delta(m), expected, atol=1e-5, rtol=1e-4)
    small = module.internalize([doc], chunk_length=6, rank_budget=3)
    assert small.rank == 3 and small.num_bytes() < lora.num_bytes()
    exact = module.internalize([doc], chunk_length=6, rank_budget=lora.rank + 2)
    assert exact.rank == lora.rank  # budget above the rank: nothing to compress
    torch.testing.assert_close(exact.delta(m), lora.delta(m))


def test_context_encoder_modes_match_hidden_states(tiny_llama):
    model, tok = tiny_llama
    batch = encode_documents(tok, ["The grass is green.", "Sort the list. Count the letters."])
    ids, mask = batch["ctx_input_ids"], batch["ctx_attention_mask"]
    with torch.no_grad():
        hs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    feats, out_mask = ContextEncoder(model, "per_layer")(ids, mask)
    assert feats.shape == (2, 2, ids.shape[1], 64) and torch.equal(out_mask, mask)
    torch.testing.assert_close(feats, torch.stack(hs[:2], dim=1))
    early, _ = ContextEncoder(model, "early_exit", n_layers=1)(ids, mask)
    torch.testing.assert_close(early, hs[1])
    with pytest.raises(ValueError, match="early_exit n_layers"):
        ContextEncoder(model, "early_exit", n_layers=5)


def test_early_exit_stops_the_forward(tiny_llama):
    model, tok = tiny_llama
    ran = []
    handle = model.model.layers[1].register_forward_hook(lambda *a: ran.append(1))
    try:
        ids = encode_documents(tok, ["a b"])["ctx_input_ids"]
        ContextEncoder(model, "early_exit", n_layers=1)(ids, torch.ones_like(ids))
        ContextEncoder(model, "per_layer")(ids, torch.ones_like(ids))
    finally:
        handle.remove()
    assert ran == []  # neither mode runs the last layer


def test_perceiver_ignores_padding():
    torch.manual_seed(0)
    p = Perceiver(input_dim=16, latent_dim=32, n_latents=4, n_blocks=2, n_heads=4)
    x = torch.randn(1, 5, 16)
    padded = torch.cat([torch.randn(1, 3, 16) * 100, x], dim=1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    torch.testing.assert_close(p(x), p(padded, mask), atol=1e-5, rtol=1e-4)
    assert p(padded, mask).shape == (1, 4, 32)


def test_separate_encoder_of_other_width_and_early_exit(tiny_llama_dir, tmp_path):
    from lora_hyper.testing import save_tiny_llama

    enc_dir = save_tiny_llama(tmp_path / "wide", hidden_size=96, num_layers=4, intermediate_size=64)
    module = make_module(tiny_llama_dir, encoder={"model": str(enc_dir), "mode": "early_exit"})
    assert module.context_encoder.hidden_size == 96 and module.context_encoder.n_layers == 1
    perturb(module)
    lora = module.internalize(["The sky is blue.", "The grass is green."])
    assert lora.batch_size == 2 and lora.spec.shapes["down_proj"] == (128, 64)
    per_layer = make_module(tiny_llama_dir, encoder={"model": str(enc_dir)})
    assert per_layer.context_encoder.layer_ids == [0, 3]  # 4 encoder layers spread over 2 base layers
    assert per_layer.internalize("The sky is blue.").batch_size == 1


def _train(module, batch, steps: int, lr: float = 3e-3) -> list[float]:
    opt = torch.optim.AdamW(module.hypernet.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = module.losses(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_training_on_fixed_needles_halves_the_loss(tmp_path):
    module = make_module(save_sharp_llama(tmp_path), loss={"l1_weight": 0.01})
    numbers = ["1234", "42", "2024", "100"]
    docs = [f"The grass is green. The special magic number is {n}. The sky is blue." for n in numbers]
    batch = d2l_batch(module.tokenizer, docs, [[(QUESTION, n)] for n in numbers], n_chunks=[1, 2, 1, 2])
    losses = _train(module, batch, 20)
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(p.grad is None for p in module.base_model.parameters())


def test_distill_objective_and_questions_per_document(tiny_llama_dir):
    module = make_module(tiny_llama_dir, loss={"objective": "distill", "distill_top_k": 4})
    docs = ["The special magic number is 42.", "The special magic number is 7."]
    qas = [[(QUESTION, "42"), ("Here we go.", "42")], [(QUESTION, "7")]]  # unequal questions per document
    batch = d2l_batch(module.tokenizer, docs, qas, with_teacher=True)
    losses = _train(module, batch, 3)
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    no_teacher = {k: v for k, v in batch.items() if not k.startswith("teacher_")}
    with pytest.raises(ValueError, match="with_teacher"):
        module.losses(no_teacher)


@pytest.mark.parametrize("objective", ["ce", "distill"])
def test_answer_window_loss_equals_the_full_logits_loss(tiny_llama_dir, objective):
    """The LM head runs only over the trailing positions that predict answer tokens: same loss as all logits."""
    from lora_hyper.losses import answer_window, per_sample_ce, topk_distill_per_sample

    module = make_module(tiny_llama_dir, loss={"objective": objective, "distill_top_k": 4})
    perturb(module)
    docs = ["The special magic number is 42.", "The special magic number is 7."]
    qas = [
        [(QUESTION, "4242"), ("Here we go, a much longer question than the other one.", "42")],
        [(QUESTION, "7")],
    ]
    batch = d2l_batch(module.tokenizer, docs, qas, with_teacher=True)
    keep = answer_window(batch["labels"])
    assert 2 <= keep < batch["labels"].shape[1]  # the prompts are skipped
    windowed = module.losses(batch)["qa_loss"]
    lora = module.adapters(batch)
    full = module.lm_logits(lora, batch, adapter_index=batch["qa_doc_index"])
    assert full.shape[1] == batch["labels"].shape[1]
    if objective == "ce":
        per_row = per_sample_ce(full, batch["labels"])
    else:
        with torch.no_grad():
            teacher = module.base_model(
                input_ids=batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"]
            ).logits
        per_row = topk_distill_per_sample(full, batch["labels"], teacher, batch["teacher_labels"], 4)
    from lora_hyper.losses import mean_by_group

    torch.testing.assert_close(windowed, mean_by_group(per_row, batch["qa_doc_index"]), atol=1e-5, rtol=1e-5)
    labels = torch.tensor([[-100, -100, 5, 6], [-100, -100, -100, 7], [-100, -100, -100, -100]])
    assert answer_window(labels) == 3  # position 1's logits predict the first answer token (position 2)
    assert answer_window(torch.full((2, 5), -100)) == 5 and answer_window(torch.tensor([[1, 2]])) == 2


def test_generate_groups_and_errors(module):
    lora = module.internalize(["The sky is blue.", "The grass is green."])
    out = module.generate(
        [QUESTION, QUESTION, "Here we go.", "Here we go."], lora, max_new_tokens=3, share_adapters=True
    )
    assert len(out) == 4 and all(isinstance(s, str) for s in out)
    assert module.generate([QUESTION], None, max_new_tokens=3) == module.generate(
        [QUESTION], lora.select(0), max_new_tokens=3
    )
    with pytest.raises(ValueError, match="3 questions for 2 adapters"):
        module.generate([QUESTION] * 3, lora)
    with pytest.raises(ValueError, match="empty"):
        module.internalize(["ok", "   "])


def test_save_load_round_trip_and_wrong_base(tiny_llama_dir, tmp_path):
    from lora_hyper.testing import save_tiny_llama

    module = make_module(tiny_llama_dir, encoder={"chunk_length": 8}, lora={"rank_budget": 6})
    perturb(module)
    d2l = DocToLoRA.from_module(module)
    docs = ["The grass is green. The sky is blue. The sun is yellow.", "The special magic number is 42."]
    before = d2l.internalize(docs)
    path = d2l.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["hypernet.safetensors", "lora_hyper.json"]
    loaded = DocToLoRA.from_pretrained(path)
    assert (
        loaded.chunk_length == 8 and loaded.rank_budget == 6 and loaded.spec.to_dict() == d2l.spec.to_dict()
    )
    after = loaded.internalize(docs)
    assert after.rank == 6
    for m in before.spec.target_modules:
        assert torch.equal(before.A[m], after.A[m]) and torch.equal(before.B[m], after.B[m])
    other = save_tiny_llama(tmp_path / "other", hidden_size=32, intermediate_size=48)
    with pytest.raises(ValueError, match="built for"):
        DocToLoRA.from_pretrained(path, base_model=str(other))
    with pytest.raises(FileNotFoundError, match="No model directory or shipped model named"):
        DocToLoRA.from_pretrained(tmp_path / "missing")
