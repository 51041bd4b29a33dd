"""Shipped hypernetworks: resolution by name, clear errors listing the shipped names, bf16 shipping with a card."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from lora_hyper import pretrained
from lora_hyper.pretrained import CARD_NAME, resolve_model_dir, ship, shipped_models


def test_directories_resolve_as_given(tmp_path):
    assert resolve_model_dir(tmp_path) == tmp_path
    assert resolve_model_dir(str(tmp_path)) == tmp_path


def test_unknown_name_lists_the_shipped_ones(monkeypatch, tmp_path):
    (tmp_path / "d2l-x").mkdir()
    (tmp_path / "d2l-x" / CARD_NAME).write_text("{}")
    (tmp_path / "not-a-model").mkdir()  # no card: not listed
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    assert shipped_models() == ["d2l-x"]
    assert resolve_model_dir("d2l-x") == tmp_path / "d2l-x"
    with pytest.raises(FileNotFoundError, match="shipped models are d2l-x"):
        resolve_model_dir("d2l-y")
    with pytest.raises(ValueError, match="Empty model name"):
        resolve_model_dir("  ")
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        resolve_model_dir(f)


def test_ship_writes_bf16_weights_config_and_card_and_never_overwrites(tmp_path):
    src = tmp_path / "model"
    src.mkdir()
    save_file({"w": torch.randn(4, 4), "step": torch.tensor([3])}, str(src / "hypernet.safetensors"))
    (src / "doc_to_lora.json").write_text('{"format": "x"}')
    dest_root = tmp_path / "pretrained"
    dest_root.mkdir()
    out = ship(src, "d2l-test", {"command": "python train.py", "commit": "abc"}, dest_root)
    state = load_file(str(out / "hypernet.safetensors"))
    assert state["w"].dtype == torch.bfloat16 and state["step"].dtype == torch.long
    assert json.loads((out / CARD_NAME).read_text())["commit"] == "abc"
    assert (out / "doc_to_lora.json").read_text() == '{"format": "x"}'
    with pytest.raises(FileExistsError, match="remove it first"):
        ship(src, "d2l-test", {}, dest_root)
    assert sorted(p.name for p in dest_root.iterdir()) == ["d2l-test"]  # no temporary left behind


def test_doc_to_lora_from_pretrained_unknown_name_is_one_clear_error():
    from lora_hyper.api.doc_to_lora import DocToLoRA

    with pytest.raises(FileNotFoundError, match="shipped models are"):
        DocToLoRA.from_pretrained("d2l-no-such-model")
