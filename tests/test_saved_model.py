"""One saved-model format for every hypernetwork: writer, reader, kinds, versions, and the legacy layouts."""

from __future__ import annotations

import json

import pytest
import torch

from lora_hyper.saved_model import (
    CONFIG_FILE,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    detect_kind,
    model_files,
    read_model_config,
    write_model,
)
from lora_hyper.validation import InputError, check_model_dir

T2L_CONFIG = {"base_model": "b", "task_encoder": {}, "hypernet": {}}


def test_write_then_read_round_trip(tmp_path):
    out = write_model(tmp_path / "m", "text-to-lora", T2L_CONFIG, {"w": torch.ones(2, 2)})
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE])
    cfg, weights = read_model_config(out, "text-to-lora")
    assert cfg["format"] == "lora-hyper/text-to-lora" and cfg["format_version"] == FORMAT_VERSION
    assert weights == out / WEIGHTS_FILE and detect_kind(out) == "text-to-lora"
    with pytest.raises(FileExistsError, match="overwrite"):
        write_model(out, "text-to-lora", T2L_CONFIG, {"w": torch.ones(1)})


def test_the_other_kind_a_newer_version_and_missing_keys_fail_in_one_line(tmp_path):
    out = write_model(tmp_path / "m", "text-to-lora", T2L_CONFIG, {"w": torch.ones(1)})
    with pytest.raises(InputError, match="is a Text-to-LoRA model directory; this needs a Doc-to-LoRA one"):
        check_model_dir(out, "doc-to-lora")
    cfg = json.loads((out / CONFIG_FILE).read_text())
    (out / CONFIG_FILE).write_text(json.dumps({**cfg, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(InputError, match="newer lora-hyper"):
        read_model_config(out, "text-to-lora")
    (out / CONFIG_FILE).write_text(json.dumps({"format": "lora-hyper/text-to-lora", "base_model": "b"}))
    with pytest.raises(InputError, match=r"lacks \['task_encoder', 'hypernet'\]"):
        read_model_config(out, "text-to-lora")
    (out / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="hypernet.safetensors is missing"):
        model_files(out, "text-to-lora")
    with pytest.raises(ValueError, match="Unknown model kind"):
        model_files(out, "image-to-lora")


@pytest.mark.parametrize(
    "kind,config_name,weights_name,version_key",
    [
        ("doc-to-lora", "doc_to_lora.json", "hypernet.safetensors", "version"),
        ("text-to-lora", "t2l_config.json", "t2l_model.safetensors", "format_version"),
    ],
)
def test_legacy_layouts_still_read(tmp_path, kind, config_name, weights_name, version_key):
    from safetensors.torch import save_file

    required = {
        "doc-to-lora": {"base_model": "b", "spec": {}, "hypernet": {}, "encoder": {}},
        "text-to-lora": T2L_CONFIG,
    }[kind]
    (tmp_path / config_name).write_text(
        json.dumps({"format": f"lora-hyper/{kind}", version_key: 1, **required})
    )
    save_file({"w": torch.ones(1)}, str(tmp_path / weights_name))
    assert detect_kind(tmp_path) == kind
    cfg, weights = read_model_config(tmp_path, kind)
    assert weights.name == weights_name and cfg["base_model"] == "b"
    other = "text-to-lora" if kind == "doc-to-lora" else "doc-to-lora"
    with pytest.raises(InputError, match="this needs a"):
        check_model_dir(tmp_path, other)
