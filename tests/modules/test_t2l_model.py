"""Text-to-LoRA model side: hypernet init/shapes/independence, SFT and reconstruction training, save/load, finetune."""

from __future__ import annotations

import json
import random

import pytest
import torch
from helpers.factories import grouped, random_lora

from lora_hyper.api.text_to_lora import TextToLoRA
from lora_hyper.data_modules.collate import collate_lm, lm_example
from lora_hyper.hypernets.t2l import T2LHypernetConfig, TextToLoRAHypernet
from lora_hyper.lora import LoRABatch, LoRASpec, load_peft, lora_a_init, save_peft
from lora_hyper.losses import reconstruction_l1
from lora_hyper.modules.base import warmup_schedule
from lora_hyper.modules.finetune import LoRAFinetuneModule
from lora_hyper.modules.t2l import TextToLoRAModule

TASKS = {
    "say_yes": (["Answer yes", "Always reply with yes", "Say yes to everything"], "yes"),
    "say_no": (["Answer no", "Always reply with no", "Say no to everything"], "no"),
    "say_green": (["Answer green", "Always reply with green", "Say green to everything"], "green"),
}
PROMPTS = ["The sky is blue.", "Sort the list.", "Count the letters.", "Here we go.", "What is 42?", "a b c"]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    from lora_hyper.testing import save_tiny_text_encoder

    return save_tiny_text_encoder(tmp_path_factory.mktemp("tiny_encoder"))


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """A tiny Llama whose output head is scaled up: random init (std 0.02) cannot express confident tokens."""
    from lora_hyper.testing import make_tiny_llama

    model, tok = make_tiny_llama()
    with torch.no_grad():
        model.lm_head.weight.mul_(25.0)
    directory = tmp_path_factory.mktemp("llama")
    model.save_pretrained(str(directory))
    tok.save_pretrained(str(directory))
    return directory


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_HYPER_CACHE", str(tmp_path / "cache"))


def _spec(model, targets=("q_proj", "v_proj"), rank=4):
    return LoRASpec(list(targets), rank, scale=2.0).discover(model)


def _hypernet(spec, head_size, **kw):
    cfg = T2LHypernetConfig(spec=spec.to_dict(), emb_dim=16, latent=32, head_in=24, head_size=head_size, **kw)
    return TextToLoRAHypernet(cfg)


