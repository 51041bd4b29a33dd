"""Doc-to-LoRA inference: internalize documents into adapters, answer without them, save/load model dirs."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lora_hyper.base_model import load_base_model, native_window
from lora_hyper.chunking import encode_documents
from lora_hyper.context_encoder import ContextEncoder
from lora_hyper.encoder_models import load_context_encoder
from lora_hyper.file_io import read_json_config, validate_safetensors
from lora_hyper.generation import generate_answers
from lora_hyper.hypernets.d2l import DocToLoRAHypernet, DocToLoRAHypernetConfig, group_sizes
from lora_hyper.lora import LoRABatch, LoRASpec, atomic_directory_write, save_peft
from lora_hyper.pretrained import resolve_model_dir
from lora_hyper.validation import InputError, check_texts, positive
from lora_hyper.vlm_encoder import VLMContextEncoder

FORMAT = "lora-hyper/doc-to-lora"
CONFIG_NAME = "doc_to_lora.json"
WEIGHTS_NAME = "hypernet.safetensors"
CHUNK_MARGIN = (
    128  # tokens left for the chat wrapping of a chunk when the chunk length defaults to the window
)


@contextlib.contextmanager
def unsharded(module: nn.Module) -> Iterator[nn.Module]:
    """Gather an FSDP2 (``fully_shard``) module's parameters for direct use; a no-op for plain modules."""
    unshard = getattr(module, "unshard", None)
    if unshard is None:
        yield module
        return
    unshard()
    try:
        yield module
    finally:
        module.reshard()


def default_chunk_length(encoder: ContextEncoder) -> int:
    """The longest chunk the encoder reads within its native window (leaving room for the chat wrapping)."""
    return max(16, native_window(encoder.model) - CHUNK_MARGIN)


