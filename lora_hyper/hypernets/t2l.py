"""Text-to-LoRA hypernetwork: task embedding + layer depth + module type -> LoRA factors, with L/M/S heads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from lora_hyper.lora import LoRABatch, LoRASpec
from lora_hyper.lora.factors import lora_a_init

HEAD_SIZES = ("L", "M", "S")


@dataclass
class T2LHypernetConfig:
    """Everything that shapes a ``TextToLoRAHypernet`` (JSON-serialisable; the resolved spec travels with it).

    Args:
        spec: ``LoRASpec.to_dict()`` of the resolved targets (layer shapes, rank, scale).
        emb_dim: width of the task embeddings.
        latent: trunk width (divisible by 4: half task, a quarter depth, a quarter module type).
        head_in: width of the hidden state the heads read.
        head_size: ``L`` (A and B at once), ``M`` (one head shared by A and B) or ``S`` (one rank row at a time).
        dropout: dropout inside the trunk MLPs.
        output_zscore: outputs are z-scores of library adapters (statistics held as buffers, set by
            :meth:`TextToLoRAHypernet.set_output_stats`).
        residual_rank: rank of a fixed adapter added to every generated one (``None``: no residual).
        head_multiplier: factor on the heads' (zero-initialised) weight output; ``None`` -> ``1/sqrt(head_in)``.
            Under Adam a head weight moves ~lr per step in a direction shared by all ``head_in`` inputs, so
            without it each generated LoRA entry moves ~``head_in`` times further per step than a directly
            trained LoRA weight (benchmarks/results/t2l_head_multiplier.json); ``1.0`` is the old behaviour.
    """

    spec: dict[str, Any] = field(default_factory=dict)
    emb_dim: int = 384
    latent: int = 128
    head_in: int = 512
    head_size: str = "L"
    dropout: float = 0.05
    output_zscore: bool = False
    residual_rank: int | None = None
    head_multiplier: float | None = None

    @property
    def resolved_head_multiplier(self) -> float:
        return self.head_multiplier if self.head_multiplier is not None else self.head_in**-0.5

    def __post_init__(self) -> None:
        if self.head_size not in HEAD_SIZES:
            raise ValueError(f"Unknown head size {self.head_size!r}: use one of {HEAD_SIZES}.")
        if self.latent % 4 or self.latent < 4:
            raise ValueError(f"latent must be a positive multiple of 4, got {self.latent}.")
        if self.residual_rank is not None and self.residual_rank < 1:
            raise ValueError(f"residual_rank must be >= 1 or None, got {self.residual_rank}.")

    @property
    def lora_spec(self) -> LoRASpec:
        spec = LoRASpec.from_dict(dict(self.spec))
        spec.require_resolved()
        return spec

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> T2LHypernetConfig:
        """A saved config; one written before ``head_multiplier`` existed keeps its unscaled heads (1.0)."""
        return cls(**{"head_multiplier": 1.0, **d})


def _key(module: str) -> str:
    """Parameter/buffer-safe name of a target module (dots are not allowed there)."""
    return module.replace(".", "__")


class ResidualMLP(nn.Module):
    """Pre-LayerNorm residual MLP block: ``x + MLP(LN(x))``."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(4 * width, width),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mlp(self.norm(x))


