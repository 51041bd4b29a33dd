"""``lora-hyper export``: a Lightning checkpoint -> an inference model directory (safetensors + JSON)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from lora_hyper.commands.common import ArgumentParser, CommandError, run_command
from lora_hyper.file_io import check_output_path

_PRIVATE_HPARAMS = ("_class_path", "_instantiator")


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise CommandError(f"cannot import {path!r} named by the checkpoint: {e}") from None


def checkpoint_class_path(ckpt: dict[str, Any]) -> str:
    """The LightningModule class a checkpoint was saved from (recorded by the module or by LightningCLI)."""
    hparams = ckpt.get("hyper_parameters") or {}
    path = ckpt.get("lora_hyper_class") or hparams.get("_class_path")
    if not path:
        raise CommandError("the checkpoint does not name its LightningModule class (no lora_hyper_class).")
    return str(path)


def module_from_checkpoint(path: str | Path) -> Any:
    """Rebuild the trained LightningModule of a checkpoint: hparams -> __init__, configure_model, weights."""
    import torch

    p = Path(path)
    if p.is_dir():
        raise CommandError(f"{p} is a sharded checkpoint directory; export needs a single-file checkpoint.")
    if not p.is_file():
        raise CommandError(f"checkpoint file not found: {p}")
    try:
        ckpt = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with arbitrary objects, or not a checkpoint at all
        raise CommandError(f"cannot read {p} as a Lightning checkpoint with weights_only=True: {e}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CommandError(f"{p} is not a Lightning checkpoint (no state_dict).")
    cls = _import(checkpoint_class_path(ckpt))
    hparams = {k: v for k, v in (ckpt.get("hyper_parameters") or {}).items() if k not in _PRIVATE_HPARAMS}
    if hasattr(cls, "arguments_from_hparams"):  # grouped arguments, or the flat layout of older checkpoints
        module = cls(**cls.arguments_from_hparams(hparams))
    else:
        accepted = inspect.signature(cls.__init__).parameters
        module = cls(**{k: v for k, v in hparams.items() if k in accepted})
    module.configure_model()
    state = ckpt["state_dict"]
    trainable = {n for n, q in module.named_parameters() if q.requires_grad}
    missing = sorted(trainable - set(state))
    if missing:
        raise CommandError(f"{p} lacks trained weights {missing[:3]}{'...' if len(missing) > 3 else ''}.")
    module.load_state_dict(state, strict=False)
    return module


def export_checkpoint(ckpt: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write the inference model directory of a checkpoint (dispatch on its LightningModule class).

    An existing ``out`` directory is replaced only with ``overwrite``; an existing file never (both checked
    before the checkpoint is read).
    """
    check_output_path(out, overwrite)
    module = module_from_checkpoint(ckpt)
    if not hasattr(module, "inference_model"):  # each hypernetwork module says what it exports
        raise CommandError(
            f"no exporter for {type(module).__name__}: only hypernetwork modules (Doc-to-LoRA, Text-to-LoRA) "
            "export a model directory."
        )
    return module.inference_model().save_pretrained(out, overwrite=overwrite)


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="lora-hyper export", description="Convert a Lightning checkpoint into a model dir."
    )
    p.add_argument("--ckpt", required=True, help="Lightning checkpoint file (.ckpt)")
    p.add_argument("--out", required=True, help="model directory to write (atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it is an existing directory")
    return p


def _export(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    print(export_checkpoint(args.ckpt, args.out, overwrite=args.overwrite))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lora-hyper export``."""
    return run_command(_export, list(argv or []))
