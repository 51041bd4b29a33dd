"""What keeps Doc-to-LoRA sane past the native window: reference-unit L1 per document, the chunk gate, the
reference's training side (K distribution, weight-decay groups, head init), packed internalization, the
chunk-health probe and the varied-prose haystack (tiny models)."""

from __future__ import annotations

import random

import pytest
import torch
from helpers.factories import grouped

from lora_hyper.data_modules.doc_batch import chunk_count_weights, sample_n_chunks
from lora_hyper.data_modules.niah_protocol import FILLER, NEEDLE_TEMPLATE, filler_text, niah_examples
from lora_hyper.encoders.chunking import encode_documents
from lora_hyper.hypernets.d2l import GATE_BIAS_INIT, DocToLoRAHypernetConfig
from lora_hyper.losses import factor_l1
from lora_hyper.modules.d2l import DocToLoRAModule

SMALL = dict(
    lora={"rank": 4},
    perceiver={"latent_dim": 32, "n_latents": 8, "n_blocks": 1, "n_heads": 4},
    runtime={"attn_implementation": "sdpa"},
)


def make_module(model_dir, **kw) -> DocToLoRAModule:
    torch.manual_seed(0)
    module = DocToLoRAModule(base_model=str(model_dir), **grouped(SMALL, **kw))
    module.configure_model()
    with torch.no_grad():  # non-zero deltas and bias block
        module.hypernet.scale_B.normal_(0, 0.1)
        for b in module.hypernet.bias_B:
            b.normal_(0, 0.01)
    return module


def fit_on_niah(module: DocToLoRAModule, model_dir, root, max_steps: int) -> None:
    """A few CPU training steps of ``module`` on tiny NIAH batches (2 documents of 16-48 tokens)."""
    import lightning as L

    from lora_hyper.data_modules.niah import NIAHDataModule

    data = NIAHDataModule(str(model_dir), train_lengths=(16, 48), val_bins=[], batch_size=2, seed=3)
    L.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=root,
    ).fit(module, datamodule=data)


@pytest.fixture(scope="module")
def module(tiny_llama_dir):
    return make_module(tiny_llama_dir)


def chunk_loras(module, docs, n_chunks):
    batch = encode_documents(module.tokenizer, docs, n_chunks=n_chunks, system=module.system_prompt)
    with torch.no_grad():
        feats, mask = module.context_encoder(batch["ctx_input_ids"], batch["ctx_attention_mask"])
        return module.hypernet(feats, mask, join=False), batch["ctx_doc_index"]


def reference_l1(combined) -> torch.Tensor:
    """mean|A| + mean|B| per module of ONE document's combined adapter, averaged over modules."""
    terms = [combined.A[m].abs().mean() + combined.B[m].abs().mean() for m in combined.spec.target_modules]
    return torch.stack(terms).mean()


def test_l1_is_the_reference_sum_of_means_per_document_whatever_the_padding(module):
    h = module.hypernet
    doc_a, doc_b = "The special magic number is 1234. " * 3, "The grass is green. The sky is blue. " * 6
    chunks, _ = chunk_loras(module, [doc_a, doc_b], [1, 4])
    bias = h.bias_lora(1)
    batched = factor_l1(chunks, bias, [1, 4])
    alone = [
        reference_l1(chunks.select(slice(0, 1)).concat_rank(bias)),
        reference_l1(chunks.select(slice(1, 5)).merge_groups([4]).concat_rank(bias)),
    ]
    torch.testing.assert_close(batched, torch.stack(alone).mean())
    # the padded joined adapter (doc A zero-padded to 4 chunks) would under-charge doc A: not what we compute
    padded = h.join(chunks, torch.tensor([0, 1, 1, 1, 1]))
    padded_a = reference_l1(padded.select(0))
    assert padded_a < alone[0] - 1e-6


