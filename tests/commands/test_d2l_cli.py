"""Doc-to-LoRA from the command line: recipes parse, a tiny recipe fits end to end, export/internalize/ask work,
and bad input gives one error line with exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from lora_hyper.cli import main

ROOT = Path(__file__).resolve().parents[2]

TINY_OVERRIDES = """
model:
  init_args:
    base_model: {model}
    lora: {{rank: 4}}
    encoder: {{chunk_length: 48}}
    perceiver: {{latent_dim: 32, n_latents: 4, n_blocks: 1}}
    optim: {{lr: 1.0e-3}}
data:
  init_args:
    train_lengths: [16, 48]
    val_bins: [48]
    val_samples_per_bin: 2
    batch_size: 2
trainer:
  max_steps: 3
  val_check_interval: 3
  limit_val_batches: 1
  num_sanity_val_steps: 1
  enable_progress_bar: false
  enable_model_summary: false
  default_root_dir: {root}
  callbacks:
    - class_path: lora_hyper.callbacks.niah.NIAHEvaluation
      init_args:
        bins: [32, 96]
        samples_per_bin: 2
        chunk_length: 48
        batch_size: 2
        max_new_tokens: 4
        output_dir: {root}/niah
"""


def test_fsdp1_policy_wraps_decoder_layers_and_hypernet(tiny_llama):
    from lora_hyper.strategies import DecoderLayerWrapPolicy

    model, _ = tiny_llama
    policy = DecoderLayerWrapPolicy()
    names = {c.__name__ for c in policy.resolve(model)}
    assert names == {"LlamaDecoderLayer"}
    assert policy(model.model.layers[0], recurse=False) and not policy(model.model.norm, recurse=False)
    from lora_hyper.hypernets.d2l import DocToLoRAHypernet
    from lora_hyper.hypernets.t2l import TextToLoRAHypernet

    class Unit(torch.nn.Module):
        fsdp_unit = True

    assert policy(Unit(), recurse=False) and DocToLoRAHypernet.fsdp_unit and TextToLoRAHypernet.fsdp_unit
    assert DecoderLayerWrapPolicy(class_names=["LayerNorm"])(torch.nn.LayerNorm(2), recurse=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_llama_dir):
    """Fit the CPU NIAH recipe shrunk to a tiny model for 3 steps, then export the checkpoint."""
    root = tmp_path_factory.mktemp("fit")
    overrides = root / "tiny.yaml"
    overrides.write_text(TINY_OVERRIDES.format(model=tiny_llama_dir, root=root))
    main(["fit", "--config", str(ROOT / "recipes/d2l/niah_smollm2.yaml"), "--config", str(overrides)])
    ckpts = sorted(root.rglob("*.ckpt"))
    assert ckpts, "fit wrote no checkpoint"
    model_dir = root / "model"
    assert main(["export", "--ckpt", str(ckpts[-1]), "--out", str(model_dir)]) == 0
    return root, model_dir, tiny_llama_dir


def test_fit_writes_checkpoint_niah_report_and_exports(trained):
    root, model_dir, _ = trained
    csv = (root / "niah" / "niah_final.csv").read_text().splitlines()
    assert csv[0].startswith("bin,n_tokens,accuracy") and len(csv) == 3
    cfg = yaml.safe_load((model_dir / "lora_hyper.json").read_text())
    assert cfg["spec"]["rank"] == 4 and cfg["chunk_length"] == 48 and cfg["encoder"]["mode"] == "early_exit"
    state = torch.load(next(root.rglob("*.ckpt")), map_location="cpu", weights_only=True)
    assert not any(k.startswith("base_model.") for k in state["state_dict"])  # frozen weights left out
    assert state["lora_hyper_class"] == "lora_hyper.modules.d2l.DocToLoRAModule"


def test_internalize_writes_peft_dirs_matching_injection(trained, tmp_path, capsys):
    from peft import PeftModel

    from lora_hyper.api.doc_to_lora import DocToLoRA
    from lora_hyper.base_model import load_base_model
    from lora_hyper.lora import apply_lora

    _, model_dir, base_dir = trained
    docs = {"alpha": "The special magic number is 1234. The sky is blue. " * 4, "beta": "The grass is green."}
    for name, text in docs.items():
        (tmp_path / f"{name}.txt").write_text(text)
    out = tmp_path / "adapters"
    argv = [
        "internalize",
        "--model",
        str(model_dir),
        "--doc",
        str(tmp_path / "alpha.txt"),
        str(tmp_path / "beta.txt"),
    ]
    assert main([*argv, "--out", str(out), "--rank-budget", "6"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["alpha", "beta"]
    d2l = DocToLoRA.from_pretrained(model_dir)
    with torch.no_grad():
        d2l.hypernet.scale_B.fill_(0.5)  # the 3-step model is near zero; make the comparison meaningful
    lora = d2l.internalize(list(docs.values()), rank_budget=6)
    d2l.save_adapter(lora, 0, out / "alpha", overwrite=True)  # replaces the CLI's adapter
    base, tok = load_base_model(str(base_dir), attn_implementation="sdpa")
    ids = tok(["What is the special magic number?"], return_tensors="pt")["input_ids"]
    with torch.no_grad(), apply_lora(base, lora.select(0)):
        ours = base(input_ids=ids).logits
    plain = base(input_ids=ids).logits
    peft_model = PeftModel.from_pretrained(base, str(out / "alpha")).eval()
    with torch.no_grad():
        theirs = peft_model(input_ids=ids).logits
    assert (ours - plain).abs().max() > 1e-4
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)


def test_ask_prints_answer_time_and_sizes(trained, tmp_path, capsys):
    _, model_dir, _ = trained
    doc = tmp_path / "doc.txt"
    doc.write_text("The special magic number is 2024. " * 3)
    code = main(
        [
            "ask",
            "--model",
            str(model_dir),
            "--doc",
            str(doc),
            "--question",
            "What is the number?",
            "--max-new-tokens",
            "4",
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and lines[0].startswith("answer:")
    assert lines[1].startswith("internalize: ") and lines[1].endswith("document tokens)")
    assert lines[2].startswith("adapter: ") and "vs KV cache: " in lines[2]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty", "empty or whitespace only"),
        ("blank", "empty or whitespace only"),
        ("latin1", "not valid UTF-8"),
        ("missing", "document file not found"),
        ("no_model", "No model directory or shipped model named"),
        ("ask_without_doc", "one of the arguments --doc --image is required"),
        ("export_missing", "checkpoint file not found"),
        ("bad_budget", "--rank-budget must be >= 1"),
    ],
)
def test_bad_input_one_error_line_exit_2(case, message, tmp_path, capsys):
    good = tmp_path / "good.txt"
    good.write_text("The sky is blue.")
    files = {"empty": "", "blank": "  \n\t ", "latin1": "caf\xe9".encode("latin-1")}
    out = tmp_path / "out"
    if case in files:
        path = tmp_path / f"{case}.txt"
        content = files[case]
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        argv = ["internalize", "--model", str(tmp_path), "--doc", str(good), str(path), "--out", str(out)]
    elif case == "missing":
        argv = [
            "internalize",
            "--model",
            str(tmp_path),
            "--doc",
            str(tmp_path / "nope.txt"),
            "--out",
            str(out),
        ]
    elif case == "no_model":
        argv = ["internalize", "--model", str(tmp_path / "nomodel"), "--doc", str(good), "--out", str(out)]
    elif case == "ask_without_doc":
        argv = ["ask", "--model", str(tmp_path), "--question", "What?"]
    elif case == "export_missing":
        argv = ["export", "--ckpt", str(tmp_path / "x.ckpt"), "--out", str(out)]
    else:
        argv = [
            "internalize",
            "--model",
            str(tmp_path),
            "--doc",
            str(good),
            "--out",
            str(out),
            "--rank-budget",
            "0",
        ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_demo_with_a_trained_model_skips_training(trained, tmp_path, capsys):
    from lora_hyper import demo

    _, model_dir, _ = trained
    assert demo.main(["--model", str(model_dir), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"training:        none (trained model {model_dir})" in out
    assert "1024 tokens:" in out and "16384 tokens:" in out and "(n=5)" in out  # one bin past the window
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert not (tmp_path / "train").exists()
    with pytest.raises(FileNotFoundError, match="not a Doc-to-LoRA model directory"):
        demo.main(["--model", str(tmp_path), "--out", str(tmp_path)])


def test_curriculum_after_reading_without_trigger_fails_before_fit(tmp_path, tiny_llama_dir, capsys):
    """The 30-minute recipe with its reading trigger switched off: one line, exit 2, nothing written."""
    root = tmp_path / "run"
    overrides = tmp_path / "tiny.yaml"
    overrides.write_text(
        f"model:\n  init_args:\n    base_model: {tiny_llama_dir}\n    loss: {{read_loss: 0.0}}\n"
        f"data:\n  init_args:\n    batch_size: 2\ntrainer:\n  max_steps: 1\n  default_root_dir: {root}\n"
    )
    recipe = ROOT / "recipes/d2l/niah_smollm2_cpu_30min.yaml"
    assert main(["fit", "--config", str(recipe), "--config", str(overrides)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a module with a reading trigger" in err[0], err
    assert not root.exists() and not Path("outputs/d2l_niah_smollm2_cpu_30min").exists()
