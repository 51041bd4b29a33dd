"""Doc-to-LoRA inference: internalize documents into adapters, answer without them, save/load model dirs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from lora_hyper.base_model import load_base_model, native_window
from lora_hyper.encoders.context import ContextEncoder
from lora_hyper.encoders.models import load_context_encoder
from lora_hyper.encoders.vlm import VLMContextEncoder
from lora_hyper.generation import generate_answers
from lora_hyper.hypernets.d2l import DocToLoRAHypernet, DocToLoRAHypernetConfig
from lora_hyper.internalize import (  # noqa: F401  (re-exported: the functional API next to the class)
    default_chunk_length,
    internalize_documents,
    internalize_images,
    length_sorted_slices,
)
from lora_hyper.lora import LoRABatch, LoRASpec, save_peft
from lora_hyper.pretrained import resolve_model_dir
from lora_hyper.saved_model import FORMAT_VERSION, KINDS, read_model_config, write_model
from lora_hyper.strategies import unsharded

KIND = "doc-to-lora"
FORMAT = KINDS[KIND].format


def _encoder_settings(encoder: ContextEncoder, encoder_model_name: str | None) -> dict[str, Any]:
    kind = "vlm" if isinstance(encoder, VLMContextEncoder) else "causal_lm"
    return {
        "mode": encoder.mode,
        "n_layers": encoder.n_layers,
        "model": encoder_model_name,
        "kind": kind,
        "layer_map": encoder.layer_map,
        "layer_ids": list(encoder.layer_ids),
    }


class DocToLoRA:
    """A trained Doc-to-LoRA: frozen base + context encoder + hypernetwork, for inference.

    Build with :meth:`from_pretrained` (a model dir) or :meth:`from_module` (a trained
    ``DocToLoRAModule``); :meth:`save_pretrained` writes safetensors + JSON (never a pickle).
    """

    def __init__(
        self,
        base_model: nn.Module,
        tokenizer: Any,
        encoder: ContextEncoder,
        hypernet: DocToLoRAHypernet,
        base_model_name: str,
        encoder_model_name: str | None = None,
        chunk_length: int | None = None,
        rank_budget: int | None = None,
        system_prompt: str | None = None,
        encoder_tokenizer: Any = None,
    ) -> None:
        self.base_model = base_model
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.hypernet = hypernet.eval()
        self.base_model_name = base_model_name
        self.encoder_model_name = encoder_model_name
        self.chunk_length = chunk_length
        self.rank_budget = rank_budget
        self.system_prompt = system_prompt
        self.encoder_tokenizer = encoder_tokenizer if encoder_tokenizer is not None else tokenizer

    @property
    def spec(self) -> LoRASpec:
        return self.hypernet.spec

    @property
    def native_window(self) -> int:
        return native_window(self.base_model)

    # ------------------------------------------------------------------ use
    def internalize(
        self,
        docs: str | Sequence[str],
        chunk_length: int | None = None,
        rank_budget: int | None = None,
        include_bias: bool = True,
    ) -> LoRABatch:
        """One adapter per document (any length; chunked at ``chunk_length``, compressed to ``rank_budget``;
        ``include_bias=False``: the documents' own deltas without the context-free bias block)."""
        return internalize_documents(
            self.encoder,
            self.hypernet,
            self.encoder_tokenizer,
            docs,
            self.chunk_length if chunk_length is None else chunk_length,
            self.rank_budget if rank_budget is None else rank_budget,
            progress=True,
            system=self.system_prompt,
            include_bias=include_bias,
        )

    def internalize_images(
        self, images: Any, rank_budget: int | None = None, include_bias: bool = True
    ) -> LoRABatch:
        """One adapter per image (paths, PIL images or arrays), read by the VLM context encoder; the text-only
        base then answers about each image without seeing it."""
        return internalize_images(
            self.encoder,
            self.hypernet,
            images,
            self.rank_budget if rank_budget is None else rank_budget,
            system="" if self.system_prompt is None else self.system_prompt,
            include_bias=include_bias,
        )

    def generate(
        self, questions: str | Sequence[str], adapters: LoRABatch | None, max_new_tokens: int = 32, **kw: Any
    ) -> list[str]:
        """Answers to ``questions`` with the documents internalized in ``adapters`` (not in the prompt)."""
        kw.setdefault("system", self.system_prompt)
        return generate_answers(self.base_model, self.tokenizer, questions, adapters, max_new_tokens, **kw)

    def save_adapter(
        self, lora: LoRABatch, index: int, directory: str | os.PathLike, overwrite: bool = False
    ) -> Path:
        """Write adapter ``index`` of ``lora`` as a PEFT LoRA dir (replace a dir only with ``overwrite``)."""
        return save_peft(lora, index, directory, self.base_model_name, overwrite=overwrite)

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_module(cls, module: Any) -> DocToLoRA:
        """Wrap a trained ``DocToLoRAModule`` (after ``configure_model``) without copying weights."""
        if getattr(module, "hypernet", None) is None:
            raise ValueError("The module has no hypernetwork yet: call configure_model() first.")
        return cls(
            module.base_model,
            module.tokenizer,
            module.context_encoder,
            module.hypernet,
            module.base_model_name,
            module.encoder_model,
            module.chunk_length,
            module.rank_budget,
            getattr(module, "system_prompt", None),
            getattr(module, "encoder_tokenizer", None),
        )

    def config_dict(self) -> dict[str, Any]:
        """What ``lora_hyper.json`` records: everything needed to rebuild this model around its weights."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "base_model": self.base_model_name,
            "spec": self.spec.to_dict(),
            "hypernet": self.hypernet.config.to_dict(),
            "encoder": _encoder_settings(self.encoder, self.encoder_model_name),
            "chunk_length": self.chunk_length,
            "rank_budget": self.rank_budget,
            "system_prompt": self.system_prompt,
        }

    def save_pretrained(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write ``lora_hyper.json`` + ``hypernet.safetensors`` atomically (replacing: ``overwrite``)."""
        with unsharded(self.hypernet):
            state = {k: v.detach().to("cpu").clone() for k, v in self.hypernet.state_dict().items()}
        return write_model(directory, KIND, self.config_dict(), state, overwrite=overwrite)

    @staticmethod
    def read_config(directory: str | os.PathLike) -> dict[str, Any]:
        """The validated JSON config of a model dir (or shipped name), weights header checked too; one line
        naming the file when either is missing, broken or not Doc-to-LoRA (any format version)."""
        return read_model_config(directory, KIND)[0]

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike,
        device: str | torch.device | None = None,
        base_model: str | None = None,
        attn_implementation: str = "auto",
        dtype: str = "auto",
    ) -> DocToLoRA:
        """Load a model dir written by :meth:`save_pretrained`, or a shipped model by name (e.g.
        ``"d2l-smollm2-niah"``; :func:`lora_hyper.pretrained.shipped_models` lists them). Safetensors only;
        nothing is unpickled.

        ``base_model`` overrides where the base weights load from; a base model whose name or layer
        shapes differ from the one the dir was built for is an error.
        """
        directory = resolve_model_dir(directory)
        cfg, weights_path = read_model_config(directory, KIND)
        saved_name = cfg["base_model"]
        name = base_model or saved_name
        if base_model is not None and Path(base_model).name != Path(saved_name).name:
            raise ValueError(f"{directory} was built for base model {saved_name!r}, not {base_model!r}.")
        model, tokenizer = load_base_model(name, attn_implementation, dtype, device=device)
        saved_spec = LoRASpec.from_dict(cfg["spec"])
        spec = LoRASpec(saved_spec.target_modules, saved_spec.rank, saved_spec.scale).discover(model)
        if (spec.n_layers, spec.shapes) != (saved_spec.n_layers, saved_spec.shapes):
            raise ValueError(
                f"{directory} was built for another base model ({saved_spec.n_layers} layers, shapes "
                f"{saved_spec.shapes}) than {name!r} ({spec.n_layers} layers, shapes {spec.shapes})."
            )
        enc = cfg["encoder"]
        n_out = spec.n_layers if enc["mode"] == "per_layer" else None
        early = enc["n_layers"] if enc["mode"] == "early_exit" else None
        layer_map = enc.get("layer_map", "even")  # dirs saved before layer maps existed used "even"
        enc_tokenizer = tokenizer
        if enc.get("model"):  # a separate encoder (a causal LM or a VLM) loads by itself
            encoder, enc_tokenizer = load_context_encoder(
                enc["model"], enc["mode"], early, n_out, layer_map, attn_implementation, dtype, device
            )
        else:
            encoder = ContextEncoder(model, enc["mode"], early, n_out, layer_map)
        hcfg = DocToLoRAHypernetConfig.from_dict(cfg["hypernet"])
        if hcfg.input_dim != encoder.hidden_size:
            raise ValueError(
                f"{directory}: hypernetwork input width {hcfg.input_dim} != encoder hidden size {encoder.hidden_size}."
            )
        hypernet = DocToLoRAHypernet(hcfg, spec)
        state = load_file(str(weights_path))
        try:
            hypernet.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{directory}: hypernetwork weights do not match its config: {e}") from None
        param = next(model.parameters())
        hypernet.to(device=param.device)
        return cls(
            model,
            tokenizer,
            encoder,
            hypernet,
            saved_name,
            enc.get("model"),
            cfg.get("chunk_length"),
            cfg.get("rank_budget"),
            cfg.get("system_prompt"),  # absent in dirs saved before it existed: the template's default
            enc_tokenizer,
        )
