"""Text-to-LoRA with the task encoder's top layers trained (``task_encoder.train_layers``): which weights train,
at what rate, and that they reach checkpoints, saved models, warm starts and the embedding cache."""

from __future__ import annotations

import json
import random

import pytest
import torch
from helpers.factories import grouped
from safetensors.torch import load_file, save_file

from lora_hyper.api.text_to_lora import TextToLoRA
from lora_hyper.data_modules.collate import collate_lm, lm_example
from lora_hyper.encoders.task import TaskEncoder, top_layer_parameters
from lora_hyper.modules.args import TaskEncoderArgs
from lora_hyper.modules.t2l import TextToLoRAModule
from lora_hyper.validation import InputError

TASKS = {"say_yes": ("Always reply with yes", "yes"), "say_no": ("Always reply with no", "no")}
PROMPTS = ["The sky is blue.", "Sort the list.", "Count the letters.", "a b c"]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    from lora_hyper.testing import save_tiny_text_encoder

    return save_tiny_text_encoder(tmp_path_factory.mktemp("encoder2"), num_layers=2)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    from lora_hyper.testing import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_HYPER_CACHE", str(tmp_path / "cache"))


def _module(llama_dir, encoder_dir, **kw) -> TextToLoRAModule:
    args = dict(
        base_model=str(llama_dir),
        lora={"rank": 4, "alpha": 8.0},
        mlp={"latent": 32, "head_in": 32, "dropout": 0.0},
        task_encoder={"model": str(encoder_dir), "train_layers": 1},
        optim={"lr": 3e-3, "weight_decay": 0.0},
        runtime={"attn_implementation": "sdpa"},
    )
    module = TextToLoRAModule(**grouped(args, **kw))
    module.configure_model()
    return module


def _batch(tokenizer, rng: random.Random) -> dict:
    names = list(TASKS) * 2
    examples = [lm_example(tokenizer, rng.choice(PROMPTS), TASKS[n][1]) for n in names]
    batch = collate_lm(examples, tokenizer.pad_token_id)
    batch.update(descriptions=[TASKS[n][0] for n in names], task_names=names)
    return batch


def _encoder_params(module: TextToLoRAModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.task_encoder_model.named_parameters()}


@pytest.fixture(scope="module")
def trained(llama_dir, encoder_dir):
    torch.manual_seed(0)
    module = _module(llama_dir, encoder_dir)
    before = _encoder_params(module)
    optimizer = module.configure_optimizers()["optimizer"]
    rng = random.Random(0)
    module.train()
    assert not module.task_encoder_model.training  # eval mode (no dropout) while its top layer trains
    for _ in range(5):
        loss, _ = module.sft_loss(_batch(module.tokenizer, rng))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    return module, before, optimizer


def test_top_layer_parameters_are_the_deepest_block(encoder_dir):
    model = TaskEncoder(str(encoder_dir)).model
    top = top_layer_parameters(model, 1)
    assert top and all(n.startswith("encoder.layer.1.") for n in top)
    assert sorted(top_layer_parameters(model, 2)) == sorted(
        n for n, _ in model.named_parameters() if n.startswith("encoder.layer.")
    )
    with pytest.raises(ValueError, match="has 2 layers; use 1..2"):
        top_layer_parameters(model, 3)
    with pytest.raises(ValueError, match="no numbered transformer blocks"):
        top_layer_parameters(torch.nn.Linear(2, 2), 1)


def test_only_the_top_layers_train_at_the_multiplied_rate(trained, encoder_dir):
    module, before, optimizer = trained
    after = _encoder_params(module)
    top = set(top_layer_parameters(module.task_encoder_model, 1))
    trainable = {n for n, p in module.task_encoder_model.named_parameters() if p.requires_grad}
    assert trainable == top
    changed = {n for n in after if not torch.equal(after[n], before[n])}
    assert changed and changed <= top  # embeddings and the lower layer stay pretrained
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    encoder_rates = {rates[id(p)] for p in module.task_encoder_model.parameters() if p.requires_grad}
    hypernet_rate = rates[id(next(module.hypernet.parameters()))]
    assert len(encoder_rates) == 1 and encoder_rates.pop() == pytest.approx(0.05 * hypernet_rate)
    # the embeddings follow the trained weights (no stale cache), with gradients only while enabled
    frozen = TaskEncoder(str(encoder_dir), disk_cache=False).encode(["Always reply with yes"])
    now = module.embed(["Always reply with yes"])
    assert not torch.allclose(now.cpu(), frozen) and now.requires_grad
    with torch.no_grad():
        assert not module.embed(["Always reply with yes"]).requires_grad


