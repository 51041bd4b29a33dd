"""``benchmarks/t2l_library_rank.py``: the best rank-k version of a LoRA library, as a rank-k head would give."""

from __future__ import annotations

import torch

from lora_hyper.lora import LoRABatch, LoRASpec

from t2l_library_rank import factor_rows, rank_k


def library(tiny_llama, tasks: int = 5) -> LoRABatch:
    spec = LoRASpec(["q_proj", "v_proj"], 2, scale=1.0).discover(tiny_llama[0])
    g = torch.Generator().manual_seed(0)
    zero = LoRABatch.zeros(spec, tasks)
    return LoRABatch(
        spec,
        {m: torch.randn(a.shape, generator=g) for m, a in zero.A.items()},
        {m: torch.randn(b.shape, generator=g) for m, b in zero.B.items()},
    )


def svds(z: LoRABatch) -> dict[str, tuple[torch.Tensor, ...]]:
    return {m: torch.linalg.svd(factor_rows(z, m), full_matrices=False) for m in z.A}


def test_full_rank_gives_the_library_back_and_rank_zero_gives_zeros(tiny_llama):
    z = library(tiny_llama)
    s = svds(z)
    full = rank_k(z, s, 10**6)
    empty = rank_k(z, s, 0)
    for m in z.A:
        torch.testing.assert_close(full.A[m], z.A[m], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(full.B[m], z.B[m], atol=1e-4, rtol=1e-4)
        assert not empty.A[m].any() and not empty.B[m].any()


def test_rank_k_rows_have_rank_k_and_the_error_shrinks_with_k(tiny_llama):
    z = library(tiny_llama)
    s = svds(z)
    errors = []
    for k in (1, 3, 6):
        approx = rank_k(z, s, k)
        for m in z.A:
            assert torch.linalg.matrix_rank(factor_rows(approx, m)) == k
        errors.append(sum((factor_rows(approx, m) - factor_rows(z, m)).norm() for m in z.A))
    assert errors[0] > errors[1] > errors[2] > 0


def test_capture_only_without_weights_is_refused_before_any_work(tmp_path, capsys):
    import pytest

    from t2l_library_rank import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--library", str(tmp_path), "--capture-only", "--out-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--capture-only needs --weights" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written