def test_l1_is_a_sum_of_the_a_and_b_means(module):
    chunks, _ = chunk_loras(module, ["The sky is blue."], [1])
    m = chunks.spec.target_modules[0]
    expected = chunks.A[m].abs().mean() + chunks.B[m].abs().mean()
    torch.testing.assert_close(factor_l1(chunks), expected)
    assert factor_l1(chunks) > chunks.A[m].abs().mean()  # a sum, not the average of the two


def test_l1_gradient_reaches_heads_and_bias_block(tiny_llama_dir):
    module = make_module(tiny_llama_dir, loss={"l1_weight": 1.5})
    batch = encode_documents(module.tokenizer, ["The grass is green. " * 8], n_chunks=3, system="")
    feats, mask = module.context_encoder(batch["ctx_input_ids"], batch["ctx_attention_mask"])
    out = module.hypernet(feats, mask, join=False)
    factor_l1(out, module.hypernet.bias_lora(1), [3]).backward()
    assert module.hypernet.heads[0].grad is not None and module.hypernet.heads[0].grad.abs().sum() > 0
    assert module.hypernet.bias_A[0].grad.abs().sum() > 0


def test_chunk_gate_starts_open_and_keeps_the_delta_zero_at_init(tiny_llama_dir):
    torch.manual_seed(0)
    module = DocToLoRAModule(base_model=str(tiny_llama_dir), **grouped(SMALL, perceiver={"chunk_gate": True}))
    module.configure_model()
    lora = module.internalize(["The grass is green. " * 10], chunk_length=8)
    assert all(bool((lora.delta(m) == 0).all()) for m in lora.spec.target_modules)
    gate = module.hypernet.last_gate
    assert gate is not None and gate.numel() >= 2
    torch.testing.assert_close(
        gate, torch.full_like(gate, torch.sigmoid(torch.tensor(GATE_BIAS_INIT)).item())
    )
    # the gate scales A: with it shut, the chunks contribute nothing and only the bias block remains
    with torch.no_grad():
        module.hypernet.scale_B.normal_(0, 0.1)
        module.hypernet.gate.bias.fill_(-60.0)
    shut = module.internalize(["The grass is green. " * 10], chunk_length=8, include_bias=False)
    assert all(float(shut.delta(m).abs().max()) < 1e-12 for m in shut.spec.target_modules)


def test_gate_start_step_holds_the_gate_open_then_lets_it_learn(tiny_llama_dir, tmp_path):
    import lightning as L

    def fit(gate_start_step: int, max_steps: int) -> tuple[DocToLoRAModule, dict, torch.Tensor]:
        L.seed_everything(0)
        m = make_module(
            tiny_llama_dir,
            perceiver={"chunk_gate": True, "gate_lr_multiplier": 10, "gate_start_step": gate_start_step},
            optim={"lr": 1e-2, "warmup": 0},
        )
        gate0 = {k: v.clone() for k, v in m.hypernet.gate.state_dict().items()}
        heads0 = m.hypernet.heads[0].detach().clone()
        fit_on_niah(m, tiny_llama_dir, tmp_path, max_steps)
        return m, gate0, heads0

    held, gate0, heads0 = fit(gate_start_step=3, max_steps=3)
    assert all(torch.equal(v, gate0[k]) for k, v in held.hypernet.gate.state_dict().items())
    assert not torch.equal(held.hypernet.heads[0], heads0)  # the rest learned
    learned, gate0, _ = fit(gate_start_step=2, max_steps=3)  # step 2 is the first the gate learns in
    assert not torch.equal(learned.hypernet.gate.bias, gate0["bias"])


def test_weight_decay_exempts_scalers_bias_norms_latents(tiny_llama_dir):
    module = make_module(tiny_llama_dir, perceiver={"chunk_gate": True})
    names = module.hypernet.no_weight_decay()
    for expected in (
        "scale_A",
        "scale_B",
        "bias_A.0",
        "bias_B.0",
        "queries",
        "perceiver.latents",
        "gate.weight",
    ):
        assert expected in names
    assert "heads.0" not in names and "mlp_in" not in names
    decay, no_decay = module.configure_optimizers()["optimizer"].param_groups
    by_id = {id(p): n for n, p in module.hypernet.named_parameters()}
    assert {by_id[id(p)] for p in no_decay["params"]} == names
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == module.optim.weight_decay


