"""``lora-hyper generate``: PEFT dirs that PeftModel loads with the framework's own logits; bad input; recipes parse."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lora_hyper.api.text_to_lora import TextToLoRA
from lora_hyper.commands import generate
from lora_hyper.lora import apply_lora
from lora_hyper.modules.t2l import TextToLoRAModule


@pytest.fixture(scope="module")
def t2l_dir(tiny_llama_dir, tmp_path_factory):
    """A saved Text-to-LoRA model with perturbed heads (so adapters are not zero)."""
    import os

    from lora_hyper.testing import save_tiny_text_encoder

    os.environ["LORA_HYPER_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    encoder = save_tiny_text_encoder(tmp_path_factory.mktemp("encoder"))
    module = TextToLoRAModule(
        base_model=str(tiny_llama_dir),
        lora={"targets": ["q_proj", "v_proj", "down_proj"], "rank": 4},
        mlp={"latent": 32, "head_in": 32, "head_size": "S"},
        task_encoder={"model": str(encoder)},
        runtime={"attn_implementation": "sdpa"},
    )
    module.configure_model()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.hypernet.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return TextToLoRA.from_module(module).save_pretrained(tmp_path_factory.mktemp("models") / "t2l")


def test_generate_writes_peft_dir_matching_injection(t2l_dir, tiny_llama_dir, tiny_llama, tmp_path, capsys):
    from peft import PeftModel

    from lora_hyper.base_model import load_base_model

    out = tmp_path / "adapter"
    rc = generate.main(
        ["--model", str(t2l_dir), "--task", "Reverse the words of the text", "--out", str(out)]
    )
    assert rc == 0 and (out / "adapter_config.json").exists()
    assert str(out) in capsys.readouterr().out
    model, tok = tiny_llama
    t2l = TextToLoRA.from_pretrained(t2l_dir)
    lora = t2l.generate_lora("Reverse the words of the text")
    assert lora.delta("v_proj").abs().max() > 1e-3
    enc = tok(["The sky is blue.", "Sort the list 1 2 3"], return_tensors="pt", padding=True)
    with torch.no_grad(), apply_lora(model, lora):
        ours = model(**enc).logits
        peft_model = PeftModel.from_pretrained(
            load_base_model(str(tiny_llama_dir), "sdpa")[0], str(out)
        ).eval()
        theirs = peft_model(**enc).logits
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        plain = model(**enc).logits
    assert (plain - ours).abs().max() > 1e-3


def test_generate_task_file_writes_one_adapter_per_line(t2l_dir, tmp_path):
    from lora_hyper.lora import load_peft

    tasks = tmp_path / "tasks.txt"
    tasks.write_text("Sort the list.\n\nUppercase the text\nCount the letters!\n", encoding="utf-8")
    rc = generate.main(["--model", str(t2l_dir), "--task-file", str(tasks), "--out", str(tmp_path / "out")])
    assert rc == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["1_sort-the-list", "3_uppercase-the-text", "4_count-the-letters"]
    expected = TextToLoRA.from_pretrained(t2l_dir).generate_lora(["Sort the list.", "Uppercase the text"])
    got = load_peft(tmp_path / "out" / "3_uppercase-the-text")
    torch.testing.assert_close(got.delta("q_proj")[0], expected.delta("q_proj")[1], atol=1e-6, rtol=1e-5)


def test_text_to_lora_generate_matches_injected_adapters(t2l_dir, tiny_llama):
    """``generate``: prompt i uses adapter i; one adapter serves every prompt; ``None`` is the plain base."""
    from lora_hyper.generation import generate_answers

    t2l = TextToLoRA.from_pretrained(t2l_dir)
    prompts = ["5 3 9 1", "The sky is blue."]
    lora = t2l.generate_lora(["Sort the numbers.", "Uppercase the text"])
    model, tok = t2l.load_base()
    each = t2l.generate(prompts, lora, max_new_tokens=6)
    assert each == [generate_answers(model, tok, [p], lora.select(i), 6)[0] for i, p in enumerate(prompts)]
    shared = t2l.generate(prompts, lora.select(1), max_new_tokens=6)
    assert shared[1] == each[1]
    assert shared[0] == generate_answers(model, tok, [prompts[0]], lora.select(1), 6)[0]
    assert t2l.generate(prompts, None, max_new_tokens=6) == generate_answers(model, tok, prompts, None, 6)
    with pytest.raises(ValueError, match="3 questions"):
        t2l.generate([*prompts, "x"], lora)


def test_generate_input_prints_one_answer_per_line(t2l_dir, tmp_path, capsys):
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("5 3 9 1\n\nThe sky is blue.\n", encoding="utf-8")
    rc = generate.main(
        [
            "--model",
            str(t2l_dir),
            "--task",
            "Sort the numbers.",
            "--input",
            str(inputs),
            "--max-new-tokens",
            "5",
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and not (tmp_path / "o").exists()
    t2l = TextToLoRA.from_pretrained(t2l_dir)
    answers = t2l.generate(["5 3 9 1", "The sky is blue."], t2l.generate_lora("Sort the numbers."), 5)
    assert out == [
        f"5 3 9 1\t{' '.join(answers[0].split())}",
        f"The sky is blue.\t{' '.join(answers[1].split())}",
    ]
    rc = generate.main(
        [
            "--model",
            str(t2l_dir),
            "--task",
            "Sort the numbers.",
            "--input",
            str(inputs),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and (tmp_path / "o" / "adapter_config.json").exists()
    assert out[:2] == [f"{tmp_path / 'o'}\tSort the numbers.", "# Sort the numbers."] and len(out) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "   "], "--task is empty"),
        (["--task-file", "EMPTY"], "is empty or whitespace only"),
        (["--task-file", "MISSING"], "task file not found"),
        (["--task", "Sort", "--input", "EMPTY"], "is empty or whitespace only"),
        (["--task", "Sort", "--input", "MISSING"], "input file not found"),
        (["--task", "Sort", "--input", "EMPTY", "--max-new-tokens", "0"], "--max-new-tokens"),
    ],
)
def test_generate_bad_input_one_line_exit_2(t2l_dir, tmp_path, capsys, args, message):
    (tmp_path / "EMPTY").write_text("\n  \n")
    args = [str(tmp_path / a) if a in ("EMPTY", "MISSING") else a for a in args]
    rc = generate.main(["--model", str(t2l_dir), *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_generate_needs_out_or_input(t2l_dir, capsys):
    rc = generate.main(["--model", str(t2l_dir), "--task", "Sort"])
    assert rc == 2 and "give --out" in capsys.readouterr().err


def test_generate_missing_model_dir(tmp_path, capsys):
    rc = generate.main(["--model", str(tmp_path / "nope"), "--task", "Sort", "--out", str(tmp_path / "o")])
    assert rc == 2 and "No model directory or shipped model named" in capsys.readouterr().err


def test_t2l_checkpoint_written_from_python_names_its_class(t2l_dir, tiny_llama_dir, tmp_path):
    """A Text-to-LoRA checkpoint saved outside LightningCLI (no ``_class_path`` hparam) still names its class, so
    ``lora-hyper export`` can rebuild it; frozen base weights are left out."""
    from lora_hyper.commands.export import checkpoint_class_path

    module = TextToLoRAModule(
        base_model=str(tiny_llama_dir), lora={"rank": 4}, mlp={"latent": 32, "head_in": 32}
    )
    module.configure_model()
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint_class_path(checkpoint) == "lora_hyper.modules.t2l.TextToLoRAModule"
    assert not any(k.startswith("base_model.") for k in checkpoint["state_dict"])


T2L_TINY_OVERRIDES = """
model:
  init_args:
    base_model: {model}
    task_encoder: {{model: {encoder}}}
    lora: {{rank: 4}}
    mlp: {{latent: 32, head_in: 32}}
    runtime: {{attn_implementation: sdpa}}
