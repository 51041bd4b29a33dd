"""Doc-to-LoRA from images end to end on tiny random models: the CPU smoke recipe fits 3 text-only steps with a
tiny Gemma-3 VLM's language model as the encoder of a different tiny target, evaluates Imagenette-layout images,
exports; the saved model loads its encoder by itself; `ask --image` answers and rejects bad input in one line."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch

from lora_hyper.cli import main

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "vlm" / "imagenette_smoke_cpu.yaml"
IMAGE = "outputs/vlm_smoke/imagenette/val/n03888605/n03888605_0.png"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Write the smoke assets, run the recipe exactly as documented (relative paths), export the checkpoint."""
    from lora_hyper.testing_vlm import write_smoke_assets

    work = tmp_path_factory.mktemp("vlm_smoke")
    old = os.getcwd()
    os.chdir(work)
    try:
        write_smoke_assets("outputs/vlm_smoke")
        main(["fit", "--config", str(RECIPE), "--trainer.enable_progress_bar=false"])
        ckpt = work / "outputs/vlm_smoke/run/checkpoints/last.ckpt"
        assert ckpt.is_file(), "fit wrote no checkpoint"
        assert main(["export", "--ckpt", str(ckpt), "--out", "outputs/vlm_smoke/model"]) == 0
        yield work
    finally:
        os.chdir(old)


def test_fit_evaluates_images_and_writes_reports(smoke):
    logs = next((smoke / "outputs/vlm_smoke/run/lightning_logs").glob("version_*"))
    rows = list(csv.DictReader((logs / "image_cls_final.csv").open()))
    assert len(rows) == 11 and rows[-1]["class"] == "all" and rows[-1]["n"] == "10"
    assert (logs / "image_cls_step000002.csv").is_file()  # every_n_steps: 2, on a 5-image subset
    assert len(list(csv.DictReader((logs / "image_cls_step000002_samples.csv").open()))) == 5
    assert (logs / "image_cls_final.png").stat().st_size > 1000
    metrics = list(csv.DictReader((logs / "metrics.csv").open()))
    assert any(r.get("image_cls/accuracy") for r in metrics) and any(r.get("train/loss") for r in metrics)


def test_saved_model_records_and_loads_its_vlm_encoder(smoke, monkeypatch):
    from lora_hyper.api.doc_to_lora import DocToLoRA
    from lora_hyper.encoders.vlm import VLMContextEncoder

    monkeypatch.chdir(smoke)
    cfg = json.loads(Path("outputs/vlm_smoke/model/lora_hyper.json").read_text())
    assert cfg["encoder"] == {
        "kind": "vlm",
        "model": "outputs/vlm_smoke/vlm",
        "mode": "per_layer",
        "n_layers": 2,
        "layer_map": "even",
        "layer_ids": [0, 2],
    }
    model = DocToLoRA.from_pretrained("outputs/vlm_smoke/model")
    assert isinstance(model.encoder, VLMContextEncoder) and model.encoder.layer_ids == [0, 2]
    assert model.encoder_tokenizer is not model.tokenizer  # contexts are chunked for the encoder
    images = [IMAGE, IMAGE.replace("n03888605", "n01440764")]
    lora = model.internalize_images(images)
    assert lora.batch_size == 2 and lora.rank == 8  # rank 4 + the bias block
    again = DocToLoRA.from_pretrained("outputs/vlm_smoke/model").internalize_images(images)
    for m in lora.spec.target_modules:
        torch.testing.assert_close(lora.B[m], again.B[m])
    doc = model.internalize(["The picture shows a parachute."])
    assert doc.batch_size == 1
    assert len(model.generate(["What is in this image?"] * 2, lora, max_new_tokens=3)) == 2


def test_ask_image(smoke, monkeypatch, capsys):
    monkeypatch.chdir(smoke)
    code = main(["ask", "--model", "outputs/vlm_smoke/model", "--image", IMAGE, "--question", "What is it?",
                 "--max-new-tokens", "3"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("answer: ") and "image 24x20" in out and "rank 8" in out


def _error(capsys, *argv: str) -> str:
    assert main(["ask", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("lora-hyper: error: ")
    return err


def test_ask_image_bad_input(smoke, monkeypatch, capsys, tiny_llama_dir):
    monkeypatch.chdir(smoke)
    model = ["--model", "outputs/vlm_smoke/model", "--question", "q"]
    Path("notes.jpg").write_text("not an image")
    assert "notes.jpg is not an image" in _error(capsys, *model, "--image", "notes.jpg")
    assert "--image file not found: missing.png" in _error(capsys, *model, "--image", "missing.png")
    Path("cut.png").write_bytes(Path(IMAGE).read_bytes()[:80])
    assert "cut.png is damaged or truncated" in _error(capsys, *model, "--image", "cut.png")
    assert "is a directory" in _error(capsys, *model, "--image", "outputs")
    assert "not allowed with argument" in _error(capsys, *model, "--image", IMAGE, "--doc", "notes.jpg")
    from lora_hyper.api.doc_to_lora import DocToLoRA
    from lora_hyper.modules.d2l import DocToLoRAModule

    text_only = DocToLoRAModule(
        str(tiny_llama_dir), lora={"rank": 2}, perceiver={"latent_dim": 16, "n_latents": 2, "n_blocks": 1}
    )
    text_only.configure_model()
    DocToLoRA.from_module(text_only).save_pretrained("text_only")
    err = _error(capsys, "--model", "text_only", "--question", "q", "--image", IMAGE)
    assert "has no VLM context encoder" in err and "use --doc" in err
    with pytest.raises(ValueError, match="no VLM context encoder"):
        text_only.internalize_images([IMAGE])


def test_contexts_are_tokenized_for_the_encoder(smoke, monkeypatch):
    from lora_hyper.data_modules.documents import DocumentQADataModule

    monkeypatch.chdir(smoke)
    dm = DocumentQADataModule("outputs/vlm_smoke/target", train_files="outputs/vlm_smoke/docqa.jsonl",
                              encoder_model="outputs/vlm_smoke/vlm", batch_size=1, shuffle=False)  # fmt: skip
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    ctx = dm.ctx_tokenizer.decode(batch["ctx_input_ids"][0], skip_special_tokens=False)
    question = dm.tokenizer.decode(batch["input_ids"][0], skip_special_tokens=False)
    assert "<start_of_turn>user\nThe picture shows a tench.<end_of_turn>" in ctx  # the VLM's template
    assert "<|im_start|>user" in question  # the target's template
