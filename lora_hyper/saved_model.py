"""One on-disk format for every trained hypernetwork, with one reader/writer and one validation path.

A model directory holds ``lora_hyper.json`` (``{"format": "lora-hyper/<kind>", "format_version": 2, ...}``) and
``hypernet.safetensors`` (never a pickle), written atomically. Directories from before format 2 still load:
Doc-to-LoRA ``doc_to_lora.json`` + ``hypernet.safetensors`` (``"version": 1``) and Text-to-LoRA
``t2l_config.json`` + ``t2l_model.safetensors`` (``"format_version": 1``).

Nothing here imports torch at module level: the CLI checks model directories before loading anything heavy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lora_hyper.file_io import atomic_directory_write, read_json_config, validate_safetensors
from lora_hyper.validation import InputError, MissingPathError

CONFIG_FILE = "lora_hyper.json"
WEIGHTS_FILE = "hypernet.safetensors"
FORMAT_VERSION = 2


@dataclass(frozen=True)
class ModelKind:
    """A kind of saved hypernetwork: its name, label, the config keys it needs and its pre-2 file names."""

    name: str
    label: str
    required: tuple[str, ...]
    legacy_files: tuple[str, str]

    @property
    def format(self) -> str:
        return f"lora-hyper/{self.name}"


KINDS: dict[str, ModelKind] = {
    "doc-to-lora": ModelKind(
        "doc-to-lora",
        "Doc-to-LoRA",
        ("base_model", "spec", "hypernet", "encoder"),
        ("doc_to_lora.json", "hypernet.safetensors"),
    ),
    "text-to-lora": ModelKind(
        "text-to-lora",
        "Text-to-LoRA",
        ("base_model", "task_encoder", "hypernet"),
        ("t2l_config.json", "t2l_model.safetensors"),
    ),
}


def _kind(kind: str) -> ModelKind:
    if kind not in KINDS:
        raise ValueError(f"Unknown model kind {kind!r}: use one of {sorted(KINDS)}.")
    return KINDS[kind]


def _format_of(config_path: Path) -> str | None:
    """The ``format`` of a config file, ``None`` when it cannot be read (the full read reports why)."""
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get("format") if isinstance(data, dict) else None


def detect_kind(path: Path) -> str | None:
    """The kind of the model directory ``path`` (current or legacy layout), ``None`` when it is neither."""
    if (path / CONFIG_FILE).is_file():
        fmt = _format_of(path / CONFIG_FILE)
        return next((k.name for k in KINDS.values() if k.format == fmt), None)
    return next((k.name for k in KINDS.values() if (path / k.legacy_files[0]).is_file()), None)


def model_files(name_or_dir: str | os.PathLike, kind: str) -> tuple[Path, Path, Path]:
    """``(directory, config file, weights file)`` of a saved model of ``kind`` (a directory or shipped name).

    Cheap (no torch); a one-line :class:`InputError` when the directory is of the other kind or lacks a file.
    """
    from lora_hyper.pretrained import resolve_model_dir

    k = _kind(kind)
    try:
        path = resolve_model_dir(name_or_dir)
    except FileNotFoundError as e:
        raise MissingPathError(str(e)) from None
    except (NotADirectoryError, ValueError) as e:
        raise InputError(str(e)) from None
    found = detect_kind(path)
    if found is not None and found != kind:
        raise InputError(
            f"{path} is a {KINDS[found].label} model directory; this needs a {k.label} one "
            "(written by its save_pretrained)."
        )
    if (path / CONFIG_FILE).is_file():
        config, weights = path / CONFIG_FILE, path / WEIGHTS_FILE
    elif (path / k.legacy_files[0]).is_file():
        config, weights = path / k.legacy_files[0], path / k.legacy_files[1]
    else:
        raise MissingPathError(f"{path} is not a {k.label} model directory ({CONFIG_FILE} is missing).")
    if not weights.is_file():
        raise MissingPathError(f"{path} is not a {k.label} model directory ({weights.name} is missing).")
    return path, config, weights


def read_model_config(name_or_dir: str | os.PathLike, kind: str) -> tuple[dict[str, Any], Path]:
    """The validated config of a saved model of ``kind`` and its weights file (header checked, not loaded).

    One line for: a missing or broken file, another format, a newer format version, a missing key.
    """
    k = _kind(kind)
    path, config_path, weights = model_files(name_or_dir, kind)
    cfg = read_json_config(config_path, f"{k.label} config")
    if cfg.get("format") != k.format:
        raise InputError(f"{config_path} holds {cfg.get('format')!r}, not a {k.label} model ({k.format}).")
    version = int(cfg.get("format_version", cfg.get("version", 1)))
    if version > FORMAT_VERSION:
        raise InputError(
            f"{path} was written by a newer lora-hyper (format {version} > {FORMAT_VERSION}); upgrade lora-hyper."
        )
    missing = [key for key in k.required if key not in cfg]
    if missing:
        raise InputError(f"{config_path} lacks {missing}; re-save the model with save_pretrained.")
    validate_safetensors(weights)
    return cfg, weights


def write_model(
    directory: str | os.PathLike,
    kind: str,
    config: dict[str, Any],
    state: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write ``lora_hyper.json`` (format and version added) + ``hypernet.safetensors`` atomically."""
    from safetensors.torch import save_file

    k = _kind(kind)
    body = {key: v for key, v in config.items() if key not in ("format", "format_version", "version")}
    text = json.dumps(
        {"format": k.format, "format_version": FORMAT_VERSION, **body}, indent=2, sort_keys=True
    )
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state.items()}

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / CONFIG_FILE).write_text(text + "\n", encoding="utf-8")

    return atomic_directory_write(directory, write, overwrite=overwrite)
