"""Doc-to-LoRA hypernetwork: context activations -> Perceiver -> per-layer heads -> a LoRABatch per document."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lora_hyper.hypernets.perceiver import Attention, Perceiver, RMSNorm
from lora_hyper.lora import LoRABatch, LoRASpec

HEAD_INITS = ("reference", "fan_in")
GATE_BIAS_INIT = 4.0  # sigmoid(4) = 0.982: the gate starts open


@dataclass
class DocToLoRAHypernetConfig:
    """Sizes of the Doc-to-LoRA hypernetwork (defaults sized for CPU; GPU recipes use the reference's).

    Args:
        input_dim: width of the context features (the encoder model's hidden size).
        per_layer_input: features are ``[chunks, L, T, d]`` (one Perceiver pass per layer, shared weights)
            instead of one ``[chunks, T, d]`` stream (early exit) decoded into every layer's queries.
        latent_dim: Perceiver latent width (reference 512).
        n_latents: learned latent queries (reference 8 main, 208 NIAH).
        n_blocks: Perceiver blocks (reference 9 main, 8 NIAH).
        n_heads: attention heads.
        mlp_ratio: SwiGLU hidden width as a multiple of ``latent_dim``.
        self_attention: self-attention among latents in every block.
        head_hidden_ratio: hidden width of the per-layer residual MLP as a multiple of ``latent_dim``.
        bias_rank: rank of the learned context-free bias adapter (``None``: the LoRA rank; 0: none).
        head_init: ``reference`` (std ``0.5 / sqrt(latent + (d_in + d_out) * r)``, as the reference) or
            ``fan_in`` (std ``1 / sqrt(d)`` per A/B part, 7-11x larger; models saved before 0.3 used it).
        chunk_gate: a learned per-chunk relevance gate ``sigmoid(w . mean(latents) + b)`` multiplied into A
            (``b`` starts at 4, so the gate starts near 1 and the delta is still exactly zero at init).
    """

    input_dim: int
    per_layer_input: bool = True
    latent_dim: int = 256
    n_latents: int = 32
    n_blocks: int = 2
    n_heads: int = 4
    mlp_ratio: float = 2.0
    self_attention: bool = True
    head_hidden_ratio: float = 1.0
    bias_rank: int | None = None
    head_init: str = "reference"
    chunk_gate: bool = False

    def __post_init__(self) -> None:
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"Unknown head_init {self.head_init!r}: use one of {HEAD_INITS}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DocToLoRAHypernetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown Doc-to-LoRA hypernetwork config keys {unknown}.")
        return cls(**d)


def group_sizes(doc_index: Tensor) -> list[int]:
    """Chunk counts per document from a non-decreasing ``doc_index`` covering ``0..docs-1``."""
    if doc_index.dim() != 1 or doc_index.numel() == 0:
        raise ValueError("doc_index must be a non-empty 1-D tensor.")
    if bool((doc_index[1:] < doc_index[:-1]).any()):
        raise ValueError("doc_index must be non-decreasing (chunks of a document are consecutive).")
    sizes = torch.bincount(doc_index).tolist()
    if doc_index.min() != 0 or any(s == 0 for s in sizes):
        raise ValueError(f"doc_index must cover every document 0..{len(sizes) - 1} (chunk counts {sizes}).")
    return sizes


class DocToLoRAHypernet(nn.Module):
    """Perceiver -> decoder queries -> per-layer residual MLP -> L2-normalised latents -> A/B heads.

    Learned per-(layer, module, rank) scalers multiply A (init 1) and B (init 0), and a learned
    context-free bias adapter (B zero at init) is appended once per document as one more rank block:
    the generated delta is exactly zero at initialisation.

    Args:
        config: sizes (:class:`DocToLoRAHypernetConfig`).
        spec: a resolved :class:`LoRASpec` (targets, rank, scale, layer shapes of the base model).
    """

    fsdp_unit = True  # its own FSDP unit under DecoderLayerWrapPolicy

    def __init__(self, config: DocToLoRAHypernetConfig, spec: LoRASpec) -> None:
        super().__init__()
        spec.require_resolved()
        self.config = config
        self.spec = spec
        c = config
        L, r, n_mod, D = spec.n_layers, spec.rank, len(spec.target_modules), c.latent_dim
        self.perceiver = Perceiver(
            c.input_dim, D, c.n_latents, c.n_blocks, c.n_heads, c.mlp_ratio, c.self_attention
        )
        n_queries = n_mod * r if c.per_layer_input else L * n_mod * r
        self.queries = nn.Parameter(torch.randn(n_queries, D) * D**-0.5)
        self.dec_norm_q, self.dec_norm_kv = RMSNorm(D), RMSNorm(D)
        self.decoder = Attention(D, c.n_heads)
        self.dec_post = RMSNorm(D)
        hidden = max(1, int(D * c.head_hidden_ratio))
        self.mlp_in = nn.Parameter(torch.randn(L, D, hidden) * D**-0.5)
        self.mlp_out = nn.Parameter(torch.randn(L, hidden, D) * hidden**-0.5)
        self.heads = nn.ParameterList()
        for m in spec.target_modules:
            d_in, d_out = spec.shapes[m]
            if c.head_init == "reference":
                w = torch.randn(L, D, d_in + d_out) * (0.5 / math.sqrt(D + (d_in + d_out) * r))
            else:
                w = torch.cat(
                    [torch.randn(L, D, d_in) * d_in**-0.5, torch.randn(L, D, d_out) * d_out**-0.5], dim=-1
                )
            self.heads.append(nn.Parameter(w))
        self.gate: nn.Linear | None = None
        if c.chunk_gate:
            self.gate = nn.Linear(D, 1)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, GATE_BIAS_INIT)
        self.last_gate: Tensor | None = None  # the latest chunk gates (detached), for logging
        # Training sets this while the gate must not learn yet (``gate_start_step``): its value still scales A,
        # its parameters get zero gradients (zeros, not none, so DDP still sees them used).
        self.gate_frozen = False
        self.scale_A = nn.Parameter(torch.ones(L, n_mod, r))
        self.scale_B = nn.Parameter(torch.zeros(L, n_mod, r))
        rb = r if c.bias_rank is None else c.bias_rank
        self.bias_rank = rb
        self.bias_A = nn.ParameterList()
        self.bias_B = nn.ParameterList()
        if rb > 0:
            for m in spec.target_modules:
                d_in, d_out = spec.shapes[m]
                self.bias_A.append(nn.Parameter(torch.randn(L, rb, d_in) * d_in**-0.5))
                self.bias_B.append(nn.Parameter(torch.zeros(L, d_out, rb)))

    # ------------------------------------------------------------------ pieces
    def latents(self, features: Tensor, mask: Tensor) -> Tensor:
        """Per-layer, per-module, per-rank latents ``[chunks, L, modules, r, D]``."""
        spec, c = self.spec, self.config
        L, r, n_mod = spec.n_layers, spec.rank, len(spec.target_modules)
        features = features.to(self.queries.dtype)  # a bf16 encoder feeding an fp32 hypernetwork
        if c.per_layer_input:
            if features.dim() != 4 or features.shape[1] != L:
                raise ValueError(
                    f"per-layer features must be [chunks, {L}, T, d], got {tuple(features.shape)}."
                )
            n, _, t, d = features.shape
            ctx = self.perceiver(features.reshape(n * L, t, d), mask.repeat_interleave(L, dim=0))
        else:
            if features.dim() != 3:
                raise ValueError(f"early-exit features must be [chunks, T, d], got {tuple(features.shape)}.")
            n = features.shape[0]
            ctx = self.perceiver(features, mask)
        q = self.queries.to(ctx.dtype).unsqueeze(0).expand(ctx.shape[0], -1, -1)
        x = q + self.dec_post(self.decoder(self.dec_norm_q(q), self.dec_norm_kv(ctx)))
        x = x.reshape(n, L, n_mod, r, -1)
        h = F.silu(torch.einsum("nlmrd,ldh->nlmrh", F.rms_norm(x, (x.shape[-1],)), self.mlp_in))
        x = x + torch.einsum("nlmrh,lhd->nlmrd", h, self.mlp_out)
        return F.normalize(x, dim=-1)

    def no_weight_decay(self) -> set[str]:
        """Parameter names AdamW must not decay (as the reference): scalers, bias blocks, norms, latents, gate."""
        names = set()
        for name, p in self.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if p.dim() < 2 or name.startswith(("scale_", "bias_", "gate.")) or leaf in ("latents", "queries"):
                names.add(name)
        return names

    def warm_start_optional(self) -> set[str]:
        """Parameters a warm-start source may lack (they keep their init): the chunk gate, which starts open,
        so a gate can be added to a model trained without one."""
        return {name for name, _ in self.named_parameters() if name.startswith("gate.")}

    def chunk_lora(self, features: Tensor, mask: Tensor) -> LoRABatch:
        """One adapter per chunk (no bias block): rank ``r``."""
        z = self.latents(features, mask)
        gate = None
        if self.gate is not None:
            gate = torch.sigmoid(self.gate(z.mean(dim=(1, 2, 3))))  # [chunks, 1]
            if self.gate_frozen:
                gate = gate.detach() + 0.0 * gate
            self.last_gate = gate.detach().squeeze(-1)
        A, B = {}, {}
        for i, m in enumerate(self.spec.target_modules):
            d_in = self.spec.shapes[m][0]
            out = torch.einsum("nlrd,ldo->nlro", z[:, :, i], self.heads[i])
            A[m] = out[..., :d_in] * self.scale_A[None, :, i, :, None]
            if gate is not None:
                A[m] = A[m] * gate[:, :, None, None]
            B[m] = out[..., d_in:].transpose(-1, -2) * self.scale_B[None, :, i, None, :]
        return LoRABatch(self.spec, A, B)

    def bias_lora(self, batch_size: int) -> LoRABatch | None:
        """The learned context-free adapter, repeated ``batch_size`` times (``None`` when ``bias_rank == 0``)."""
        if self.bias_rank == 0:
            return None
        A = {
            m: self.bias_A[i].unsqueeze(0).expand(batch_size, -1, -1, -1)
            for i, m in enumerate(self.spec.target_modules)
        }
        B = {
            m: self.bias_B[i].unsqueeze(0).expand(batch_size, -1, -1, -1)
            for i, m in enumerate(self.spec.target_modules)
        }
        return LoRABatch(self.spec, A, B)

    def join(self, chunks: LoRABatch, doc_index: Tensor | None = None) -> LoRABatch:
        """Sum each document's chunk adapters (rank concat) and append the bias block once per document."""
        lora = chunks if doc_index is None else chunks.merge_groups(group_sizes(doc_index))
        bias = self.bias_lora(lora.batch_size)
        if bias is None:
            return lora
        return lora.concat_rank(bias.to(dtype=lora.dtype))

    def forward(
        self, features: Tensor, mask: Tensor, doc_index: Tensor | None = None, join: bool = True
    ) -> LoRABatch:
        """Adapters per document (``doc_index`` maps chunks to documents; ``None``: one chunk per document).

        ``join=False`` returns the rank-``r`` per-chunk adapters (no bias block) for callers that encode
        chunks in several batches and :meth:`join` them afterwards.
        """
        chunks = self.chunk_lora(features, mask)
        return self.join(chunks, doc_index) if join else chunks