data:
  init_args:
    tasks_per_batch: 2
    examples_per_task: 1
    steps_per_epoch: 3
    max_length: 48
trainer:
  max_steps: 3
  log_every_n_steps: 1
  enable_progress_bar: false
  enable_model_summary: false
  default_root_dir: {root}
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args:
        dirpath: {root}/checkpoints
        save_last: true
"""


def test_t2l_fit_export_generate_end_to_end(tiny_llama_dir, tmp_path, capsys):
    """The 2-core SFT recipe shrunk to a tiny model: fit 3 steps -> a checkpoint with a logged loss -> export ->
    ``generate`` writes a PEFT dir and prints answers."""
    import csv

    from lora_hyper.cli import main
    from lora_hyper.testing import save_tiny_text_encoder

    recipe = Path(__file__).resolve().parents[2] / "recipes/t2l/sft_smollm2_cpu.yaml"
    encoder = save_tiny_text_encoder(tmp_path / "encoder")
    overrides = tmp_path / "tiny.yaml"
    overrides.write_text(T2L_TINY_OVERRIDES.format(model=tiny_llama_dir, encoder=encoder, root=tmp_path))
    assert main(["fit", "--config", str(recipe), "--config", str(overrides)]) == 0
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert (
        state["global_step"] == 3 and state["lora_hyper_class"] == "lora_hyper.modules.t2l.TextToLoRAModule"
    )
    with open(next(tmp_path.rglob("metrics.csv")), newline="") as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert losses and all(loss == loss and loss > 0 for loss in losses)
    assert main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "model")]) == 0
    assert (tmp_path / "model" / "lora_hyper.json").is_file()
    capsys.readouterr()
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("5 3 9\n", encoding="utf-8")
    argv = ["--model", str(tmp_path / "model"), "--task", "Sort the numbers.", "--input", str(inputs)]
    assert generate.main([*argv, "--out", str(tmp_path / "adapter"), "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert out[1] == "# Sort the numbers." and out[2].startswith("5 3 9\t")
