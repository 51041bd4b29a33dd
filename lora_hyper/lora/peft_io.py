"""Save a generated adapter as a standard PEFT directory, and read any PEFT LoRA directory back."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lora_hyper.file_io import atomic_directory_write, read_json_config, validate_safetensors
from lora_hyper.lora.batch import LoRABatch
from lora_hyper.lora.spec import LoRASpec

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
_KEY = re.compile(
    r"^base_model\.model\.(?P<layers>.+?)\.(?P<layer>\d+)\.(?P<path>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$"
)

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "atomic_directory_write", "check_index", "load_peft", "save_peft"]


def check_index(lora: LoRABatch, index: int) -> int:
    """``index`` when it names an adapter of ``lora``; otherwise a one-line ``IndexError`` with the range."""
    n = lora.batch_size
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        valid = f"0..{n - 1}" if n else "none"
        raise IndexError(
            f"adapter index {index!r} is out of range: the batch holds {n} adapter(s) ({valid})."
        )
    return index


def save_peft(
    lora: LoRABatch,
    index: int,
    directory: str | os.PathLike,
    base_model_name: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write sample ``index`` of ``lora`` as a PEFT LoRA directory (``adapter_config.json`` + safetensors).

    The scale is folded into B and ``lora_alpha == r`` without rsLoRA, so any standard loader (PEFT,
    vLLM, ...) reproduces exactly the delta the framework applied. An existing directory is replaced only with
    ``overwrite=True``; an existing file never.
    """
    from peft import LoraConfig

    check_index(lora, index)
    spec = lora.spec
    one = lora.select(index).detach().to("cpu").with_scale_folded()
    ranks = one.ranks
    r = max(ranks.values())
    # Uniform rank: zero rows add nothing to the delta, so pad smaller module types up to r.
    tensors: dict[str, torch.Tensor] = {}
    for m in spec.target_modules:
        a, b = one.A[m][0], one.B[m][0]
        pad = r - a.shape[1]
        if pad:
            a = torch.nn.functional.pad(a, (0, 0, 0, pad))
            b = torch.nn.functional.pad(b, (0, pad))
        for layer in range(spec.n_layers):
            prefix = f"base_model.model.{spec.module_name(m, layer)}"
            tensors[f"{prefix}.lora_A.weight"] = a[layer].contiguous()
            tensors[f"{prefix}.lora_B.weight"] = b[layer].contiguous()
    config = LoraConfig(
        r=r,
        lora_alpha=r,
        use_rslora=False,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=[spec.module_paths[m] for m in spec.target_modules],
        base_model_name_or_path=base_model_name,
        inference_mode=True,
    )

    def write(tmp: Path) -> None:
        config.save_pretrained(str(tmp))
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})

    return atomic_directory_write(directory, write, overwrite=overwrite)


def load_peft(directory: str | os.PathLike, n_layers: int | None = None) -> LoRABatch:
    """Read a PEFT LoRA directory into a ``LoRABatch`` of one sample with the right scale.

    Handles ``lora_alpha != r``, rsLoRA (``alpha / sqrt(r)``), and per-module rank/alpha patterns
    (folded into B). Layers the adapter does not cover get zero factors; ``n_layers`` sets the model's
    layer count when the adapter skips its last layers.
    """
    directory = Path(directory)
    cfg_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not cfg_path.exists():
        raise FileNotFoundError(f"{directory} is not a PEFT adapter directory: {CONFIG_NAME} is missing.")
    if not weights_path.exists():
        raise FileNotFoundError(
            f"{directory}: {WEIGHTS_NAME} is missing (only safetensors adapters are read)."
        )
    cfg = read_json_config(cfg_path, "PEFT adapter config")
    if str(cfg.get("peft_type", "LORA")).upper() != "LORA":
        raise ValueError(f"{directory} holds a {cfg.get('peft_type')} adapter; only LoRA is supported.")
    validate_safetensors(weights_path)
    weights = load_file(str(weights_path))

    layers_path = None
    found: dict[str, dict[int, dict[str, torch.Tensor]]] = {}
    for key, t in weights.items():
        match = _KEY.match(key)
        if not match:
            raise ValueError(f"{directory}: unexpected tensor {key!r} (not a per-layer LoRA weight).")
        if layers_path is None:
            layers_path = match["layers"]
        elif match["layers"] != layers_path:
            raise ValueError(
                f"{directory}: adapters sit under two layer lists ({layers_path}, {match['layers']})."
            )
        found.setdefault(match["path"], {}).setdefault(int(match["layer"]), {})[match["ab"]] = t.float()

    paths = sorted(found)
    leaf = [p.rsplit(".", 1)[-1] for p in paths]
    names = leaf if len(set(leaf)) == len(leaf) else paths
    n = n_layers or 1 + max(layer for per in found.values() for layer in per)

    def module_scale(path: str, rank: int) -> float:
        alpha = cfg.get("lora_alpha", 8)
        for pattern, value in (cfg.get("alpha_pattern") or {}).items():
            if re.fullmatch(f"(.*\\.)?{pattern}", path) or path.endswith(pattern):
                alpha = value
        return alpha / math.sqrt(rank) if cfg.get("use_rslora") else alpha / rank

    A: dict[str, torch.Tensor] = {}
    B: dict[str, torch.Tensor] = {}
    shapes: dict[str, tuple[int, int]] = {}
    scales: dict[str, float] = {}
    for name, path in zip(names, paths):
        per = found[path]
        sample = next(iter(per.values()))
        r, d_in = sample["A"].shape
        d_out = sample["B"].shape[0]
        a = torch.zeros(1, n, r, d_in)
        b = torch.zeros(1, n, d_out, r)
        for layer, ab in per.items():
            a[0, layer], b[0, layer] = ab["A"], ab["B"]
        A[name], B[name], shapes[name] = a, b, (d_in, d_out)
        scales[name] = module_scale(path, r)

    uniform = len(set(scales.values())) == 1
    scale = next(iter(scales.values())) if uniform else 1.0
    if not uniform:
        B = {m: b * scales[m] for m, b in B.items()}
    spec = LoRASpec(
        target_modules=names,
        rank=max(a.shape[2] for a in A.values()),
        scale=scale,
        n_layers=n,
        layers_path=layers_path or "",
        module_paths=dict(zip(names, paths)),
        shapes=shapes,
    )
    return LoRABatch(spec, A, B, scale)
