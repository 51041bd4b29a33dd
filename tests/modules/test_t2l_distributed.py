"""Text-to-LoRA under DDP and FSDP2 (ModelParallelStrategy + fully_shard) on 2 CPU processes (gloo).

Each run trains the same tiny hypernetwork 3 steps on the same 4 examples (global batch 4: one process with
batch 4, or two with batch 2); its weights must match the single-process run (atol 2e-5, rtol 1e-4: only the
float summation order differs). Before the hypernetwork was sharded, an FSDP2 run trained one unsynchronised copy
per process (4e-3 off after 3 steps). ModelParallelStrategy applies no parallelism by itself, so a module that
does not shard its trainable part under the device mesh (plain LoRA fine-tuning) refuses it with one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

SCRIPT = r"""
import sys
import torch
import lightning as L
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from lora_hyper.data_modules.collate import collate_lm, lm_example
from lora_hyper.modules.t2l import TextToLoRAModule

strategy, devices, model_dir, encoder_dir, out, corpus = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
resume_from = sys.argv[7] if len(sys.argv) > 7 else None  # continue this checkpoint to step 4
torch.set_num_threads(1)
ROWS = [("Always reply with yes", "The sky is blue.", "yes"), ("Always reply with no", "Sort the list.", "no"),
        ("Answer yes", "Count the letters.", "yes"), ("Answer no", "a b c", "no")]


class Module(TextToLoRAModule):
    def configure_model(self):
        if self.hypernet is None:
            torch.manual_seed(0)  # identical initial hypernetwork in every process and run
        super().configure_model()

    def on_train_end(self):
        state = {}
        for k, v in self.hypernet.state_dict().items():
            v = v.full_tensor() if hasattr(v, "full_tensor") else v  # FSDP2: gather the shards (every rank)
            state[k] = v.detach().cpu().contiguous()
        if self.trainer.is_global_zero:
            save_file(state, out)


def collate(items):
    tok = collate.tokenizer
    batch = collate_lm([lm_example(tok, ROWS[i][1], ROWS[i][2]) for i in items], tok.pad_token_id)
    batch.update(descriptions=[ROWS[i][0] for i in items], task_names=[ROWS[i][2] for i in items])
    return batch