def test_saved_model_ships_the_trained_layers(trained, encoder_dir, tmp_path):
    module, _, _ = trained
    descs = ["Always reply with yes", "Always reply with no", "Something unseen"]
    expected = module.generate_lora(descs)
    TextToLoRA.from_module(module).save_pretrained(tmp_path / "t2l")
    config = json.loads((tmp_path / "t2l" / "lora_hyper.json").read_text())
    assert config["task_encoder"]["train_layers"] == 1
    weights = tmp_path / "t2l" / "hypernet.safetensors"
    state = load_file(str(weights))
    shipped = {k[len("task_encoder.") :] for k in state if k.startswith("task_encoder.")}
    assert shipped == set(top_layer_parameters(module.task_encoder_model, 1))
    loaded = TextToLoRA.from_pretrained(tmp_path / "t2l")
    got = loaded.generate_lora(descs)
    for m in expected.spec.target_modules:
        torch.testing.assert_close(got.A[m], expected.A[m])
        torch.testing.assert_close(got.B[m], expected.B[m])
    # the embedding cache is keyed by the trained weights: the pretrained encoder's entries are not reused
    assert loaded.encoder.identity != TaskEncoder(str(encoder_dir)).identity
    # weights without their config (or the reverse) are an error, not a silently pretrained encoder
    save_file({k: v for k, v in state.items() if not k.startswith("task_encoder.")}, str(weights))
    with pytest.raises(ValueError, match="inconsistent"):
        TextToLoRA.from_pretrained(tmp_path / "t2l")


def test_checkpoint_holds_only_the_trained_encoder_layers_and_restores_them(trained, llama_dir, encoder_dir):
    module, _, _ = trained
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    encoder_keys = {k for k in checkpoint["state_dict"] if k.startswith("task_encoder_model.")}
    top = set(top_layer_parameters(module.task_encoder_model, 1))
    assert encoder_keys == {f"task_encoder_model.{n}" for n in top}
    fresh = _module(llama_dir, encoder_dir)
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"], strict=True)
    for n, p in fresh.task_encoder_model.named_parameters():
        assert torch.equal(p, dict(module.task_encoder_model.named_parameters())[n])


def test_init_from_a_saved_model_starts_from_its_encoder_layers(
    trained, llama_dir, encoder_dir, tmp_path, monkeypatch
):
    from lora_hyper.modules import init_from

    module, _, _ = trained
    TextToLoRA.from_module(module).save_pretrained(tmp_path / "t2l")
    reads = []
    read = init_from._saved_weights
    monkeypatch.setattr(init_from, "_saved_weights", lambda source: reads.append(source) or read(source))
    warm = _module(llama_dir, encoder_dir, init_from=str(tmp_path / "t2l"))
    assert len(reads) == 1  # the hypernetwork and the encoder layers come from one read of the weights
    descs = ["Always reply with no"]
    torch.testing.assert_close(warm.generate_lora(descs).B["v_proj"], module.generate_lora(descs).B["v_proj"])
    # its hypernetwork reads the trained layers' embeddings: a run that would drop them, or load them into
    # layers it keeps frozen (and so never saves), is refused
    for layers, message in ((0, "has trained task-encoder layers"), (2, "trained other task-encoder layers")):
        with pytest.raises(InputError, match=message):
            _module(
                llama_dir, encoder_dir, init_from=str(tmp_path / "t2l"), task_encoder={"train_layers": layers}
            )


def test_fsdp_with_trained_encoder_layers_is_refused(llama_dir, encoder_dir):
    from types import SimpleNamespace

    FSDPStrategy = type("FSDPStrategy", (), {})  # the check goes by the strategy's class name
    module = TextToLoRAModule(
        base_model=str(llama_dir), task_encoder={"model": str(encoder_dir), "train_layers": 1}
    )
    module._trainer = SimpleNamespace(strategy=FSDPStrategy())
    with pytest.raises(InputError, match="not supported: the task encoder is small, use DDP"):
        module.setup("fit")
    module.task_encoder = TaskEncoderArgs(model=str(encoder_dir))
    module.setup("fit")  # a frozen encoder is fine