class TextToLoRAHypernet(nn.Module):
    """Maps task embeddings ``[b, E]`` to a ``LoRABatch`` for every target module of every layer.

    (layer x sample) is flattened into the batch, one module type per pass. Head weights start at zero and
    their biases at a standard LoRA init (A uniform, B zero), so at step 0 every generated adapter is a fresh
    LoRA with delta exactly 0.
    """

    fsdp_unit = True  # its own FSDP unit under DecoderLayerWrapPolicy

    def __init__(self, config: T2LHypernetConfig) -> None:
        super().__init__()
        self.config = config
        spec = config.lora_spec
        self.spec = spec
        self.targets = list(spec.target_modules)
        c, r = config, spec.rank
        self.task_proj = nn.Sequential(nn.Linear(c.emb_dim, c.latent // 2), nn.LayerNorm(c.latent // 2))
        self.depth_emb = nn.Embedding(spec.n_layers, c.latent // 4)
        self.depth_norm = nn.LayerNorm(c.latent // 4)
        self.type_emb = nn.Embedding(len(self.targets), c.latent // 4)
        self.type_norm = nn.LayerNorm(c.latent // 4)
        self.mixer = nn.Sequential(
            nn.Linear(c.latent, 4 * c.latent),
            nn.SiLU(),
            nn.Dropout(c.dropout),
            nn.Linear(4 * c.latent, c.latent),
        )
        self.block1 = ResidualMLP(c.latent, c.dropout)
        self.block2 = ResidualMLP(c.latent, c.dropout)
        self.out_proj = nn.Sequential(nn.LayerNorm(c.latent), nn.Linear(c.latent, c.head_in), nn.SiLU())
        if c.head_size in ("M", "S"):
            self.ab_code = nn.Parameter(torch.randn(2, c.latent) * 0.02)  # learned A-vs-B vector
        if c.head_size == "S":
            self.rank_code = nn.Embedding(r, c.latent)  # which rank row is generated
            nn.init.normal_(self.rank_code.weight, std=0.02)
        gen = torch.Generator().manual_seed(0)
        self.heads = nn.ModuleDict()
        self.head_bias = nn.ParameterDict()
        for m in self.targets:
            d_in, d_out = spec.shapes[m]
            wide = max(d_in, d_out)
            a0 = lora_a_init(r, d_in, gen)
            if c.head_size == "L":
                head, bias = (
                    nn.Linear(c.head_in, r * (d_in + d_out), bias=False),
                    torch.zeros(r * (d_in + d_out)),
                )
                bias[: r * d_in] = a0.flatten()
            elif c.head_size == "M":
                head, bias = nn.Linear(c.head_in, r * wide, bias=False), torch.zeros(2, r * wide)
                bias[0, : r * d_in] = a0.flatten()
            else:
                head, bias = nn.Linear(c.head_in, wide, bias=False), torch.zeros(2, r, wide)
                bias[0, :, :d_in] = a0
            nn.init.zeros_(head.weight)
            self.heads[_key(m)] = head
            self.head_bias[_key(m)] = nn.Parameter(bias)
        if c.output_zscore:
            for m in self.targets:
                d_in, d_out = spec.shapes[m]
                L = spec.n_layers
                self.register_buffer(f"zA_mean_{_key(m)}", torch.zeros(L, r, d_in))
                self.register_buffer(f"zA_std_{_key(m)}", torch.ones(L, r, d_in))
                self.register_buffer(f"zB_mean_{_key(m)}", torch.zeros(L, d_out, r))
                self.register_buffer(f"zB_std_{_key(m)}", torch.ones(L, d_out, r))
        if c.residual_rank is not None:
            for m in self.targets:
                d_in, d_out = spec.shapes[m]
                self.register_buffer(f"resA_{_key(m)}", torch.zeros(1, spec.n_layers, c.residual_rank, d_in))
                self.register_buffer(f"resB_{_key(m)}", torch.zeros(1, spec.n_layers, d_out, c.residual_rank))

    # ------------------------------------------------------------------ trunk and heads
    def _module_index(self, module: str) -> int:
        if module not in self.targets:
            raise ValueError(f"Unknown module type {module!r}: this hypernetwork generates {self.targets}.")
        return self.targets.index(module)

    def trunk(self, task_embeddings: Tensor, module_index: int) -> Tensor:
        """The shared trunk's state for every (sample, layer) of one module type: ``[b * L, latent]``."""
        b, L = task_embeddings.shape[0], self.spec.n_layers
        bias = self.head_bias[_key(self.targets[module_index])]
        dev = bias.device
        task = self.task_proj(task_embeddings.to(dev, bias.dtype))  # [b, latent/2]
        depth = self.depth_norm(self.depth_emb(torch.arange(L, device=dev)))  # [L, latent/4]
        mtype = self.type_norm(self.type_emb(torch.tensor([module_index], device=dev)))  # [1, latent/4]
        x = torch.cat(
            [task[:, None].expand(b, L, -1), depth[None].expand(b, L, -1), mtype[None].expand(b, L, -1)],
            dim=-1,
        ).reshape(b * L, -1)
        return self.block1(self.mixer(x))

    def head_features(self, task_embeddings: Tensor, module: str) -> Tensor:
        """What the ``L`` head reads for every (sample, layer): ``[b * L, head_in]``. The head's output over many
        tasks and layers has rank <= ``head_in`` (``benchmarks/t2l_library_rank.py`` measures what that costs)."""
        if self.config.head_size != "L":
            raise ValueError(
                f"head_features is defined for head_size 'L', this hypernetwork has {self.config.head_size!r}."
            )
        return self.out_proj(self.block2(self.trunk(task_embeddings, self._module_index(module))))

    def generate_module(self, task_embeddings: Tensor, module: str) -> tuple[Tensor, Tensor]:
        """Raw head outputs for one module type: ``A [b, L, r, in]``, ``B [b, L, out, r]`` (one pass)."""
        t = self._module_index(module)
        if task_embeddings.dim() != 2 or task_embeddings.shape[1] != self.config.emb_dim:
            raise ValueError(
                f"task_embeddings must be [batch, {self.config.emb_dim}], got {tuple(task_embeddings.shape)}."
            )
        spec, r = self.spec, self.spec.rank
        b, L = task_embeddings.shape[0], spec.n_layers
        d_in, d_out = spec.shapes[module]
        h = self.trunk(task_embeddings, t)
        head, bias = self.heads[_key(module)], self.head_bias[_key(module)]
        size, mult = self.config.head_size, self.config.resolved_head_multiplier
        if size == "L":
            out = mult * head(self.out_proj(self.block2(h))) + bias
            A = out[:, : r * d_in].reshape(b, L, r, d_in)
            B = out[:, r * d_in :].reshape(b, L, d_out, r)
        elif size == "M":
            hab = h[:, None] + self.ab_code[None]  # [bL, 2, latent]
            out = mult * head(self.out_proj(self.block2(hab))) + bias  # [bL, 2, r*wide]
            A = out[:, 0, : r * d_in].reshape(b, L, r, d_in)
            B = out[:, 1, : d_out * r].reshape(b, L, d_out, r)
        else:
            hab = (
                h[:, None, None] + self.ab_code[None, :, None] + self.rank_code.weight[None, None]
            )  # [bL, 2, r, latent]
            out = mult * head(self.out_proj(self.block2(hab))) + bias  # [bL, 2, r, wide]
            A = out[:, 0, :, :d_in].reshape(b, L, r, d_in)
            B = out[:, 1, :, :d_out].reshape(b, L, r, d_out).transpose(2, 3)
        return A, B

    def raw(self, task_embeddings: Tensor) -> LoRABatch:
        """Head outputs for all module types (z-scores when ``output_zscore``), without any residual."""
        A, B = {}, {}
        for m in self.targets:
            A[m], B[m] = self.generate_module(task_embeddings, m)
        return LoRABatch(self.spec, A, B, self.spec.scale)

    def forward(self, task_embeddings: Tensor, output: str = "adapters") -> LoRABatch:
        """Adapters ``[b]`` ready to apply: de-normalised (z-score mode) and on top of the residual (if any).

        ``output="generated"`` stops before the residual, ``"raw"`` returns the heads' outputs (z-scores): training
        objectives call these through ``forward`` so FSDP (1 and 2) gathers the sharded weights for them.
        """
        if output not in ("adapters", "generated", "raw"):
            raise ValueError(f"output must be 'adapters', 'generated' or 'raw', got {output!r}.")
        lora = self.raw(task_embeddings)
        if output == "raw":
            return lora
        lora = self.denormalize(lora)
        return lora if output == "generated" else self.add_residual(lora)

    # ------------------------------------------------------------------ z-scores
    def _stats(self, m: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        g = self.get_buffer
        return (
            g(f"zA_mean_{_key(m)}"),
            g(f"zA_std_{_key(m)}"),
            g(f"zB_mean_{_key(m)}"),
            g(f"zB_std_{_key(m)}"),
        )

    def denormalize(self, lora: LoRABatch) -> LoRABatch:
        """Map z-scores back to factors (identity unless ``output_zscore``)."""
        if not self.config.output_zscore:
            return lora
        A, B = {}, {}
        for m in self.targets:
            am, as_, bm, bs = self._stats(m)
            A[m], B[m] = lora.A[m] * as_ + am, lora.B[m] * bs + bm
        return LoRABatch(self.spec, A, B, lora.scale)

    def normalize(self, lora: LoRABatch) -> LoRABatch:
        """Z-score library factors with the stored statistics (identity unless ``output_zscore``)."""
        if not self.config.output_zscore:
            return lora
        A, B = {}, {}
        for m in self.targets:
            am, as_, bm, bs = self._stats(m)
            A[m], B[m] = (lora.A[m] - am) / as_, (lora.B[m] - bm) / bs
        return LoRABatch(self.spec, A, B, lora.scale)

    @torch.no_grad()
    def set_output_stats(self, library: LoRABatch, eps: float = 1e-6) -> None:
        """Store per-entry mean/std of a library of adapters (already at this spec's rank and scale)."""
        if not self.config.output_zscore:
            raise ValueError("set_output_stats needs a hypernetwork built with output_zscore=True.")
        for m in self.targets:
            a, b = library.A[m].float(), library.B[m].float()
            n = a.shape[0]
            am, as_, bm, bs = self._stats(m)
            am.copy_(a.mean(0))
            bm.copy_(b.mean(0))
            as_.copy_((a.std(0, unbiased=False) if n > 1 else torch.ones_like(a[0])).clamp(min=eps))
            bs.copy_((b.std(0, unbiased=False) if n > 1 else torch.ones_like(b[0])).clamp(min=eps))

    # ------------------------------------------------------------------ residual adapter
    @torch.no_grad()
    def set_residual(self, lora: LoRABatch) -> None:
        """Fix the adapter every generated one is added to (first row of ``lora``; its scale folded in)."""
        if self.config.residual_rank is None:
            raise ValueError("set_residual needs a hypernetwork built with residual_rank set.")
        one = lora.select(0)
        for m in self.targets:
            if m not in one.A:
                raise ValueError(f"Residual adapter lacks module {m!r} (it has {sorted(one.A)}).")
            if tuple(one.A[m].shape[1:]) != tuple(self.get_buffer(f"resA_{_key(m)}").shape[1:]):
                raise ValueError(
                    f"Residual adapter {m}: A shape {tuple(one.A[m].shape[1:])} does not match the expected "
                    f"{tuple(self.get_buffer(f'resA_{_key(m)}').shape[1:])} (layers, rank, in)."
                )
            self.get_buffer(f"resA_{_key(m)}").copy_(one.A[m])
            self.get_buffer(f"resB_{_key(m)}").copy_(one.B[m] * (float(one.scale) / float(self.spec.scale)))

    def add_residual(self, lora: LoRABatch) -> LoRABatch:
        """``lora`` concatenated (along rank) with the residual adapter: the deltas add up."""
        if self.config.residual_rank is None:
            return lora
        n = lora.batch_size
        A = {m: self.get_buffer(f"resA_{_key(m)}").to(lora.dtype).expand(n, -1, -1, -1) for m in self.targets}
        B = {m: self.get_buffer(f"resB_{_key(m)}").to(lora.dtype).expand(n, -1, -1, -1) for m in self.targets}
        return lora.concat_rank(LoRABatch(self.spec, A, B, lora.scale))
