"""LoRABatch: per-sample adapters for a whole model, the one currency between all parts of lora-hyper."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lora_hyper.lora.spec import LoRASpec


@dataclass
class LoRABatch:
    """Adapters for ``batch_size`` samples: ``A[m]`` is ``[batch, layer, r, in]``, ``B[m]`` is ``[batch, layer, out, r]``.

    The delta added to module ``m`` of layer ``l`` for sample ``b`` is ``scale * B[m][b, l] @ A[m][b, l]``.
    Ranks may differ between module types but are the same for every sample and layer.
    """

    spec: LoRASpec
    A: dict[str, Tensor]
    B: dict[str, Tensor]
    scale: float | None = None

    def __post_init__(self) -> None:
        if self.scale is None:
            self.scale = float(self.spec.scale)
        self.validate()

    # ----------------------------------------------------------------------------------------- checks
    def validate(self) -> None:
        """Check keys and shapes against the spec; raise ``ValueError`` naming the first mismatch."""
        self.spec.require_resolved()
        targets = set(self.spec.target_modules)
        if set(self.A) != targets or set(self.B) != targets:
            raise ValueError(
                f"LoRABatch modules A={sorted(self.A)} B={sorted(self.B)} != spec targets {sorted(targets)}."
            )
        batch = None
        for m in self.spec.target_modules:
            a, b = self.A[m], self.B[m]
            d_in, d_out = self.spec.shapes[m]
            if a.dim() != 4 or b.dim() != 4:
                raise ValueError(
                    f"{m}: A and B must be 4-D [batch, layer, ...], got {tuple(a.shape)} and {tuple(b.shape)}."
                )
            n, L, r, i = a.shape
            if (L, i) != (self.spec.n_layers, d_in):
                raise ValueError(
                    f"{m}: A has shape {tuple(a.shape)}, expected [batch, {self.spec.n_layers}, r, {d_in}]."
                )
            if tuple(b.shape) != (n, L, d_out, r):
                raise ValueError(
                    f"{m}: B has shape {tuple(b.shape)}, expected {(n, L, d_out, r)} to match A."
                )
            if batch is None:
                batch = n
            elif n != batch:
                raise ValueError(f"{m}: batch size {n} differs from the other modules' {batch}.")

    # ----------------------------------------------------------------------------------------- views
    @property
    def batch_size(self) -> int:
        return next(iter(self.A.values())).shape[0]

    def __len__(self) -> int:
        return self.batch_size

    @property
    def ranks(self) -> dict[str, int]:
        return {m: a.shape[2] for m, a in self.A.items()}

    @property
    def rank(self) -> int:
        """The rank shared by all module types (error if they differ)."""
        ranks = set(self.ranks.values())
        if len(ranks) != 1:
            raise ValueError(f"Module types have different ranks {self.ranks}; use .ranks.")
        return ranks.pop()

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.A.values())).dtype

    @property
    def device(self) -> torch.device:
        return next(iter(self.A.values())).device

    def delta(self, module: str) -> Tensor:
        """Dense weight deltas ``scale * B @ A`` of one module type: ``[batch, layer, out, in]``."""
        return self.scale * (self.B[module] @ self.A[module])

    def delta_norms(self) -> Tensor:
        """Per sample, the Frobenius norm of all deltas ``scale * B @ A`` together: ``[batch]`` (never forms B @ A).

        ``||B A||_F^2 = sum((A A^T) * (B^T B))``, computed on ``r x r`` Gram matrices."""
        total = 0
        for m in self.spec.target_modules:
            a, b = self.A[m].float(), self.B[m].float()
            total = total + ((a @ a.transpose(-1, -2)) * (b.transpose(-1, -2) @ b)).sum(dim=(1, 2, 3))
        return abs(float(self.scale)) * total.clamp(min=0).sqrt()

    def _map(self, fn) -> LoRABatch:
        return LoRABatch(
            self.spec,
            {m: fn(t) for m, t in self.A.items()},
            {m: fn(t) for m, t in self.B.items()},
            self.scale,
        )

    # ----------------------------------------------------------------------------------------- ops
    def select(self, index: int | Sequence[int] | Tensor | slice) -> LoRABatch:
        """Adapters of some samples (indices, negative ones counting from the end, or a boolean mask); an int
        keeps the batch axis (``batch_size == 1``)."""
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        if isinstance(index, slice):
            return self._map(lambda t: t[index])
        # Checked where it lives (a list on the CPU: no device sync), then moved for the gather.
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            if index.shape != (self.batch_size,):
                raise ValueError(
                    f"a boolean select mask needs shape ({self.batch_size},), got {tuple(index.shape)}."
                )
            index = index.nonzero().squeeze(1)
        index = index.long().reshape(-1)
        n = self.batch_size
        if bool(((index < -n) | (index >= n)).any()):
            raise IndexError(f"select index out of range for {n} adapters: {index.tolist()}.")
        index = torch.where(index < 0, index + n, index).to(self.device)
        # index_select: its backward is an index_add, far cheaper on CPU than advanced indexing's accumulating
        # index_put.
        return self._map(lambda t: t.index_select(0, index))

    def to(self, *args, **kwargs) -> LoRABatch:
        """Like ``Tensor.to`` for every factor (device and/or dtype)."""
        return self._map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> LoRABatch:
        return self._map(lambda t: t.detach())

    def num_bytes(self) -> int:
        """Bytes held by all A and B factors."""
        return sum(t.numel() * t.element_size() for t in [*self.A.values(), *self.B.values()])

    def num_parameters(self) -> int:
        return sum(t.numel() for t in [*self.A.values(), *self.B.values()]) // max(self.batch_size, 1)

    def with_scale_folded(self) -> LoRABatch:
        """Same deltas with ``scale`` multiplied into B and ``scale == 1`` (what exported adapters hold)."""
        return LoRABatch(self.spec, dict(self.A), {m: b * self.scale for m, b in self.B.items()}, 1.0)

    def concat_rank(self, *others: LoRABatch) -> LoRABatch:
        """Stack adapters along the rank axis: the resulting delta is the sum of the inputs' deltas.

        Different scales are folded into B so each input keeps its own delta.
        """
        parts = [self, *others]
        for p in parts[1:]:
            if p.spec.target_modules != self.spec.target_modules or p.spec.shapes != self.spec.shapes:
                raise ValueError("concat_rank needs adapters for the same targets and shapes.")
            if p.batch_size != self.batch_size:
                raise ValueError(
                    f"concat_rank needs equal batch sizes, got {self.batch_size} and {p.batch_size}."
                )
        scale = self.scale if all(p.scale == self.scale for p in parts) else 1.0
        A, B = {}, {}
        for m in self.spec.target_modules:
            A[m] = torch.cat([p.A[m] for p in parts], dim=2)
            B[m] = torch.cat([p.B[m] * (p.scale / scale) for p in parts], dim=3)
        return LoRABatch(self.spec, A, B, scale)

    def merge_groups(self, group_sizes: Sequence[int]) -> LoRABatch:
        """Sum consecutive samples' deltas: rows ``[0, g0)`` become sample 0, the next ``g1`` sample 1, ...

        Used to join the adapters of a document's chunks. The result has rank ``max(group_sizes) * r``;
        smaller groups are zero-padded (zero rank rows add nothing to the delta).
        """
        sizes = [int(g) for g in group_sizes]
        if any(g < 1 for g in sizes) or sum(sizes) != self.batch_size:
            raise ValueError(f"group sizes {sizes} must be >= 1 and sum to the batch size {self.batch_size}.")
        k = max(sizes)
        starts = torch.tensor([0, *sizes[:-1]]).cumsum(0)
        # rows[g, j] = index of chunk j of group g (or -1 for padding)
        rows = torch.full((len(sizes), k), -1, dtype=torch.long)
        for g, (s, n) in enumerate(zip(starts.tolist(), sizes)):
            rows[g, :n] = torch.arange(s, s + n)
        valid = (rows >= 0).to(self.device)
        gathered = self.select(rows.clamp(min=0).reshape(-1))  # chunk rows group by group, padding -> row 0
        A, B = {}, {}
        for m in self.spec.target_modules:
            a, b = self.A[m], self.B[m]  # [N, L, r, in], [N, L, out, r]
            n_groups, L = len(sizes), a.shape[1]
            ga = gathered.A[m].view(n_groups, k, *a.shape[1:])
            ga = ga * valid[:, :, None, None, None].to(a.dtype)  # [G, k, L, r, in]
            gb = gathered.B[m].view(n_groups, k, *b.shape[1:])  # padding rows already zero in A
            A[m] = ga.permute(0, 2, 1, 3, 4).reshape(n_groups, L, k * a.shape[2], a.shape[3])
            B[m] = gb.permute(0, 2, 3, 1, 4).reshape(n_groups, L, b.shape[2], k * b.shape[3])
        return LoRABatch(self.spec, A, B, self.scale)

    def compress(self, rank: int) -> LoRABatch:
        """Best rank-``rank`` approximation of every delta (truncated SVD, computed without forming B @ A).

        Exact when ``rank`` is at least the true rank; otherwise the error is exactly the dropped tail of
        singular values. Factors come out balanced (``sqrt(S)`` on each side) with the scale folded in.
        """
        if rank < 1:
            raise ValueError(f"compress rank must be >= 1, got {rank}.")
        A, B = {}, {}
        for m in self.spec.target_modules:
            a = self.A[m].float()
            b = self.B[m].float() * self.scale
            r = a.shape[2]
            if rank >= r:
                pad = rank - r
                A[m] = torch.nn.functional.pad(a, (0, 0, 0, pad)).to(self.A[m].dtype)
                B[m] = torch.nn.functional.pad(b, (0, pad)).to(self.B[m].dtype)
                continue
            qb, rb = torch.linalg.qr(b)  # [.., out, r], [.., r, r]
            qa, ra = torch.linalg.qr(a.transpose(-1, -2))  # [.., in, r], [.., r, r]
            u, s, vh = torch.linalg.svd(rb @ ra.transpose(-1, -2))  # core [.., r, r]
            root = s[..., :rank].sqrt()
            B[m] = ((qb @ u[..., :rank]) * root[..., None, :]).to(self.B[m].dtype)
            A[m] = (root[..., :, None] * (vh[..., :rank, :] @ qa.transpose(-1, -2))).to(self.A[m].dtype)
        return LoRABatch(self.spec, A, B, 1.0)

    # ----------------------------------------------------------------------------------------- serialisation
    def tensors(self, index: int | None = None) -> dict[str, Tensor]:
        """Flat ``{"A.<module>": ..., "B.<module>": ...}`` dict (for safetensors)."""
        sel = self if index is None else self.select(index)
        out = {f"A.{m}": t for m, t in sel.A.items()}
        out.update({f"B.{m}": t for m, t in sel.B.items()})
        return out

    @classmethod
    def from_tensors(
        cls, spec: LoRASpec, tensors: dict[str, Tensor], scale: float | None = None
    ) -> LoRABatch:
        return cls(
            spec,
            {m: tensors[f"A.{m}"] for m in spec.target_modules},
            {m: tensors[f"B.{m}"] for m in spec.target_modules},
            scale,
        )

    @classmethod
    def zeros(cls, spec: LoRASpec, batch_size: int, rank: int | None = None, **tensor_kwargs) -> LoRABatch:
        """An all-zero adapter batch (no effect on the model)."""
        spec.require_resolved()
        r = rank or spec.rank
        A = {
            m: torch.zeros(batch_size, spec.n_layers, r, spec.shapes[m][0], **tensor_kwargs)
            for m in spec.target_modules
        }
        B = {
            m: torch.zeros(batch_size, spec.n_layers, spec.shapes[m][1], r, **tensor_kwargs)
            for m in spec.target_modules
        }
        return cls(spec, A, B)

    @staticmethod
    def cat(batches: Sequence[LoRABatch]) -> LoRABatch:
        """Concatenate along the batch axis (same targets, ranks and scale)."""
        if not batches:
            raise ValueError("LoRABatch.cat needs at least one batch.")
        first = batches[0]
        for b in batches[1:]:
            if b.ranks != first.ranks or b.scale != first.scale:
                raise ValueError("LoRABatch.cat needs equal ranks and scales; compress or fold scales first.")
        return LoRABatch(
            first.spec,
            {m: torch.cat([b.A[m] for b in batches]) for m in first.spec.target_modules},
            {m: torch.cat([b.B[m] for b in batches]) for m in first.spec.target_modules},
            first.scale,
        )