def test_frozen_encoder_format_is_unchanged(llama_dir, encoder_dir, tmp_path):
    module = _module(llama_dir, encoder_dir, task_encoder={"train_layers": 0})
    TextToLoRA.from_module(module).save_pretrained(tmp_path / "t2l")
    config = json.loads((tmp_path / "t2l" / "lora_hyper.json").read_text())
    assert "train_layers" not in config["task_encoder"]
    assert not any(
        k.startswith("task_encoder.") for k in load_file(str(tmp_path / "t2l" / "hypernet.safetensors"))
    )


def test_bad_train_layers_are_one_line_errors(encoder_dir):
    with pytest.raises(InputError, match="'base' task encoder is the frozen base model"):
        TaskEncoderArgs(model="base", train_layers=1)
    with pytest.raises(InputError, match="train_layers must be >= 0"):
        TaskEncoderArgs(train_layers=-1)
    with pytest.raises(ValueError, match="has 2 layers"):
        TaskEncoder(str(encoder_dir), train_layers=5).make_trainable()


def test_fit_checkpoint_and_exact_resume_with_a_trainer(llama_dir, encoder_dir, tmp_path):
    """Through Lightning: the encoder's top layer trains, lands in the checkpoint, and a resume restores it."""
    import lightning as L
    import yaml
    from lightning.pytorch.callbacks import ModelCheckpoint

    from lora_hyper.data_modules.task_sampler import TaskCorpusDataModule

    root = tmp_path / "corpus"
    for name, (desc, answer) in TASKS.items():
        (root / name).mkdir(parents=True)
        meta = {"descriptions": [desc, f"Reply {answer}", f"Output {answer}"], "source": "data.jsonl"}
        (root / name / "metadata.yaml").write_text(yaml.safe_dump(meta))
        rows = [json.dumps({"input": p, "output": answer}) for p in PROMPTS * 3]
        (root / name / "data.jsonl").write_text("\n".join(rows) + "\n")

    class StopAt(L.Callback):  # a crash right after step 2 of a 4-step schedule
        def on_train_batch_end(self, trainer, *args) -> None:
            trainer.should_stop = trainer.global_step >= 2

    def fit(stop: bool = False, ckpt_path: str | None = None) -> TextToLoRAModule:
        L.seed_everything(0)
        module = _module(llama_dir, encoder_dir)
        trainer = L.Trainer(
            max_steps=4,
            accelerator="cpu",
            logger=False,
            limit_val_batches=0,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=str(tmp_path),
            callbacks=[StopAt(), ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2)]
            if stop
            else [],
            enable_checkpointing=stop,
        )
        data = TaskCorpusDataModule(
            base_model=str(llama_dir),
            corpus=str(root),
            held_out_tasks=[],
            n_eval_descriptions=1,
            tasks_per_batch=2,
            steps_per_epoch=4,
        )
        trainer.fit(module, data, ckpt_path=ckpt_path)
        return module

    start = _encoder_params(_module(llama_dir, encoder_dir))
    two = fit(stop=True)
    assert any(not torch.equal(v, start[k]) for k, v in _encoder_params(two).items())
    ckpt = next((tmp_path / "ckpt").glob("*step=2*.ckpt"))
    # `lora-hyper export` of that checkpoint carries the trained layer into the saved model
    from lora_hyper.commands.export import export_checkpoint

    exported = TextToLoRA.from_pretrained(export_checkpoint(ckpt, tmp_path / "exported"))
    descs = ["Always reply with yes", "Reply no"]
    torch.testing.assert_close(
        exported.generate_lora(descs).B["v_proj"], two.generate_lora(descs).B["v_proj"]
    )
    straight, resumed = fit(), fit(ckpt_path=str(ckpt))
    assert any(not torch.equal(v, _encoder_params(two)[k]) for k, v in _encoder_params(straight).items())
    for k, v in _encoder_params(straight).items():
        assert torch.equal(_encoder_params(resumed)[k], v), k
    for k, v in straight.hypernet.state_dict().items():
        assert torch.equal(resumed.hypernet.state_dict()[k], v), k