def test_reference_head_init_is_smaller(tiny_llama_dir):
    small = make_module(tiny_llama_dir)
    large = make_module(tiny_llama_dir, perceiver={"head_init": "fan_in"})
    assert small.hypernet.heads[0].std() < large.hypernet.heads[0].std() / 2
    spec = small.hypernet.spec
    d_in, d_out = spec.shapes[spec.target_modules[0]]
    expected = 0.5 / (SMALL["perceiver"]["latent_dim"] + (d_in + d_out) * SMALL["lora"]["rank"]) ** 0.5
    assert abs(float(small.hypernet.heads[0].detach().std()) - expected) / expected < 0.1
    with pytest.raises(ValueError, match="head_init"):
        DocToLoRAHypernetConfig(input_dim=8, head_init="xavier")


def test_reference_chunk_count_distribution_and_bounds():
    w = chunk_count_weights(8)
    assert w[:2] == [0.5, 0.125] and all(abs(x - 0.0625) < 1e-12 for x in w[2:])
    rng = random.Random(0)
    ks = [sample_n_chunks(rng, 8, 256, 25, "reference") for _ in range(4000)]
    assert abs(ks.count(1) / 4000 - 0.5) < 0.03 and abs(ks.count(2) / 4000 - 0.125) < 0.02
    assert max(ks) == 8
    # K <= ceil(len / 25), K >= ceil(len / max_chunk_tokens)
    assert max(sample_n_chunks(rng, 8, 60, 25, "reference") for _ in range(200)) == 3
    assert min(sample_n_chunks(rng, 8, 1100, 25, "reference", max_chunk_tokens=512) for _ in range(200)) == 3
    with pytest.raises(ValueError, match="distribution"):
        chunk_count_weights(4, "zipf")


def test_packed_internalize_equals_one_chunk_at_a_time(module):
    docs = ["The special magic number is 4321. " + "The sky is blue. " * 9, "Short one.", "z " * 40]
    packed = module.internalize(docs, chunk_length=12)
    from lora_hyper.internalize import internalize_documents

    single = internalize_documents(
        module.context_encoder, module.hypernet, module.tokenizer, docs, 12, chunk_batch_size=1, system=""
    )
    for m in packed.spec.target_modules:
        torch.testing.assert_close(packed.delta(m), single.delta(m), atol=1e-5, rtol=1e-4)


def test_packed_training_chunks_equal_one_padded_pass(tiny_llama_dir):
    """Training encodes chunks in length-sorted slices: same adapters, gates (in batch order) and gradients as
    one pass padded to the longest chunk."""
    docs = [
        "The special magic number is 4321. " + "The sky is blue. " * 9,
        "Short one.",
        "z " * 40,
        "ab " * 7,
    ]
    batch = encode_documents(make_module(tiny_llama_dir).tokenizer, docs, n_chunks=[1, 1, 3, 2], system="")
    lengths = batch["ctx_attention_mask"].sum(1)
    assert len(set(lengths.tolist())) > 2  # chunks of several lengths: more than one slice
    results = []
    for pack in (True, False):
        module = make_module(tiny_llama_dir, perceiver={"chunk_gate": True}, encoder={"pack_chunks": pack})
        chunks = module.chunk_adapters(batch)
        loss = sum(chunks.delta(m).square().sum() for m in chunks.spec.target_modules)
        loss.backward()
        grads = [p.grad.clone() for p in module.hypernet.parameters() if p.grad is not None]
        results.append((chunks.detach(), module.hypernet.last_gate.clone(), grads))
    (packed, gate_p, grads_p), (padded, gate_q, grads_q) = results
    assert gate_p.shape == (len(lengths),)
    torch.testing.assert_close(gate_p, gate_q, atol=1e-5, rtol=1e-4)
    for m in packed.spec.target_modules:
        torch.testing.assert_close(packed.delta(m), padded.delta(m), atol=1e-5, rtol=1e-4)
    assert len(grads_p) == len(grads_q) > 0
    for a, b in zip(grads_p, grads_q):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-3)


