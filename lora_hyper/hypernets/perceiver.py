"""Perceiver resampler: learned latents read a variable-length padded context through cross-attention."""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def flash_varlen_usable(x: Tensor) -> bool:
    """True when flash-attn is importable and ``x`` lives on CUDA (selected automatically, never required)."""
    return x.is_cuda and importlib.util.find_spec("flash_attn") is not None


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned gain."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # widen bf16, keep fp64
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))``: the MLP and the input projection of the Perceiver."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim_in, hidden, bias=False)
        self.up = nn.Linear(dim_in, hidden, bias=False)
        self.down = nn.Linear(hidden, dim_out, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


def _flash_cross(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor) -> Tensor:
    """Flash-attention varlen over unpadded keys; ``q`` [N, H, Q, D], ``k``/``v`` [N, H, T, D]."""
    from flash_attn import flash_attn_varlen_func

    n, h, nq, d = q.shape
    dtype = q.dtype if q.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
    lengths = key_mask.sum(-1).to(torch.int32)
    cu_k = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    cu_q = torch.arange(0, (n + 1) * nq, nq, dtype=torch.int32, device=q.device)
    flat = key_mask.reshape(-1)
    kk = k.transpose(1, 2).reshape(-1, h, d)[flat].to(dtype)
    vv = v.transpose(1, 2).reshape(-1, h, d)[flat].to(dtype)
    qq = q.transpose(1, 2).reshape(-1, h, d).to(dtype)
    out = flash_attn_varlen_func(qq, kk, vv, cu_q, cu_k, nq, int(lengths.max()), causal=False)
    return out.reshape(n, nq, h, d).transpose(1, 2).to(q.dtype)


class Attention(nn.Module):
    """Multi-head attention from queries to keys/values, with a key padding mask (sdpa or flash varlen)."""

    def __init__(self, dim: int, n_heads: int, kv_dim: int | None = None) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"latent_dim {dim} must be divisible by n_heads {n_heads}.")
        self.n_heads = n_heads
        kv_dim = kv_dim or dim
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(kv_dim, dim, bias=False)
        self.v = nn.Linear(kv_dim, dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor, context: Tensor, key_mask: Tensor | None = None) -> Tensor:
        n, nq, dim = x.shape
        h = self.n_heads

        def split(t: Tensor) -> Tensor:
            return t.view(n, t.shape[1], h, dim // h).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(context)), split(self.v(context))
        if key_mask is not None and flash_varlen_usable(x):
            out = _flash_cross(q, k, v, key_mask)
        else:
            mask = None if key_mask is None else key_mask[:, None, None, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o(out.transpose(1, 2).reshape(n, nq, dim))


class _Sandwich(nn.Module):
    """``x + post_norm(sublayer(pre_norm(x)))``: the RMSNorm sandwich around every sublayer."""

    def __init__(self, dim: int, sublayer: nn.Module) -> None:
        super().__init__()
        self.pre = RMSNorm(dim)
        self.sub = sublayer
        self.post = RMSNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.post(self.sub(self.pre(x)))


class SelfAttention(Attention):
    """Attention of the latents to themselves (no mask: latents are never padded)."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, x)


class PerceiverBlock(nn.Module):
    """Cross-attention to the context, optional self-attention among latents, SwiGLU MLP."""

    def __init__(self, dim: int, n_heads: int, mlp_hidden: int, self_attention: bool = True) -> None:
        super().__init__()
        self.cross_norm_q, self.cross_norm_kv = RMSNorm(dim), RMSNorm(dim)
        self.cross = Attention(dim, n_heads)
        self.cross_post = RMSNorm(dim)
        self.self_attn = _Sandwich(dim, SelfAttention(dim, n_heads)) if self_attention else None
        self.mlp = _Sandwich(dim, SwiGLU(dim, mlp_hidden, dim))

    def forward(self, latents: Tensor, context: Tensor, mask: Tensor) -> Tensor:
        x = latents
        x = x + self.cross_post(self.cross(self.cross_norm_q(x), self.cross_norm_kv(context), mask))
        if self.self_attn is not None:
            x = self.self_attn(x)
        return self.mlp(x)


class Perceiver(nn.Module):
    """Idefics2-style resampler: ``[N, T, d_in]`` context + ``[N, T]`` mask -> ``[N, n_latents, latent_dim]``.

    Keys and values come from the context only; padded positions are masked out; fully padded rows
    attend to their first position instead of producing NaN.

    Args:
        input_dim: width of the context features.
        latent_dim: width of the latents.
        n_latents: number of learned latent queries.
        n_blocks: number of cross-attention (+ self-attention) + MLP blocks.
        n_heads: attention heads.
        mlp_ratio: SwiGLU hidden width as a multiple of ``latent_dim``.
        self_attention: add self-attention among latents in every block.
    """

    def __init__(
        self,
        input_dim: int,
        latent_dim: int = 256,
        n_latents: int = 32,
        n_blocks: int = 2,
        n_heads: int = 4,
        mlp_ratio: float = 2.0,
        self_attention: bool = True,
    ) -> None:
        super().__init__()
        hidden = int(latent_dim * mlp_ratio)
        self.input_norm = RMSNorm(input_dim)
        self.input_proj = SwiGLU(input_dim, hidden, latent_dim)
        self.latents = nn.Parameter(torch.randn(n_latents, latent_dim) * latent_dim**-0.5)
        self.blocks = nn.ModuleList(
            PerceiverBlock(latent_dim, n_heads, hidden, self_attention) for _ in range(n_blocks)
        )
        self.out_norm = RMSNorm(latent_dim)

    def forward(self, context: Tensor, mask: Tensor | None = None) -> Tensor:
        n, t, _ = context.shape
        if mask is None:
            mask = torch.ones(n, t, dtype=torch.bool, device=context.device)
        mask = mask.bool()
        empty = ~mask.any(-1)
        if empty.any():
            mask = mask.clone()
            mask[empty, 0] = True
        ctx = self.input_proj(self.input_norm(context))
        x = self.latents.to(ctx.dtype).unsqueeze(0).expand(n, -1, -1)
        for block in self.blocks:
            x = block(x, ctx, mask)
        return self.out_norm(x)