if __name__ == "__main__":
    from lora_hyper.base_model import load_tokenizer

    collate.tokenizer = load_tokenizer(model_dir)
    module = Module(base_model=model_dir, lora={"rank": 4, "alpha": 8.0},
                    mlp={"latent": 32, "head_in": 32, "dropout": 0.0},
                    task_encoder={"model": encoder_dir},
                    loss={"neftune_alpha": 0.0},  # NEFTune noise differs between processes
                    optim={"lr": 1e-3, "warmup": 0, "schedule": "constant"},
                    runtime={"attn_implementation": "sdpa"})
    if strategy == "fsdp2":
        from lightning.pytorch.strategies import ModelParallelStrategy
        strategy = ModelParallelStrategy(data_parallel_size=devices, tensor_parallel_size=1,
                                         save_distributed_checkpoint=False)  # as recipes/strategies/fsdp2.yaml
    elif strategy == "fsdp":  # recipes/strategies/fsdp.yaml without bf16 (GPU only there)
        from lightning.pytorch.strategies import FSDPStrategy
        from lora_hyper.strategies import DecoderLayerWrapPolicy
        strategy = FSDPStrategy(auto_wrap_policy=DecoderLayerWrapPolicy(), use_orig_params=True)
    from lora_hyper.callbacks import ZeroShotTaskEvaluation

    # at fit end: every rank evaluates, rank 0 reports (a sharded hypernetwork runs each forward collectively;
    # before, rank 0 alone waited for the others forever)
    zero_shot = ZeroShotTaskEvaluation(every_n_steps=0, max_tasks=2, examples_per_task=1, n_descriptions=1,
                                       corpus=corpus, output_dir=out + ".zero_shot", max_new_tokens=2)
    from lightning.pytorch.callbacks import ModelCheckpoint

    saver = ModelCheckpoint(dirpath=out + ".ckpt", every_n_train_steps=2, save_top_k=-1)
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, max_steps=4 if resume_from else 3,
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[zero_shot, saver])
    loader = DataLoader(list(range(4)), batch_size=4 // devices, shuffle=False, collate_fn=collate)
    trainer.fit(module, loader, ckpt_path=resume_from)
    assert trainer.global_step == (4 if resume_from else 3), trainer.global_step
"""


def _corpus(root: Path) -> Path:
    """Two seen tasks and one held-out task with test examples, for the zero-shot callback."""
    import json

    import yaml

    for name, answer in (("say_yes", "yes"), ("say_no", "no"), ("say_maybe", "maybe")):
        (root / name).mkdir(parents=True, exist_ok=True)
        meta = {
            "descriptions": [
                f"{verb} {answer}" for verb in ("Say", "Reply", "Answer", "Output", "Write", "Print")
            ],
            "source": {"path": "data.jsonl", "filter": {"split": "train"}},
            "test_source": {"path": "data.jsonl", "filter": {"split": "test"}},
        }
        (root / name / "metadata.yaml").write_text(yaml.safe_dump(meta))
        rows = [{"input": p, "output": answer, "split": s} for p, s in (("a b", "train"), ("c d", "test"))]
        (root / name / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "held_out.yaml").write_text(yaml.safe_dump(["say_maybe"]))
    return root


def _run(tmp_path: Path, model_dir: Path, encoder_dir: Path, strategy: str, devices: int, *resume: str):
    script = tmp_path / "train_t2l.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"{strategy}{'.resumed' if resume else ''}.safetensors"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    env["LORA_HYPER_CACHE"] = str(tmp_path / "cache")
    args = [
        strategy,
        str(devices),
        str(model_dir),
        str(encoder_dir),
        str(out),
        str(_corpus(tmp_path / "corpus")),
        *resume,
    ]
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    return proc, out


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    from lora_hyper.testing import save_tiny_text_encoder

    return save_tiny_text_encoder(tmp_path_factory.mktemp("encoder"))


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_llama_dir, encoder_dir):
    from safetensors.torch import load_file

    tmp = tmp_path_factory.mktemp("single")
    proc, out = _run(tmp, tiny_llama_dir, encoder_dir, "auto", 1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load_file(str(out))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_processes_match_single_process(strategy, single, tmp_path, tiny_llama_dir, encoder_dir):
    from safetensors.torch import load_file

    proc, out = _run(tmp_path, tiny_llama_dir, encoder_dir, strategy, 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    multi = load_file(str(out))
    report = json.loads((tmp_path / f"{strategy}.safetensors.zero_shot" / "zero_shot.json").read_text())
    assert sorted(report[-1]["scores"]["t2l"]) == ["say_maybe", "say_no", "say_yes"]
    assert multi.keys() == single.keys()
    init = {k: v for k, v in single.items() if k.startswith("heads") and k.endswith("weight")}
    assert init and all(v.abs().max() > 1e-4 for v in init.values())  # zero-initialised heads moved
    for k in single:
        torch.testing.assert_close(multi[k], single[k], atol=2e-5, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
    if strategy == "fsdp2":
        # --ckpt_path resume: the strategy loads the checkpoint before on_load_checkpoint refills the frozen base
        # weights it leaves out (before: KeyError 'base_model.model.embed_tokens.weight' ... strict loading)
        ckpt = next((tmp_path / f"{strategy}.safetensors.ckpt").glob("*step=2*.ckpt"))
        proc, out = _run(tmp_path, tiny_llama_dir, encoder_dir, strategy, 2, str(ckpt))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert load_file(str(out)).keys() == single.keys()


def _with_strategy(module, strategy):
    module._trainer = SimpleNamespace(strategy=strategy)
    return module


def test_model_parallel_strategy_is_refused_where_nothing_shards():
    from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy

    from lora_hyper.modules.d2l import DocToLoRAModule
    from lora_hyper.modules.finetune import LoRAFinetuneModule
    from lora_hyper.modules.t2l import TextToLoRAModule
    from lora_hyper.validation import InputError

    with pytest.raises(
        InputError, match=r"LoRAFinetuneModule does not shard .* use DDP \(recipes/strategies/ddp.yaml\)"
    ):
        _with_strategy(LoRAFinetuneModule(), ModelParallelStrategy()).setup("fit")
    _with_strategy(LoRAFinetuneModule(), DDPStrategy()).setup("fit")
    _with_strategy(LoRAFinetuneModule(), ModelParallelStrategy()).setup(
        "validate"
    )  # replicas agree: harmless
    for module in (TextToLoRAModule(), DocToLoRAModule()):  # both shard their hypernetwork
        _with_strategy(module, ModelParallelStrategy()).setup("fit")
    trained_encoder = TextToLoRAModule(task_encoder={"train_layers": 1})
    with pytest.raises(InputError, match="train_layers with ModelParallelStrategy is not supported"):
        _with_strategy(trained_encoder, ModelParallelStrategy()).setup("fit")


def _tiny_t2l(tiny_llama_dir, encoder_dir):
    """A tiny Text-to-LoRA module (SFT, frozen task encoder), not yet built."""
    from lora_hyper.modules.t2l import TextToLoRAModule

    return TextToLoRAModule(
        base_model=str(tiny_llama_dir),
        lora={"rank": 4},
        mlp={"latent": 32, "head_in": 32},
        task_encoder={"model": str(encoder_dir)},
        runtime={"attn_implementation": "sdpa"},
    )


def test_a_hypernetwork_built_before_the_trainer_is_sharded_when_the_mesh_comes(
    monkeypatch, tiny_llama_dir, encoder_dir
):
    """Built outside the trainer (e.g. by generate_lora), the hypernetwork must still be sharded once the
    strategy's device mesh is there, or FSDP2 would again train one unsynchronised copy per process."""
    from lora_hyper import strategies

    sharded = []
    monkeypatch.setattr(strategies, "shard_fsdp2", lambda module, mesh: sharded.append((module, mesh)))
    monkeypatch.setattr(strategies, "is_fsdp2", lambda module: any(m is module for m, _ in sharded))
    module = _tiny_t2l(tiny_llama_dir, encoder_dir)
    module.generate_lora(["Say yes"])  # builds it, no mesh: nothing to shard
    assert sharded == []
    module._device_mesh = "mesh"  # what ModelParallelStrategy sets before calling configure_model
    module.configure_model()
    module.configure_model()
    assert sharded == [(module.hypernet, "mesh")]  # once


def test_fsdp2_loads_non_strictly_checks_trained_keys_itself_and_gives_strictness_back(
    tiny_llama_dir, encoder_dir
):
    """ModelParallelStrategy loads a checkpoint before the frozen base weights it leaves out are refilled, so the
    module lifts strict loading for it, checks the trained keys against the list the checkpoint records, and
    restores the setting at teardown (a later DDP or single-device run loads strictly again)."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    module = _tiny_t2l(tiny_llama_dir, encoder_dir)
    module.configure_model()
    checkpoint = {"state_dict": dict(module.state_dict())}
    module.on_save_checkpoint(checkpoint)
    trained = checkpoint["trained_keys"]
    assert trained and all(k.startswith("hypernet.") for k in trained)  # the frozen base is left out
    _with_strategy(module, ModelParallelStrategy()).setup("fit")
    assert module.strict_loading is False
    module.on_load_checkpoint({**checkpoint, "state_dict": {}})  # the strategy took the weights already
    with pytest.raises(KeyError, match=r"missing \['hypernet"):
        module.on_load_checkpoint({**checkpoint, "trained_keys": trained[1:]})
    with pytest.raises(KeyError, match=r"unexpected \['hypernet.extra'\]"):
        module.on_load_checkpoint({**checkpoint, "trained_keys": [*trained, "hypernet.extra"]})
    module.teardown("fit")
    assert module.strict_loading is True