def test_include_bias_false_leaves_the_bias_block_out(module):
    doc = "The sky is blue. " * 5
    full = module.internalize([doc], chunk_length=8)
    own = module.internalize([doc], chunk_length=8, include_bias=False)
    bias = module.hypernet.bias_lora(1)
    assert own.rank == full.rank - bias.rank
    for m in full.spec.target_modules:
        torch.testing.assert_close(own.delta(m) + bias.delta(m), full.delta(m), atol=1e-6, rtol=1e-5)


def test_chunk_health_probe_and_callback(module, tmp_path):
    from lora_hyper.callbacks.chunk_health import ChunkHealthProbe, chunk_health, write_health_report

    res = chunk_health(module, n_filler=3, chunk_length=32)
    assert res["ratio"] > 0 and res["filler_norm"] > 0 and res["needle_norm"] > 0
    with torch.no_grad():
        module.hypernet.scale_B.zero_()
    assert chunk_health(module, n_filler=3, chunk_length=32)["filler_norm"] == 0.0
    csv_path, png_path = write_health_report([{"step": 1, **res}, {"step": 2, **res}], tmp_path)
    assert csv_path.read_text().splitlines()[0] == "step,ratio,filler_norm,needle_norm"
    assert png_path.stat().st_size > 1000
    with pytest.raises(ValueError, match="every_n_steps"):
        ChunkHealthProbe(every_n_steps=0)


def test_filler_text_and_prose_haystack(tiny_llama):
    _, tok = tiny_llama
    text = filler_text(tok, 200)
    assert abs(len(tok(text, add_special_tokens=False)["input_ids"]) - 200) <= 3 and "magic" not in text
    prose = niah_examples(tok, 300, 4, seed=0, split="x", haystack="prose")
    repeat = niah_examples(tok, 300, 4, seed=0, split="x")
    for p, r in zip(prose, repeat):
        assert NEEDLE_TEMPLATE.format(number=p.answer) in p.context
        assert abs(p.n_tokens - 300) <= 8
        assert FILLER.split(".")[0] not in p.context and FILLER.split(".")[0] in r.context
    assert prose[0].context != prose[1].context
    with pytest.raises(ValueError, match="haystack"):
        niah_examples(tok, 100, 1, seed=0, haystack="lorem")


def test_length_sorted_slices_bound_padding_and_size():
    from lora_hyper.internalize import length_sorted_slices

    lengths = [1040, 570, 1040, 565, 1039, 100, 1041]
    slices = length_sorted_slices(lengths, batch_size=2)
    assert sorted(i for s in slices for i in s) == list(range(len(lengths)))
    for s in slices:
        assert len(s) <= 2 and max(lengths[i] for i in s) <= 1.1 * min(lengths[i] for i in s)
    assert [len(s) for s in length_sorted_slices(lengths, 16)] == [1, 2, 4]
    capped = length_sorted_slices(lengths, 16, max_tokens=2100)  # at most 2 chunks of ~1040 per forward
    assert [len(s) for s in capped] == [1, 2, 2, 2] and sorted(i for s in capped for i in s) == list(range(7))
    assert [len(s) for s in length_sorted_slices([5000, 6000], 16, max_tokens=100)] == [
        1,
        1,
    ]  # one always fits