def length_sorted_slices(
    lengths: Sequence[int], batch_size: int, max_padding: float = 0.1
) -> list[list[int]]:
    """Chunk indices in slices of at most ``batch_size``, in order of length; a slice also ends where the next
    chunk is more than ``max_padding`` longer than its shortest, so padding never costs more than that."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    slices: list[list[int]] = []
    for i in order:
        if (
            slices
            and len(slices[-1]) < batch_size
            and lengths[i] <= (1 + max_padding) * lengths[slices[-1][0]]
        ):
            slices[-1].append(i)
        else:
            slices.append([i])
    return slices


@torch.no_grad()
def internalize_documents(
    encoder: ContextEncoder,
    hypernet: DocToLoRAHypernet,
    tokenizer: Any,
    docs: str | Sequence[str],
    chunk_length: int | None = None,
    rank_budget: int | None = None,
    chunk_batch_size: int = 16,
    progress: bool = False,
    system: str | None = None,
    include_bias: bool = True,
) -> LoRABatch:
    """One adapter per document, any length: chunk, encode and run the hypernetwork on slices of chunks,
    sum each document's chunk adapters, add the bias block, then compress to ``rank_budget`` if given.

    Chunks of all documents are packed into slices of similar length (sorted by length, each slice cut to its
    longest chunk), so a batch of documents costs about one encoder pass over its tokens. ``system`` is the
    system message of every chunk's chat wrapping (the one the hypernetwork was trained on);
    ``include_bias=False`` leaves the context-free bias block out (the documents' own deltas only).
    """
    docs = check_texts(docs, "document")
    positive(rank_budget, "rank_budget")
    positive(chunk_length, "chunk_length")
    positive(chunk_batch_size, "chunk_batch_size")
    batch = encode_documents(
        tokenizer, docs, chunk_length=chunk_length or default_chunk_length(encoder), system=system
    )
    device = next(hypernet.parameters()).device
    ids, mask, doc_index = batch["ctx_input_ids"], batch["ctx_attention_mask"], batch["ctx_doc_index"]
    slices = length_sorted_slices(mask.sum(1).tolist(), chunk_batch_size)
    if progress and len(slices) > 1:
        from tqdm.auto import tqdm

        slices = tqdm(slices, desc="internalize", unit="batch")
    parts, order = [], []
    for rows in slices:
        m = mask[rows]
        keep = m.any(0)  # left padding: drop columns that are padding in every row of this slice
        x, m = ids[rows][:, keep].to(device), m[:, keep].to(device)
        feats, fmask = encoder(x, m)
        parts.append(hypernet(feats, fmask, join=False).detach())
        order += rows
    chunks = LoRABatch.cat(parts).select(torch.tensor(order).argsort())  # back to document order
    with unsharded(hypernet):
        if include_bias:
            lora = hypernet.join(chunks, doc_index.to(device)).detach()
        else:
            lora = chunks.merge_groups(group_sizes(doc_index))
    if rank_budget is not None and lora.rank > rank_budget:
        lora = lora.compress(rank_budget)
    return lora


@torch.no_grad()
def internalize_images(
    encoder: ContextEncoder,
    hypernet: DocToLoRAHypernet,
    images: Any,
    rank_budget: int | None = None,
    batch_size: int = 8,
    system: str | None = "",
    include_bias: bool = True,
) -> LoRABatch:
    """One adapter per image: the VLM reads each image as a user turn holding only the image, its language
    model's activations feed the hypernetwork, plus the bias block (compressed to ``rank_budget`` if given)."""
    from lora_hyper.images import load_images

    if not isinstance(encoder, VLMContextEncoder):
        raise InputError(
            "This Doc-to-LoRA model has no VLM context encoder, so it cannot read images: train it with a "
            "vision-language encoder_model (e.g. google/gemma-3-4b-it)."
        )
    positive(rank_budget, "rank_budget")
    positive(batch_size, "batch_size")
    pictures = load_images(images)
    parts = []
    for start in range(0, len(pictures), batch_size):
        feats, mask = encoder.encode_images(pictures[start : start + batch_size], system=system)
        parts.append(hypernet(feats, mask, join=False).detach())
    chunks = LoRABatch.cat(parts)
    one_each = torch.arange(chunks.batch_size, device=next(hypernet.parameters()).device)
    with unsharded(hypernet):
        lora = hypernet.join(chunks, one_each).detach() if include_bias else chunks
    if rank_budget is not None and lora.rank > rank_budget:
        lora = lora.compress(rank_budget)
    return lora


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
        return {
            "format": FORMAT,
            "version": 1,
            "base_model": self.base_model_name,
            "spec": self.spec.to_dict(),
            "hypernet": self.hypernet.config.to_dict(),
            "encoder": _encoder_settings(self.encoder, self.encoder_model_name),
            "chunk_length": self.chunk_length,
            "rank_budget": self.rank_budget,
            "system_prompt": self.system_prompt,
        }

    def save_pretrained(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write ``doc_to_lora.json`` + ``hypernet.safetensors`` atomically (replacing: ``overwrite``)."""
        with unsharded(self.hypernet):
            state = {
                k: v.detach().to("cpu").contiguous().clone() for k, v in self.hypernet.state_dict().items()
            }
        config = json.dumps(self.config_dict(), indent=2, sort_keys=True)

        def write(tmp: Path) -> None:
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            (tmp / CONFIG_NAME).write_text(config + "\n")

        return atomic_directory_write(directory, write, overwrite=overwrite)

    @staticmethod
    def read_config(directory: str | os.PathLike) -> dict[str, Any]:
        """The JSON config of a model dir (or shipped name), weights file checked too; a one-line error naming
        the file when either is missing, broken or not Doc-to-LoRA."""
        path = resolve_model_dir(directory)
        cfg_path = path / CONFIG_NAME
        if not cfg_path.is_file() or not (path / WEIGHTS_NAME).is_file():
            raise FileNotFoundError(
                f"{path} is not a Doc-to-LoRA model directory ({CONFIG_NAME} or {WEIGHTS_NAME} missing)."
            )
        cfg = read_json_config(cfg_path, "Doc-to-LoRA config")
        if cfg.get("format") != FORMAT:
            raise ValueError(f"{path} holds {cfg.get('format')!r}, not a Doc-to-LoRA model ({FORMAT}).")
        missing = [k for k in ("base_model", "spec", "hypernet", "encoder") if k not in cfg]
        if missing:
            raise ValueError(f"{cfg_path} lacks {missing}; re-save the model with save_pretrained.")
        validate_safetensors(path / WEIGHTS_NAME)  # cheap header check, before any model loads
        return cfg

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
        cfg = cls.read_config(directory)
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
        state = load_file(str(Path(directory) / WEIGHTS_NAME))
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