def _perturb(hypernet, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in hypernet.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return hypernet


def test_head_features_are_what_the_l_head_reads(tiny_llama):
    from lora_hyper.hypernets.t2l import _key

    spec = _spec(tiny_llama[0])
    hypernet = _perturb(_hypernet(spec, "L")).eval()
    emb = torch.randn(3, 16)
    raw = hypernet.raw(emb)
    r, mult = spec.rank, hypernet.config.resolved_head_multiplier
    for m in spec.target_modules:
        feats = hypernet.head_features(emb, m)
        assert feats.shape == (3 * spec.n_layers, 24)
        out = mult * hypernet.heads[_key(m)](feats) + hypernet.head_bias[_key(m)]
        d_in, d_out = spec.shapes[m]
        torch.testing.assert_close(out[:, : r * d_in].reshape(raw.A[m].shape), raw.A[m])
        torch.testing.assert_close(out[:, r * d_in :].reshape(raw.B[m].shape), raw.B[m])
    with pytest.raises(ValueError, match="head_size 'L'"):
        _hypernet(spec, "M").head_features(emb, "q_proj")


@pytest.mark.parametrize("head_size", ["L", "M", "S"])
def test_init_is_a_fresh_lora(tiny_llama, head_size):
    spec = _spec(tiny_llama[0])
    lora = _hypernet(spec, head_size)(torch.randn(3, 16))
    gen = torch.Generator().manual_seed(0)
    for m in spec.target_modules:
        expected_a = lora_a_init(
            spec.rank, spec.shapes[m][0], gen
        )  # the bias init, same in every layer and sample
        assert torch.equal(lora.B[m], torch.zeros_like(lora.B[m]))
        assert torch.equal(lora.delta(m), torch.zeros_like(lora.delta(m)))
        assert torch.equal(lora.A[m], expected_a.expand_as(lora.A[m]))
        bound = 1 / spec.shapes[m][0] ** 0.5
        assert lora.A[m].abs().max() <= bound and lora.A[m].abs().max() > 0.5 * bound
    assert lora.scale == 2.0


@pytest.mark.parametrize("head_size", ["L", "M", "S"])
def test_shapes_match_spec(tiny_llama, head_size):
    spec = _spec(tiny_llama[0], ("q_proj", "v_proj", "down_proj"), rank=3)
    lora = _hypernet(spec, head_size)(torch.randn(5, 16))
    for m in spec.target_modules:
        d_in, d_out = spec.shapes[m]
        assert lora.A[m].shape == (5, spec.n_layers, 3, d_in)
        assert lora.B[m].shape == (5, spec.n_layers, d_out, 3)
    assert lora.spec.target_modules == ["q_proj", "v_proj", "down_proj"]


@pytest.mark.parametrize("head_size", ["L", "M", "S"])
def test_per_sample_independence(tiny_llama, head_size):
    spec = _spec(tiny_llama[0])
    hypernet = _perturb(_hypernet(spec, head_size)).eval()
    emb = torch.randn(3, 16)
    batch = hypernet(emb)
    changed = emb.clone()
    changed[2] += 1.0
    other = hypernet(changed)
    for i in range(3):
        single = hypernet(emb[i : i + 1])
        for m in spec.target_modules:
            torch.testing.assert_close(batch.A[m][i], single.A[m][0], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(batch.B[m][i], single.B[m][0], atol=1e-6, rtol=1e-5)
    for m in spec.target_modules:
        assert torch.equal(other.A[m][:2], batch.A[m][:2]) and torch.equal(other.B[m][:2], batch.B[m][:2])
        assert not torch.allclose(other.B[m][2], batch.B[m][2])
        assert not torch.allclose(batch.B[m][0], batch.B[m][1])  # different tasks, different adapters


@pytest.mark.parametrize("head_size", ["L", "M", "S"])
def test_head_multiplier_scales_the_learned_part(tiny_llama, head_size):
    spec = _spec(tiny_llama[0])
    assert _hypernet(spec, head_size).config.resolved_head_multiplier == pytest.approx(24**-0.5)
    one = _perturb(_hypernet(spec, head_size, head_multiplier=1.0)).eval()
    half = _hypernet(spec, head_size, head_multiplier=0.5).eval()
    half.load_state_dict(one.state_dict())
    fresh = _hypernet(spec, head_size).eval()
    fresh.load_state_dict(one.state_dict())
    for p in fresh.heads.parameters():  # weights zero: only the (shared) bias is left
        p.data.zero_()
    emb = torch.randn(2, 16)
    a, b, base = one(emb), half(emb), fresh(emb)
    for m in spec.target_modules:
        torch.testing.assert_close(b.A[m] - base.A[m], 0.5 * (a.A[m] - base.A[m]), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(b.B[m] - base.B[m], 0.5 * (a.B[m] - base.B[m]), atol=1e-6, rtol=1e-5)
        assert not torch.allclose(a.B[m], base.B[m])
    saved = fresh.config.to_dict()
    assert T2LHypernetConfig.from_dict(saved).head_multiplier is None  # round trip keeps the default
    del saved["head_multiplier"]  # a model saved before the field existed keeps its unscaled heads
    assert T2LHypernetConfig.from_dict(saved).resolved_head_multiplier == 1.0


def test_bad_config_and_module_errors(tiny_llama):
    spec = _spec(tiny_llama[0])
    with pytest.raises(ValueError, match="Unknown head size 'XL'"):
        _hypernet(spec, "XL")
    with pytest.raises(ValueError, match="Unknown module type 'k_proj'"):
        _hypernet(spec, "L").generate_module(torch.randn(1, 16), "k_proj")
    with pytest.raises(ValueError, match=r"task_embeddings must be \[batch, 16\]"):
        _hypernet(spec, "L")(torch.randn(2, 7))
    with pytest.raises(ValueError, match="Unknown objective"):
        TextToLoRAModule(loss={"objective": "rl"})


def test_zscore_roundtrip_and_residual(tiny_llama):
    spec = _spec(tiny_llama[0])
    hypernet = _hypernet(spec, "M", output_zscore=True, residual_rank=2)
    library = random_lora(spec, 4, seed=1)
    hypernet.set_output_stats(library)
    back = hypernet.denormalize(hypernet.normalize(library))
    for m in spec.target_modules:
        torch.testing.assert_close(back.A[m], library.A[m], atol=1e-5, rtol=1e-5)
        assert hypernet.normalize(library).A[m].mean(0).abs().max() < 1e-5
    residual = random_lora(spec, 1, rank=2, seed=2)
    residual.scale = 0.5
    hypernet.set_residual(residual)
    lora = hypernet(torch.randn(2, 16))
    raw = hypernet.denormalize(hypernet.raw(torch.randn(2, 16)))
    assert lora.ranks == {"q_proj": 6, "v_proj": 6}
    assert raw.ranks == {"q_proj": 4, "v_proj": 4}
    # Generated part (B = B-mean of the library at init, since head weights are zero) + residual delta.
    for m in spec.target_modules:
        expected = raw.delta(m)[0] + residual.delta(m)[0]
        torch.testing.assert_close(lora.delta(m)[0], expected, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------ training
def _t2l_batch(tokenizer, rng, rows=6):
    names = list(TASKS)
    examples, descriptions, task_names = [], [], []
    for i in range(rows):
        name = names[i % len(names)]
        descs, answer = TASKS[name]
        examples.append(lm_example(tokenizer, rng.choice(PROMPTS), answer))
        descriptions.append(rng.choice(descs))
        task_names.append(name)
    batch = collate_lm(examples, tokenizer.pad_token_id)
    batch.update(
        descriptions=descriptions,
        task_names=task_names,
        task_index=torch.tensor([sorted(TASKS).index(n) for n in task_names]),
    )
    return batch


def _module(llama_dir, encoder_dir, **kw):
    args = dict(
        base_model=str(llama_dir),
        lora={"rank": 4, "alpha": 8.0},
        mlp={"latent": 32, "head_in": 32, "dropout": 0.0},
        task_encoder={"model": str(encoder_dir)},
        optim={"lr": 3e-3},
        runtime={"attn_implementation": "sdpa"},
    )
    module = TextToLoRAModule(**grouped(args, **kw))
    module.configure_model()
    return module


def _train(module, loss_fn, batches, steps, lr):
    opt = torch.optim.AdamW(module.trainable_parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_schedule(steps, 0, "cosine", min_ratio=0.05))
    losses = []
    for step in range(steps):
        loss, _ = loss_fn(batches[step % len(batches)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def trained_sft(llama_dir, encoder_dir, tmp_path_factory):
    import os

    os.environ["LORA_HYPER_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    torch.manual_seed(0)
    module = _module(llama_dir, encoder_dir, loss={"label_smoothing": 0.0, "l2_weight": 1e-3})
    rng = random.Random(0)
    batches = [_t2l_batch(module.tokenizer, rng) for _ in range(8)]
    module.train()
    with torch.no_grad():
        before = torch.stack([module.sft_loss(b)[0] for b in batches]).mean().item()
    _train(module, module.sft_loss, batches, steps=100, lr=3e-3)
    module.eval()
    with torch.no_grad():
        after = torch.stack([module.sft_loss(b)[0] for b in batches]).mean().item()
    return module, before, after


def test_sft_cuts_loss_by_half_and_follows_descriptions(trained_sft):
    module, before, after = trained_sft
    assert after < 0.5 * before, (before, after)
    assert after < 0.5  # well below what one description-blind adapter can reach
    descs = ["Answer yes", "Answer no", "Answer green"]
    adapters = module.generate_lora(descs)
    assert adapters.batch_size == 3 and adapters.scale == pytest.approx(8.0 / 2.0)
    answers = module.generate(["The sky is blue."] * 3, adapters, max_new_tokens=3)
    assert answers == ["yes", "no", "green"]
    # consecutive groups (2 prompts per adapter) give what each adapter gives alone
    prompts = ["a b c", "Here we go."]
    grouped = module.generate(prompts * 3, adapters, max_new_tokens=3, share_adapters=True)
    alone = [
        a
        for i in range(3)
        for a in module.generate(prompts, adapters.select(i), max_new_tokens=3, share_adapters=True)
    ]
    assert grouped == alone and grouped[0] == "yes"


def test_save_load_identical_adapters(trained_sft, tmp_path):
    module, _, _ = trained_sft
    descs = ["Answer yes", "Say green to everything.", "Something unseen"]
    expected = module.generate_lora(descs)
    TextToLoRA.from_module(module).save_pretrained(tmp_path / "t2l")
    loaded = TextToLoRA.from_pretrained(tmp_path / "t2l")
    assert loaded.base_model is None  # generation does not load the base model
    got = loaded.generate_lora(descs)
    for m in expected.spec.target_modules:
        assert torch.equal(got.A[m], expected.A[m]) and torch.equal(got.B[m], expected.B[m])
    assert got.spec.to_dict() == expected.spec.to_dict() and got.scale == expected.scale
    with pytest.raises(ValueError, match="Description list is empty"):
        loaded.generate_lora([])
    with pytest.raises(ValueError, match="Empty task description"):
        loaded.generate_lora(["  "])
    # strict loading: an unexpected tensor is an error
    from safetensors.torch import load_file, save_file

    weights = tmp_path / "t2l" / "hypernet.safetensors"
    state = load_file(str(weights))
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=r"unexpected=\['extra.weight'\]"):
        TextToLoRA.from_pretrained(tmp_path / "t2l")
    del state["extra.weight"], state[next(iter(state))]
    save_file(state, str(weights))
    with pytest.raises(ValueError, match="missing="):
        TextToLoRA.from_pretrained(tmp_path / "t2l")


def test_reconstruction_cuts_loss_by_90_percent(tiny_llama, llama_dir, encoder_dir, tmp_path):
    torch.manual_seed(0)
    module = _module(llama_dir, encoder_dir, loss={"objective": "reconstruction"})
    assert module.base_model is None  # reconstruction reads layer shapes only
    spec = LoRASpec(["q_proj", "v_proj"], 4, scale=1.0).discover(tiny_llama[0])
    library = random_lora(spec, 3, seed=5, std=0.1)
    names = list(TASKS)
    batches = []
    for i in range(3):
        rows = [(i + k) % 3 for k in range(2)]
        batches.append(
            {
                "descriptions": [TASKS[names[r]][0][0] for r in rows],
                "task_names": [names[r] for r in rows],
                "target": library.select(rows),
            }
        )
    module.train()
    with torch.no_grad():
        first = sum(module.reconstruction_loss(b)[0].item() for b in batches) / 3
    _train(module, module.reconstruction_loss, batches, steps=200, lr=1e-2)
    with torch.no_grad():
        last = sum(module.reconstruction_loss(b)[0].item() for b in batches) / 3
    assert last < 0.1 * first, (first, last)
    # The generated adapter reproduces the library delta at the library's own scale.
    got = module.generate_lora([TASKS["say_no"][0][0]])
    err = reconstruction_l1(got, LoRABatch(spec, *_scaled(library.select(1), module.spec.scale)), "delta")
    assert err < 0.1 * library.select(1).delta("q_proj").abs().mean()


def _scaled(lora, scale):
    return dict(lora.A), {m: b * (lora.scale / scale) for m, b in lora.B.items()}, scale


def test_zscore_module_fits_stats_and_saves_them(llama_dir, encoder_dir, tiny_llama, tmp_path):
    module = _module(llama_dir, encoder_dir, loss={"objective": "reconstruction", "zscore": True})
    spec = LoRASpec(["q_proj", "v_proj"], 4, scale=1.0).discover(tiny_llama[0])
    library = random_lora(spec, 3, seed=7)
    module.fit_zscore(library)
    assert int(module.zscore_fitted) == 1
    TextToLoRA.from_module(module).save_pretrained(tmp_path / "z")
    loaded = TextToLoRA.from_pretrained(tmp_path / "z")
    mean_a = loaded.hypernet.get_buffer("zA_mean_q_proj")
    torch.testing.assert_close(mean_a, library.A["q_proj"].mean(0))


def test_residual_adapter_starts_at_the_residual(tiny_llama, llama_dir, encoder_dir, tmp_path):
    spec = LoRASpec(["q_proj", "v_proj"], 2, scale=2.0).discover(tiny_llama[0])
    residual = random_lora(spec, 1, seed=3)
    save_peft(residual, 0, tmp_path / "multitask")
    module = _module(llama_dir, encoder_dir, residual_adapter=str(tmp_path / "multitask"))
    lora = module.generate_lora(["Answer yes", "Answer no"])
    assert lora.ranks == {"q_proj": 6, "v_proj": 6}
    for m in spec.target_modules:
        torch.testing.assert_close(lora.delta(m)[1], residual.delta(m)[0], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="reconstruction_mode='delta'"):
        TextToLoRAModule(loss={"objective": "reconstruction"}, residual_adapter=str(tmp_path / "multitask"))


# ------------------------------------------------------------------------------------------ plain LoRA finetune
@pytest.mark.parametrize("mode", ["per_task", "multitask"])
def test_finetune_library(llama_dir, tmp_path, mode):
    torch.manual_seed(0)
    module = LoRAFinetuneModule(
        base_model=str(llama_dir),
        lora={"rank": 4},
        mode=mode,
        tasks=sorted(TASKS),
        runtime={"attn_implementation": "sdpa"},
    )
    module.configure_model()
    module.descriptions = {n: d for n, (d, _) in TASKS.items()}
    rng = random.Random(1)
    batches = [_t2l_batch(module.tokenizer, rng) for _ in range(4)]
    at_init = module.adapters
    assert torch.equal(at_init.delta("q_proj"), torch.zeros_like(at_init.delta("q_proj")))

    def loss_fn(batch):
        return module._step(batch, "train"), {}

    losses = _train(module, loss_fn, batches, steps=25, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
    written = module.export_library(tmp_path / "lib")
    if mode == "multitask":
        assert written == [tmp_path / "lib"]
        loaded = load_peft(tmp_path / "lib")
        torch.testing.assert_close(loaded.delta("q_proj")[0], module.adapters.delta("q_proj")[0].detach())
        return
    assert sorted(p.name for p in written) == sorted(TASKS)
    assert module.trained_tasks == [0, 1, 2]
    index = json.loads((tmp_path / "lib" / "descriptions.json").read_text())
    assert index["say_no"] == TASKS["say_no"][0]
    for i, name in enumerate(sorted(TASKS)):
        loaded = load_peft(tmp_path / "lib" / name)
        assert json.loads((tmp_path / "lib" / name / "descriptions.json").read_text()) == TASKS[name][0]
        torch.testing.assert_close(loaded.delta("v_proj")[0], module.adapters.delta("v_proj")[i].detach())
    bad = dict(batches[0], task_names=["say_no"] * len(batches[0]["task_names"]))
    with pytest.raises(ValueError, match="does not name task"):
        module._step(bad, "train")


# ------------------------------------------------------------------------------------------ Lightning end to end
def test_pipeline_with_trainer(llama_dir, encoder_dir, tmp_path):
    """Oracle library (one fit) -> reconstruction with z-scores (one fit) -> SFT from its checkpoint (one fit), 2 steps
    each: the chain of recipes/t2l/*_smollm2_cpu.yaml."""
    import lightning as L
    import yaml

    from lora_hyper.data_modules.lora_library import LoRALibraryDataModule
    from lora_hyper.data_modules.task_sampler import TaskCorpusDataModule

    root = tmp_path / "corpus"
    for name, (descs, answer) in TASKS.items():
        (root / name).mkdir(parents=True)
        meta = {"descriptions": [*descs, f"Reply {answer}", f"Output {answer}"], "source": "data.jsonl"}
        (root / name / "metadata.yaml").write_text(yaml.safe_dump(meta))
        rows = [json.dumps({"input": p, "output": answer}) for p in PROMPTS * 2]
        (root / name / "data.jsonl").write_text("\n".join(rows) + "\n")

    def fit(module, data):
        trainer = L.Trainer(
            max_steps=2,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            limit_val_batches=0,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=str(tmp_path),
        )
        trainer.fit(module, data)
        return trainer

    corpus_args = dict(base_model=str(llama_dir), corpus=str(root), held_out_tasks=[], n_eval_descriptions=1)
    data = TaskCorpusDataModule(**corpus_args, tasks_per_batch=3, steps_per_epoch=2)
    oracle = LoRAFinetuneModule(base_model=str(llama_dir), lora={"rank": 4}, export_dir=str(tmp_path / "lib"))
    fit(oracle, data)
    assert sorted(p.name for p in (tmp_path / "lib").iterdir() if p.is_dir()) == sorted(TASKS)

    recon = TextToLoRAModule(
        base_model=str(llama_dir),
        lora={"rank": 4},
        mlp={"latent": 32, "head_in": 32},
        task_encoder={"model": str(encoder_dir)},
        loss={"objective": "reconstruction", "zscore": True},
        optim={"lr": 1e-3},
    )
    recon_trainer = fit(
        recon,
        LoRALibraryDataModule(
            library_dir=str(tmp_path / "lib"),
            corpus=str(root),
            tasks_per_batch=2,
            n_eval_descriptions=1,
            steps_per_epoch=2,
        ),
    )
    assert int(recon.zscore_fitted) == 1 and recon.base_model is None
    recon_trainer.save_checkpoint(tmp_path / "recon.ckpt")

    # SFT from the reconstruction (recipes/t2l/sft_from_recon_smollm2_cpu.yaml): it starts at the reconstruction's
    # adapters, z-score statistics included, and trains on from there
    sft = TextToLoRAModule(
        base_model=str(llama_dir),
        init_from=str(tmp_path / "recon.ckpt"),
        lora={"rank": 4},
        mlp={"latent": 32, "head_in": 32, "head_multiplier": 1.0},
        task_encoder={"model": str(encoder_dir)},
        loss={"neftune_alpha": 5.0, "zscore": True},
        optim={"lr": 1e-3},
    )
    sft.configure_model()
    descs = [TASKS[name][0][0] for name in sorted(TASKS)]
    with torch.no_grad():
        want, start = recon.eval().generate_lora(descs), sft.eval().generate_lora(descs)
    assert want.A["v_proj"].abs().sum() > 0
    for m in want.spec.target_modules:
        torch.testing.assert_close(start.A[m], want.A[m])
        torch.testing.assert_close(start.B[m], want.B[m])
    trainer = fit(sft, TaskCorpusDataModule(**corpus_args, tasks_per_batch=2, steps_per_epoch=2))
    assert trainer.global_step == 2 and torch.isfinite(trainer.callback_metrics["train/loss"])
    with torch.no_grad():
        moved = sft.eval().generate_lora(descs)
    assert not torch.allclose(moved.B["v_proj"], start.B["v_proj"])


def test_base_llm_task_encoder_pools_last_real_token(tiny_llama):
    """'base' encoder: last real token of the decoder's final (normed) hidden state, unit length x sqrt(d)."""
    import math

    from lora_hyper.encoders.task import TaskEncoder

    model, tok = tiny_llama
    enc = TaskEncoder("base", model=model, tokenizer=tok, disk_cache=False)
    texts = ["Reverse the words.", "Sort the list of numbers in ascending order."]
    got = enc.encode(texts)
    assert got.shape == (2, model.config.hidden_size)
    torch.testing.assert_close(got.norm(dim=-1), torch.full((2,), math.sqrt(model.config.hidden_size)))
    for i, text in enumerate(texts):
        ids = tok(text, return_tensors="pt")
        with torch.no_grad():
            last = model(**ids, output_hidden_states=True).hidden_states[-1][0, -1]
        expected = torch.nn.functional.normalize(last, dim=-1) * math.sqrt(last.numel())
        torch.testing.assert_close(got[i], expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="needs the base model"):
        TaskEncoder("base")


def _relative_delta_error(got: LoRABatch, target: LoRABatch) -> float:
    """``||dW_got - dW_target|| / ||dW_target||`` over every target module and layer."""
    num = sum(((got.delta(m) - target.delta(m)) ** 2).sum() for m in target.spec.target_modules)
    den = sum((target.delta(m) ** 2).sum() for m in target.spec.target_modules)
    return float((num / den).sqrt())


def _reconstruct_four(llama_dir, encoder_dir, **kw) -> tuple[TextToLoRAModule, float]:
    """Reconstruct 4 random z-scored adapters for 200 steps at lr 3e-3; the relative delta-W error after it."""
    torch.manual_seed(0)
    descriptions = ["Answer yes", "Always reply with no", "Say green to everything", "Count the letters"]
    module = _module(llama_dir, encoder_dir, loss={"objective": "reconstruction", "zscore": True}, **kw)
    spec = module.spec
    library = LoRABatch(spec, *_scaled(random_lora(spec, 4, seed=7, std=0.1), spec.scale))
    module.fit_zscore(library)
    batch = {"descriptions": descriptions, "task_names": list("abcd"), "target": library}
    module.train()
    _train(module, module.reconstruction_loss, [batch], steps=200, lr=3e-3)
    module.eval()
    return module, _relative_delta_error(module.generate_lora(descriptions), library)


def test_reconstruction_default_reproduces_four_oracles(llama_dir, encoder_dir):
    """Reconstruction's default head multiplier (1.0) regresses 4 adapters to < 5% relative delta-W error; the SFT
    default (1/sqrt(head_in)) left on for reconstruction stalls far from them in the same budget."""
    assert _module(llama_dir, encoder_dir).hypernet.config.resolved_head_multiplier == 32**-0.5  # SFT
    module, err = _reconstruct_four(llama_dir, encoder_dir)
    assert module.hypernet.config.head_multiplier == 1.0
    assert err < 0.05, err
    _, err_sft_default = _reconstruct_four(llama_dir, encoder_dir, mlp={"head_multiplier": 32**-0.5})
    assert err_sft_default > 0.2, err_sft_default