def test_l1_schedule_starts_late_and_ramps(tiny_llama_dir):
    module = DocToLoRAModule(
        base_model=str(tiny_llama_dir),
        **grouped(SMALL, loss={"l1_weight": 1.5, "l1_start_step": 10, "l1_ramp_steps": 4}),
    )

    class FakeTrainer:
        global_step = 0

    trainer = FakeTrainer()
    module._trainer = trainer  # what Lightning sets while fitting
    weights = []
    for step in (0, 9, 10, 12, 14, 100):
        trainer.global_step = step
        weights.append(module.current_l1_weight())
    assert weights == [0.0, 0.0, 0.0, 0.75, 1.5, 1.5]
    with pytest.raises(ValueError, match="l1_start_step"):
        DocToLoRAModule(base_model=str(tiny_llama_dir), **grouped(SMALL, loss={"l1_start_step": -1}))


def test_reading_trigger_starts_l1_and_gate_from_the_step_the_objective_falls(tiny_llama_dir):
    module = make_module(
        tiny_llama_dir,
        loss={"l1_weight": 1.0, "l1_start_step": 2, "l1_ramp_steps": 2, "read_loss": 1.0, "read_window": 3},
        perceiver={"chunk_gate": True, "gate_start_step": 1},
    )

    class FakeTrainer:
        global_step = 0

    trainer = FakeTrainer()
    module._trainer = trainer
    fired = []
    for step, objective in enumerate([2.0, 0.5, 0.9, 1.2, 0.8, 0.7, 3.0, 3.0]):
        trainer.global_step = step
        module.on_train_batch_start({}, step)
        fired.append((module.read_step, module.hypernet.gate_frozen, module.current_l1_weight()))
        module.update_reading(objective)
    # windows: (2, .5, .9) 1.13, (.5, .9, 1.2) 0.87 < 1 at step 3: fires, and later objectives change nothing
    assert [f[0] for f in fired] == [None, None, None, None, 3, 3, 3, 3]
    assert [f[1] for f in fired] == [True, True, True, True, False, False, False, False]  # gate from 3 + 1
    assert [f[2] for f in fired] == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0]  # L1 from 3 + 2, ramp 2
    checkpoint: dict = {"state_dict": {}}
    module.on_save_checkpoint(checkpoint)
    resumed = DocToLoRAModule(base_model=str(tiny_llama_dir), **grouped(SMALL, loss={"read_loss": 1.0}))
    resumed.on_load_checkpoint(checkpoint)
    assert resumed.read_step == 3
    with pytest.raises(ValueError, match="read_window"):
        DocToLoRAModule(base_model=str(tiny_llama_dir), **grouped(SMALL, loss={"read_window": 0}))


def test_reading_trigger_in_a_fit_holds_the_gate_until_the_objective_falls(tiny_llama_dir, tmp_path):
    import lightning as L

    def fit(read_loss: float) -> tuple[DocToLoRAModule, torch.Tensor]:
        L.seed_everything(0)
        m = make_module(
            tiny_llama_dir,
            perceiver={"chunk_gate": True, "gate_lr_multiplier": 10},
            loss={"read_loss": read_loss, "read_window": 2},
            optim={"lr": 1e-2, "warmup": 0},
        )
        bias0 = m.hypernet.gate.bias.detach().clone()
        fit_on_niah(m, tiny_llama_dir, tmp_path, 4)
        return m, bias0

    never, bias0 = fit(read_loss=1e-6)  # a random tiny model never gets there: the gate stays as it started
    assert never.read_step is None and torch.equal(never.hypernet.gate.bias, bias0)
    # fires once two objectives are in (step 1); the gate learns from step 2
    reads, bias0 = fit(read_loss=1e6)
    assert reads.read_step == 1 and not torch.equal(reads.hypernet.gate.bias, bias0)


def test_fixed_chunk_length_splits_evenly_without_slivers():
    from lora_hyper.encoders.chunking import split_tokens

    assert sorted(len(c) for c in split_tokens(list(range(1025)), chunk_length=1024)) == [512, 513]
    assert [len(c) for c in split_tokens(list(range(4096)), chunk_length=1024)] == [1024] * 4
    assert [len(c) for c in split_tokens(list(range(10)), chunk_length=1024)] == [10]
    assert split_tokens([], chunk_length=8) == [[]]
