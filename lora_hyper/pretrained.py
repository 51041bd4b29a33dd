"""Trained hypernetworks shipped inside the package, loaded by name (``from_pretrained("d2l-smollm2-niah")``).

Each lives in ``lora_hyper/assets/pretrained/<name>/``: the model directory written by ``save_pretrained``
(bf16 safetensors + JSON) plus ``model_card.json``: the command, the commit and the wall time that produced it,
and its benchmark results.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

PRETRAINED_DIR = Path(__file__).resolve().parent / "assets" / "pretrained"
CARD_NAME = "model_card.json"


def shipped_models() -> list[str]:
    """Names of the hypernetworks shipped with this installation."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / CARD_NAME).is_file())


def resolve_model_dir(name_or_dir: str | os.PathLike) -> Path:
    """A model directory: an existing directory as given, else the shipped model of that name.

    An unknown name is an error that lists the shipped names.
    """
    text = str(name_or_dir)
    if not text.strip():
        raise ValueError(f"Empty model name: give a model directory or a shipped name ({_names()}).")
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path} is a file, not a model directory written by save_pretrained.")
    shipped = PRETRAINED_DIR / text
    if "/" not in text and os.sep not in text and (shipped / CARD_NAME).is_file():
        return shipped
    raise FileNotFoundError(
        f"No model directory or shipped model named {text!r}: shipped models are {_names()}; "
        "or give a directory written by save_pretrained."
    )


def _names() -> str:
    names = shipped_models()
    return ", ".join(names) if names else "(none in this installation)"


def model_card(name_or_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``model_card.json`` of a shipped model (or any model dir that has one); ``{}`` when absent."""
    path = resolve_model_dir(name_or_dir) / CARD_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def ship(
    model_dir: str | os.PathLike, name: str, card: dict[str, Any], dest_root: Path = PRETRAINED_DIR
) -> Path:
    """Copy a saved model dir into ``dest_root/name`` with its weights in bf16 and ``card`` as its model card.

    Refuses to overwrite an existing shipped model (delete it first, on purpose).
    """
    import torch
    from safetensors.torch import load_file, save_file

    src = Path(model_dir)
    dest = dest_root / name
    if dest.exists():
        raise FileExistsError(f"{dest} exists: remove it first to re-ship {name!r}.")
    weights = [p for p in src.iterdir() if p.suffix == ".safetensors"]
    if not weights:
        raise FileNotFoundError(
            f"{src} holds no .safetensors weights: pass a directory written by save_pretrained."
        )
    from lora_hyper.file_io import atomic_directory_write

    def write(tmp: Path) -> None:
        for p in src.iterdir():
            if p.suffix == ".safetensors":
                state = {
                    k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in load_file(p).items()
                }
                save_file(state, str(tmp / p.name), metadata={"format": "pt"})
            elif p.suffix == ".json":
                shutil.copy2(p, tmp / p.name)
        (tmp / CARD_NAME).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    return atomic_directory_write(dest, write)  # never replaces: a re-ship needs the old one removed first
